// The examples on the embedded broker, run as users run them (their own process) or, for the use case,
// composed with FakeKafka at the layer boundary.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { FakeKafka } from "effect-kafka-publisher/testing"
import { ExtractAndPublishOrders } from "../../examples/use-case/ExtractAndPublishOrders.ts"
import { sampleEvents, UseCaseLive } from "../../examples/use-case/main.ts"
import { runExample, startExample, waitForOutput } from "../support/runExample.ts"

const decoder = new TextDecoder()

describe("examples on the embedded broker", { timeout: 60_000 }, () => {
  it("orders demo: 20 deliveries, one retry, the oversize order dead-lettered with its headers, exit 0", async () => {
    const { code, stdout, stderr } = await runExample("examples/orders/main.ts", { KAFKA_BROKERS: undefined })
    assert.strictEqual(code, 0, stderr)
    assert.include(stdout, "embedded in-memory Kafka")
    assert.strictEqual(stdout.match(/^delivered /gm)?.length, 20)
    assert.match(stdout, /order-7 \(attempts: 2\)/)
    assert.match(stdout, /dead-lettered order-21 -> orders\.dlt .*Fatal\.RecordTooLarge/)
    for (const header of ["errorType", "errorMessage", "originalTopic", "originalPartition", "attempts", "failedAt"]) {
      assert.match(stdout, new RegExp(`^  ${header}: `, "m"))
    }
    assert.match(stdout, /20 delivered, 1 dead-lettered; latency ms p50 [\d.]+ p95 [\d.]+ p99 [\d.]+/)
  })

  it.effect("use case: events routed by type to three topics through the translator, no personal data", () =>
    Effect.gen(function* () {
      const summary = yield* ExtractAndPublishOrders.use((useCase) => useCase.run)
      assert.deepStrictEqual(summary, { published: sampleEvents.length, deadLettered: 0, failed: 0 })
      const fake = yield* FakeKafka.FakeKafka
      const placed = yield* fake.records("orders.placed.v1")
      const shipped = yield* fake.records("orders.shipped.v1")
      const cancelled = yield* fake.records("orders.cancelled.v1")
      assert.deepStrictEqual([placed.length, shipped.length, cancelled.length], [6, 2, 1])
      const first = placed.find((r) => decoder.decode(r.headers.eventId!) === "order-0:OrderPlaced")!
      assert.deepStrictEqual(JSON.parse(decoder.decode(first.value!)), {
        orderId: "order-0",
        customerId: "customer-0",
        itemCount: 4,
        totalCents: 1299 + 3 * 199,
        currency: "EUR",
        placedAt: "2026-11-22T09:00:00.000Z"
      })
      for (const r of [...placed, ...shipped, ...cancelled]) assert.notInclude(decoder.decode(r.value!), "@example.com")
      // a second run publishes nothing: every event got a receipt and left the outbox
      const again = yield* ExtractAndPublishOrders.use((useCase) => useCase.run)
      assert.strictEqual(again.published, 0)
    }).pipe(Effect.provide(UseCaseLive.pipe(Layer.provideMerge(FakeKafka.layer()))))
  )

  it("stream sink: 20,000 events through Publisher.sink, summary 20,000 delivered, exit 0", async () => {
    const { code, stdout, stderr } = await runExample("examples/stream-sink/main.ts", { KAFKA_BROKERS: undefined })
    assert.strictEqual(code, 0, stderr)
    assert.deepStrictEqual(JSON.parse(stdout.trim().split("\n").at(-1)!), {
      delivered: 20000,
      possibleDuplicates: 0,
      deadLettered: 0
    })
  })

  it("outbox: a rejected order leaves no event; orders accepted during an outage drain; 0 lost, 0 phantoms", async () => {
    const { code, stdout, stderr } = await runExample("examples/outbox/main.ts", {
      KAFKA_BROKERS: undefined,
      DATABASE_URL: undefined
    })
    assert.strictEqual(code, 0, stderr)
    assert.deepStrictEqual(JSON.parse(stdout.trim().split("\n").at(-1)!), {
      ordersAccepted: 200,
      rejected: 1,
      eventsInTopic: 200,
      lost: 0,
      phantoms: 0,
      duplicates: 0,
      pendingDuringOutage: 100,
      degradedDuringOutage: true
    })
  })

  it("transactions: the committed order on both topics, the declined one visible to read_uncommitted only", async () => {
    const { code, stdout, stderr } = await runExample("examples/transactions/main.ts", { KAFKA_BROKERS: undefined })
    assert.strictEqual(code, 0, stderr)
    assert.include(stderr, "embedded in-memory Kafka")
    assert.match(stdout, /^order-1: committed \(orders p\d@\d+, payments p\d@\d+\)$/m)
    assert.match(stdout, /^order-2: aborted \(payment declined\); neither event is visible$/m)
    assert.deepStrictEqual(JSON.parse(stdout.trim().split("\n").at(-1)!), {
      committed: ["order-1"],
      aborted: ["order-2"],
      readCommitted: { orders: ["order-1"], payments: ["order-1"] },
      readUncommitted: { orders: ["order-1", "order-2"], payments: ["order-1", "order-2"] }
    })
  })

  it("graceful shutdown: SIGTERM stops accepting, flushes, reports every accepted event, exits 0", async () => {
    const run = startExample("examples/graceful-shutdown/main.ts", { KAFKA_BROKERS: undefined, TOPIC: "ticks" })
    await waitForOutput(run, (_, err) => err.includes("publishing until SIGINT/SIGTERM"))
    await new Promise((resolve) => setTimeout(resolve, 500))
    run.child.kill("SIGTERM")
    const code = await run.exit
    assert.strictEqual(code, 0, run.stderr())
    const summary = JSON.parse(run.stdout().trim().split("\n").at(-1)!) as {
      accepted: number
      delivered: number
      deadLettered: number
      failed: Array<number>
    }
    assert.isAbove(summary.accepted, 0)
    assert.strictEqual(summary.delivered + summary.deadLettered + summary.failed.length, summary.accepted)
  })
})

describe("orders latency comparison on the embedded broker", { timeout: 60_000 }, () => {
  it("prints p50/p95/p99 and records/s for every variant", async () => {
    const { code, stdout, stderr } = await runExample("examples/orders/latency.ts", {
      KAFKA_BROKERS: undefined,
      EVENTS: "300",
      CALLERS: "16"
    })
    assert.strictEqual(code, 0, stderr)
    const grid = ["0", "5", "20"].flatMap((linger) =>
      ["", " \\+ gzip", " \\+ snappy", " \\+ lz4", " \\+ zstd"].map((codec) => `linger ${linger} ms${codec}`)
    )
    for (const variant of ["per event \\(no Batcher\\)", ...grid]) {
      assert.match(stdout, new RegExp(`^\\| ${variant} \\| [\\d.]+ \\| [\\d.]+ \\| [\\d.]+ \\| [\\d,]+ \\|$`, "m"))
    }
  })
})
