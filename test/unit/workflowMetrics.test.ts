// GET /metrics of the workflow-events service: the publisher's metrics in the Prometheus text format,
// checked by promtool (Debian package `prometheus`; .ci/run installs it), a checker nobody here wrote.
import { execFileSync, spawnSync } from "node:child_process"
import { assert, describe, it } from "@effect/vitest"
import { startWorkflowService, validBody } from "../support/workflowService.ts"

const hasPromtool = (() => {
  try {
    execFileSync("promtool", ["--version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()

// As the real-broker suites do: without the checker, skipped with the reason on a developer's machine, a
// failure under CI=true (where .ci/run installs it).
const skipWithoutPromtool = !hasPromtool && process.env.CI !== "true"
if (skipWithoutPromtool)
  console.warn("workflow-events GET /metrics: skipped, promtool is missing (apt-get install prometheus)")

describe("workflow-events GET /metrics", { timeout: 60_000 }, () => {
  it.skipIf(skipWithoutPromtool)(
    "serves the publisher's metrics in the Prometheus text format, and promtool accepts them",
    async () => {
      if (!hasPromtool) throw new Error("promtool is missing: apt-get install -y prometheus (.ci/run installs it)")
      const tool = "promtool"
      const service = await startWorkflowService({ KAFKA_BROKERS: undefined })
      try {
        const accepted = await service.trigger("wf-metrics", validBody)
        assert.strictEqual(accepted.status, 202)
        const response = await fetch(`${service.base}/metrics`)
        assert.strictEqual(response.status, 200)
        assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/)
        const body = await response.text()
        // the documented OpenTelemetry-style names, dots as underscores
        assert.match(body, /^messaging_client_sent_messages_total\{[^}]*messaging_destination_name="[^"]+"[^}]*\} 1$/m)
        assert.match(body, /^# TYPE messaging_client_operation_duration histogram$/m)
        assert.match(body, /^kafka_publisher_in_flight\{/m)
        const check = spawnSync(tool, ["check", "metrics"], { input: body, encoding: "utf8" })
        assert.strictEqual(check.status, 0, `promtool check metrics:\n${check.stdout}${check.stderr}\n${body}`)
      } finally {
        service.run.child.kill("SIGTERM")
        await service.run.exit
      }
    }
  )
})
