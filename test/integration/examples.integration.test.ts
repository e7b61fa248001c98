// The examples against the real broker of this run, as users run them; the topic is then read back by the CLI
// and by a consumer. Includes issue 7's shutdown under load: SIGTERM to a process publishing continuously.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { TraceContext } from "effect-kafka-publisher"
import { TopicReader } from "effect-kafka-publisher/testing"
import { runCli } from "../support/runCli.ts"
import { runExample, startExample, waitForOutput } from "../support/runExample.ts"
import { startWorkflowService, validBody } from "../support/workflowService.ts"
import { bootstrapServers, describeWithKafka } from "./broker.ts"

const decoder = new TextDecoder()

describeWithKafka("examples on the real broker", () => {
  describe("orders demo", { timeout: 120_000 }, () => {
    it("publishes 20 orders and dead-letters the oversize one; verify --expect 20 confirms the topic", async () => {
      const env = { KAFKA_BROKERS: bootstrapServers().join(",") }
      const demo = await runExample("examples/orders/main.ts", env)
      assert.strictEqual(demo.code, 0, demo.stderr)
      assert.strictEqual(demo.stdout.match(/^delivered /gm)?.length, 20)
      assert.match(demo.stdout, /dead-lettered order-21 -> orders\.dlt/)
      assert.match(demo.stdout, /^ {2}errorType: Fatal\.RecordTooLarge$/m)
      const verify = await runCli(["verify", "--topic", "orders", "--expect", "20", "--id-header", "orderId"], env)
      assert.strictEqual(verify.code, 0, `${verify.stdout}\n${verify.stderr}`)
      assert.match(verify.stdout, /count 20 \(expected 20\), duplicates 0, gaps 0/)
      const wrong = await runCli(["verify", "--topic", "orders", "--expect", "21"], env)
      assert.strictEqual(wrong.code, 1, "verify says when the topic does not hold what was expected")
      assert.match(wrong.stdout, /^count 20 \(expected 21\), duplicates 0, gaps 0\nFAILED$/m)
      const dlt = await runCli(["dlt", "--topic", "orders"], env)
      assert.strictEqual(dlt.code, 0, dlt.stderr)
      assert.match(dlt.stdout, /^ {2}errorType: Fatal\.RecordTooLarge$/m)
      assert.match(dlt.stdout, /^1 dead-lettered record\(s\) in orders\.dlt$/m)
    })
  })

  describe("transactions (issue 15)", { timeout: 60_000 }, () => {
    for (const driver of ["kafkajs", "platformatic"]) {
      it(`${driver}: read_committed sees the committed order on both topics only; verify --isolation agrees`, async () => {
        const prefix = `tx-example-${driver}-${Date.now()}-`
        const env = {
          KAFKA_BROKERS: bootstrapServers().join(","),
          KAFKA_DRIVER: driver,
          KAFKA_TRANSACTIONAL_ID: `${prefix}orders-service`,
          TOPIC_PREFIX: prefix
        }
        const demo = await runExample("examples/transactions/main.ts", env)
        assert.strictEqual(demo.code, 0, `${demo.stdout}\n${demo.stderr}`)
        assert.deepStrictEqual(JSON.parse(demo.stdout.trim().split("\n").at(-1)!), {
          committed: ["order-1"],
          aborted: ["order-2"],
          readCommitted: { orders: ["order-1"], payments: ["order-1"] },
          readUncommitted: { orders: ["order-1", "order-2"], payments: ["order-1", "order-2"] }
        })
        for (const topic of ["orders", "payments"]) {
          const verify = await runCli(
            ["verify", "--topic", `${prefix}${topic}`, "--isolation", "read_committed", "--expect", "1", "--json"],
            env
          )
          assert.strictEqual(verify.code, 0, `${verify.stdout}\n${verify.stderr}`)
          assert.include(JSON.parse(verify.stdout), { count: 1, ok: true })
        }
      })
    }
  })

  describe("orders latency comparison", { timeout: 180_000 }, () => {
    it("measures every variant (per event; linger 0/5/20 ms x none/gzip/snappy/lz4/zstd) on the real broker", async () => {
      const { code, stdout, stderr } = await runExample("examples/orders/latency.ts", {
        KAFKA_BROKERS: bootstrapServers().join(","),
        EVENTS: "1000",
        CALLERS: "32"
      })
      assert.strictEqual(code, 0, stderr)
      console.log(stdout)
      assert.strictEqual(
        stdout.match(/^\| (per event|linger (0|5|20) ms)[^|]* \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d,]+ \|$/gm)?.length,
        16
      )
    })
  })

  describe("workflow-events service", { timeout: 120_000 }, () => {
    it.live(
      "POST over real HTTP publishes to the real broker; a consumer reads the event back, in the caller's trace",
      () =>
        Effect.gen(function* () {
          const topic = `workflow-events-${Date.now()}`
          const service = yield* Effect.promise(() =>
            startWorkflowService({ KAFKA_BROKERS: bootstrapServers().join(","), WORKFLOW_TOPIC: topic })
          )
          try {
            // the caller's trace context: the record continues its trace and carries its tracestate (issue 17.4)
            const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
            const response = yield* Effect.promise(() =>
              service.trigger("wf-real", validBody, {
                traceparent: `00-${callerTrace}-00f067aa0ba902b7-01`,
                tracestate: "vendor=abc,other=1"
              })
            )
            assert.strictEqual(response.status, 202)
            const receipt = (yield* Effect.promise(() => response.json())) as { status: string; runId: string }
            assert.strictEqual(receipt.status, "Delivered")
            const bad = yield* Effect.promise(() => service.trigger("wf-real", { source: "fax" }))
            assert.strictEqual(bad.status, 400)
            const [record, ...rest] = yield* TopicReader.readAll({ brokers: bootstrapServers(), topic })
            assert.strictEqual(rest.length, 0)
            assert.strictEqual(decoder.decode(record!.headers.tracestate), "vendor=abc,other=1")
            assert.strictEqual(Option.getOrUndefined(TraceContext.extract(record!.headers))?.traceId, callerTrace)
            const event = JSON.parse(decoder.decode(record!.value!)) as Record<string, unknown>
            assert.include(event, {
              workflowId: "wf-real",
              runId: receipt.runId,
              source: "api",
              eventType: "workflow.triggered"
            })
          } finally {
            service.run.child.kill("SIGTERM")
            yield* Effect.promise(() => service.run.exit)
          }
        })
    )
  })

  describe("shutdown under load", { timeout: 120_000 }, () => {
    it.live(
      "SIGTERM to a continuously publishing process: it exits in time, every accepted event is accounted for",
      () =>
        Effect.gen(function* () {
          const topic = `ticks-${Date.now()}`
          const run = startExample("examples/graceful-shutdown/main.ts", {
            KAFKA_BROKERS: bootstrapServers().join(","),
            TOPIC: topic
          })
          yield* Effect.promise(() => waitForOutput(run, (_, err) => err.includes("publishing until")))
          yield* Effect.sleep("3 seconds")
          const signalled = Date.now()
          run.child.kill("SIGTERM")
          const code = yield* Effect.promise(() => run.exit)
          const exitMs = Date.now() - signalled
          assert.strictEqual(code, 0, run.stderr())
          assert.isBelow(exitMs, 20_000, "exits within the publisher's shutdown timeout")
          const summary = JSON.parse(run.stdout().trim().split("\n").at(-1)!) as {
            accepted: number
            delivered: number
            deadLettered: number
            failed: Array<number>
          }
          const records = yield* TopicReader.readAll({ brokers: bootstrapServers(), topic })
          const ids = new Set(records.map((r) => Number(decoder.decode(r.headers.eventId!))))
          const missing = summary.delivered - [...ids].length
          console.log(
            `shutdown under load: accepted ${summary.accepted}, delivered ${summary.delivered}, dead-lettered ${summary.deadLettered}, failed ${summary.failed.length}, in topic ${records.length}, exit in ${exitMs} ms`
          )
          assert.isAbove(summary.accepted, 100)
          assert.strictEqual(summary.delivered + summary.deadLettered + summary.failed.length, summary.accepted)
          assert.strictEqual(records.length, summary.delivered, "every delivered event is in the topic, once")
          assert.strictEqual(missing, 0)
        })
    )
  })
})
