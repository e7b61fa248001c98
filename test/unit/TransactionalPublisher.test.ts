// What only the fake can show deterministically: transaction timeouts under TestClock, a commit whose
// answer is lost, a busy coordinator, defects, the dead-letter decision, spans, traceparent and metrics.
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { assert, describe, it } from "@effect/vitest"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { ConfigProvider, Duration, Effect, Exit, Fiber, Layer, Metric, Schema } from "effect"
import { TestClock } from "effect/testing"
import { Publisher, Topic, TransactionalProducer, TransactionalPublisher } from "effect-kafka-publisher"
import { FakeKafka } from "effect-kafka-publisher/testing"
import { Fatal, Retriable } from "../../src/PublishError.ts"
import { failureOf } from "../support/exits.ts"

const orders = Topic.make({ name: "orders", schema: Schema.Struct({ n: Schema.Number }) })
const decoder = new TextDecoder()
const values = (records: ReadonlyArray<{ readonly value: Uint8Array | null }>) =>
  records.map((r) => (r.value ? decoder.decode(r.value) : null))

const publishOne = (n: number) => Effect.flatMap(Publisher.Publisher, (p) => p.publish(orders, { n }))

/** A fake broker and a transactional publisher over it (id "tx", timeout 10 s). */
const setup = Effect.gen(function* () {
  const fake = yield* FakeKafka.make({ topics: { orders: { partitions: 2 } } })
  const producer = yield* fake.transactionalProducer({ transactionalId: "tx", transactionTimeout: "10 seconds" })
  const txp = yield* TransactionalPublisher.make().pipe(
    Effect.provideService(TransactionalProducer.TransactionalProducer, producer)
  )
  return { fake, txp }
})

