// The workflow-events HTTP service on the embedded broker, tested over real HTTP.
import { assert, describe, it } from "vitest"
import { startWorkflowService, validBody } from "../support/workflowService.ts"

describe("workflow-events service (embedded broker)", { timeout: 60_000 }, () => {
  it("publishes a trigger and answers with the receipt; invalid bodies get 400 with the schema error; health", async () => {
    const service = await startWorkflowService({ KAFKA_BROKERS: undefined })
    try {
      const ok = await service.trigger("wf-42", validBody)
      assert.strictEqual(ok.status, 202)
      const receipt = (await ok.json()) as { status: string; topic: string; offset: string; runId: string }
      assert.strictEqual(receipt.status, "Delivered")
      assert.strictEqual(receipt.topic, "workflow-events")
      assert.strictEqual(receipt.offset, "0")

      const badEnum = await service.trigger("wf-42", { ...validBody, source: "fax" })
      assert.strictEqual(badEnum.status, 400)
      assert.match(((await badEnum.json()) as { details: string }).details, /source/)
      const badEnvironment = await service.trigger("wf-42", { ...validBody, metadata: { environment: "moon" } })
      assert.strictEqual(badEnvironment.status, 400)
      const notJson = await service.trigger("wf-42", "not json")
      assert.strictEqual(notJson.status, 400)

      const health = await service.health()
      assert.strictEqual(health.status, 200)
      const report = (await health.json()) as { status: string; window: { total: number } }
      assert.strictEqual(report.status, "healthy")
      assert.strictEqual(report.window.total, 1)
    } finally {
      service.run.child.kill("SIGTERM")
      await service.run.exit
    }
  })

  it("SIGTERM drains: a publish in flight completes and is answered, then the process exits 0", async () => {
    const service = await startWorkflowService({ KAFKA_BROKERS: undefined, FAKE_LATENCY_MS: "1500" })
    const pending = service.trigger("wf-slow", validBody)
    await new Promise((resolve) => setTimeout(resolve, 300))
    service.run.child.kill("SIGTERM")
    const response = await pending
    assert.strictEqual(response.status, 202)
    assert.strictEqual(((await response.json()) as { status: string }).status, "Delivered")
    assert.strictEqual(await service.run.exit, 0, service.run.stderr())
  })
})