describe("TransactionalPublisher on FakeKafka", () => {
  it.effect("a transaction open past its timeout is aborted by the coordinator; its producer is fenced", () =>
    Effect.gen(function* () {
      const { fake, txp } = yield* setup
      const fiber = yield* Effect.forkChild(txp.transaction(Effect.andThen(publishOne(1), Effect.sleep("11 seconds"))))
      yield* TestClock.adjust("11 seconds")
      const exit = yield* Fiber.await(fiber)
      assert.strictEqual((failureOf(exit) as Fatal).reason, "ProducerFenced")
      assert.deepStrictEqual(values(yield* fake.records("orders", { isolation: "read_committed" })), [])
      assert.strictEqual((yield* fake.records("orders")).length, 1) // in the log, aborted
      // a restarted producer with the same id continues
      const restarted = yield* fake.transactionalProducer({ transactionalId: "tx" })
      const again = yield* TransactionalPublisher.make().pipe(
        Effect.provideService(TransactionalProducer.TransactionalProducer, restarted)
      )
      yield* again.transaction(publishOne(2))
      assert.deepStrictEqual(values(yield* fake.records("orders", { isolation: "read_committed" })), ['{"n":2}'])
    }).pipe(Effect.scoped)
  )

  it.effect("a commit whose answer is lost fails Retriable, ambiguous, possiblyDelivered; counted unknown", () =>
    Effect.gen(function* () {
      const { fake, txp } = yield* setup
      const unknown = Metric.withAttributes(TransactionalPublisher.transactions, { outcome: "unknown" })
      const before = (yield* Metric.value(unknown)).count
      yield* fake.loseNextCommitAnswers(1)
      const error = failureOf(yield* Effect.exit(txp.transaction(publishOne(1)))) as Retriable
      assert.deepStrictEqual([error._tag, error.ambiguous, error.possiblyDelivered], ["Retriable", true, true])
      // this time the commit did apply: the reader is the arbiter
      assert.deepStrictEqual(values(yield* fake.records("orders", { isolation: "read_committed" })), ['{"n":1}'])
      assert.strictEqual((yield* Metric.value(unknown)).count, before + 1)
    }).pipe(Effect.scoped)
  )

  it.effect("a commit the broker never answers ends at commitTimeout: Retriable RequestTimeout, ambiguous", () =>
    Effect.gen(function* () {
      const fake = yield* FakeKafka.make({ topics: { orders: { partitions: 2 } } })
      const producer = yield* fake.transactionalProducer({ transactionalId: "tx", transactionTimeout: "60 seconds" })
      const txp = yield* TransactionalPublisher.make({ commitTimeout: "5 seconds" }).pipe(
        Effect.provideService(TransactionalProducer.TransactionalProducer, producer)
      )
      // the broker stops answering after the send, before the commit
      const fiber = yield* Effect.forkChild(txp.transaction(Effect.andThen(publishOne(1), fake.pause)))
      yield* TestClock.adjust("4 seconds")
      assert.isUndefined(fiber.pollUnsafe(), "still committing before the bound")
      yield* TestClock.adjust("1 second")
      const error = failureOf(yield* Fiber.await(fiber)) as Retriable
      assert.deepStrictEqual(
        [error._tag, error.reason, error.ambiguous, error.possiblyDelivered],
        ["Retriable", "RequestTimeout", true, true]
      )
      assert.include(error.message, "was not answered within")
    }).pipe(Effect.scoped)
  )

  it.effect("a read_committed reader stops at an open transaction (the last stable offset)", () =>
    Effect.gen(function* () {
      const fake = yield* FakeKafka.make({ topics: { orders: { partitions: 1 } } })
      const producer = yield* fake.transactionalProducer({ transactionalId: "tx" })
      const open = yield* producer.begin
      const encoded = { topic: "orders", key: null, headers: {} }
      yield* open.send([{ ...encoded, value: new TextEncoder().encode("in txn") }])
      yield* fake.producer.send([{ ...encoded, value: new TextEncoder().encode("plain") }])
      assert.deepStrictEqual(values(yield* fake.records("orders", { isolation: "read_committed" })), [])
      assert.deepStrictEqual(values(yield* fake.records("orders")), ["in txn", "plain"])
      yield* open.commit
      assert.deepStrictEqual(values(yield* fake.records("orders", { isolation: "read_committed" })), [
        "in txn",
        "plain"
      ])
    })
  )

  it.effect("a defect inside aborts the transaction and the defect reaches the caller", () =>
    Effect.gen(function* () {
      const { fake, txp } = yield* setup
      const exit = yield* Effect.exit(txp.transaction(Effect.andThen(publishOne(1), Effect.die("boom"))))
      assert.isTrue(Exit.hasDies(exit))
      assert.deepStrictEqual(values(yield* fake.records("orders", { isolation: "read_committed" })), [])
      yield* txp.transaction(publishOne(2))
      assert.deepStrictEqual(values(yield* fake.records("orders", { isolation: "read_committed" })), ['{"n":2}'])
    }).pipe(Effect.scoped)
  )

  it.effect("dead letters: a fatal record aborts the whole transaction, the caller gets its error, no DLT write", () =>
    Effect.gen(function* () {
      const { fake, txp } = yield* setup
      yield* fake.failNext(1, new Fatal({ reason: "RecordTooLarge", topic: "orders", message: "too large" }))
      const error = failureOf(
        yield* Effect.exit(txp.transaction(Effect.andThen(publishOne(1), publishOne(2))))
      ) as Fatal
      assert.deepStrictEqual([error._tag, error.reason], ["Fatal", "RecordTooLarge"])
      assert.deepStrictEqual(yield* fake.topics, ["orders"]) // no orders.dlt
      assert.deepStrictEqual(values(yield* fake.records("orders", { isolation: "read_committed" })), [])
    }).pipe(Effect.scoped)
  )

  it.effect("begin and commit are retried while the coordinator answers CONCURRENT_TRANSACTIONS", () =>
    Effect.gen(function* () {
      const fake = yield* FakeKafka.make()
      const inner = yield* fake.transactionalProducer({ transactionalId: "busy" })
      const busy = new Retriable({ reason: "CoordinatorBusy", ambiguous: false, message: "CONCURRENT_TRANSACTIONS" })
      let beginFailures = 2
      let commitFailures = 2
      const flaky = TransactionalProducer.TransactionalProducer.of({
        transactionalId: "busy",
        begin: Effect.suspend(() =>
          beginFailures-- > 0
            ? Effect.fail(busy)
            : Effect.map(inner.begin, (handle) => ({
                ...handle,
                commit: Effect.suspend(() => (commitFailures-- > 0 ? Effect.fail(busy) : handle.commit))
              }))
        )
      })
      const txp = yield* TransactionalPublisher.make().pipe(
        Effect.provideService(TransactionalProducer.TransactionalProducer, flaky)
      )
      const fiber = yield* Effect.forkChild(txp.transaction(publishOne(1)))
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(fiber)
      assert.deepStrictEqual([beginFailures, commitFailures], [-1, -1])
      assert.deepStrictEqual(values(yield* fake.records("orders", { isolation: "read_committed" })), ['{"n":1}'])
    }).pipe(Effect.scoped)
  )

  it.effect("config: KAFKA_TRANSACTIONAL_ID and KAFKA_TRANSACTION_TIMEOUT, 60 s by default", () =>
    Effect.gen(function* () {
      const read = (env: Record<string, string>) => TransactionalProducer.config.parse(ConfigProvider.fromEnv({ env }))
      const set = yield* read({ KAFKA_TRANSACTIONAL_ID: "orders-svc", KAFKA_TRANSACTION_TIMEOUT: "10 seconds" })
      assert.strictEqual(set.transactionalId, "orders-svc")
      assert.strictEqual(Duration.toMillis(TransactionalProducer.transactionTimeoutOf(set)), 10_000)
      const unset = yield* read({ KAFKA_TRANSACTIONAL_ID: "x" })
      assert.strictEqual(Duration.toMillis(TransactionalProducer.transactionTimeoutOf(unset)), 60_000)
      assert.isTrue(Exit.isFailure(yield* Effect.exit(read({}))))
    })
  )
})

describe("TransactionalPublisher observability", () => {
  it.live("one span per transaction, the publishes its children, a traceparent of the trace in every record", () => {
    const spans = new InMemorySpanExporter()
    const otel = NodeSdk.layer(() => ({
      resource: { serviceName: "txn-unit" },
      spanProcessor: new SimpleSpanProcessor(spans)
    }))
    return Effect.gen(function* () {
      const { fake, txp } = yield* setup
      yield* txp.transaction(
        Effect.andThen(
          publishOne(1),
          Effect.flatMap(Publisher.Publisher, (p) => p.publishAll(orders, [{ n: 2 }]))
        )
      )
      const finished = spans.getFinishedSpans()
      const txn = finished.find((s) => s.name === "transaction tx")
      assert.isDefined(txn)
      const sends = finished.filter((s) => s.name === "send orders")
      assert.isTrue(sends.length >= 1)
      const traceId = txn!.spanContext().traceId
      for (const send of sends) assert.strictEqual(send.spanContext().traceId, traceId)
      const records = yield* fake.records("orders", { isolation: "read_committed" })
      assert.strictEqual(records.length, 2)
      for (const record of records) {
        const header = decoder.decode(record.headers.traceparent!)
        assert.strictEqual(header.split("-")[1], traceId)
      }
    }).pipe(Effect.scoped, Effect.provide(Layer.fresh(otel)))
  })
})
