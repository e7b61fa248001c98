// The Publisher's trace context and metrics: what a record carries, what series a publisher leaves behind.
import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Effect, Exit, Fiber, Layer, Metric, Scope } from "effect"
import { Publisher, PublisherMetrics, TraceContext } from "effect-kafka-publisher"
import { FakeKafka } from "effect-kafka-publisher/testing"
import { Producer, type ProducerRecord } from "../../src/Producer.ts"
import { makeSteppingClock } from "../support/steppingClock.ts"

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : decoder.decode(bytes))

const record = (topic: string, headers: ProducerRecord["headers"] = {}): ProducerRecord => ({
  topic,
  key: encoder.encode("user-1"),
  value: encoder.encode("{}"),
  headers
})

const callerTraceId = "4bf92f3577b34da6a3ce929d0e0e4736"
const callerSpanId = "00f067aa0ba902b7"
const callerParent = `00-${callerTraceId}-${callerSpanId}-01`

/** The attributes of a topic's series. */
const seriesOf = (topic: string) => ({
  "messaging.system": "kafka",
  "messaging.destination.name": topic,
  "messaging.operation.name": "send"
})

const layer = (options: Publisher.Options = {}) => Publisher.layer(options).pipe(Layer.provideMerge(FakeKafka.layer()))

/** Publishes one record and reads back the headers it was written with. */
const writtenHeaders = (headers: ProducerRecord["headers"]) =>
  Effect.gen(function* () {
    const publisher = yield* Publisher.Publisher
    const fake = yield* FakeKafka.FakeKafka
    yield* publisher.publishRecord(record("orders", headers))
    const [stored] = yield* fake.records("orders")
    return { traceparent: text(stored!.headers.traceparent), tracestate: text(stored!.headers.tracestate) }
  }).pipe(Effect.provide(layer()))

describe("Publisher trace context", () => {
  it.effect(
    "issue 18.5: a caller's traceparent becomes the publish span's parent, and its tracestate travels with it",
    () =>
      Effect.gen(function* () {
        const written = yield* writtenHeaders({ traceparent: callerParent, tracestate: "vendor=abc" })
        const parent = TraceContext.extract({ traceparent: written.traceparent })
        assert.isTrue(parent._tag === "Some")
        if (parent._tag === "Some") {
          assert.strictEqual(parent.value.traceId, callerTraceId) // the caller's trace, continued
          assert.notStrictEqual(parent.value.spanId, callerSpanId) // by the publish span
        }
        assert.strictEqual(written.tracestate, "vendor=abc")
      })
  )

  it.effect("issue 18.5: an invalid traceparent is replaced, and the tracestate that came with it is dropped", () =>
    Effect.gen(function* () {
      const written = yield* writtenHeaders({ traceparent: "not a traceparent", tracestate: "vendor=abc" })
      assert.isTrue(TraceContext.extract({ traceparent: written.traceparent })._tag === "Some")
      assert.isUndefined(written.tracestate)
    })
  )

  it.effect("issue 18.5: a tracestate without a traceparent belongs to no trace: dropped", () =>
    Effect.gen(function* () {
      const written = yield* writtenHeaders({ tracestate: "vendor=abc" })
      assert.isUndefined(written.tracestate)
    })
  )
})

describe("Publisher metrics", () => {
  const seriesCount = Effect.map(Metric.snapshot, (all) => all.length)

  it.effect("issue 18.9: series of dynamic topics are bounded while open, released when the publisher closes", () =>
    Effect.gen(function* () {
      const baseline = yield* seriesCount
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(layer({ metrics: { maxTopics: 10 } }), scope)
      const publisher = Context.get(context, Publisher.Publisher)
      for (let i = 0; i < 500; i++) yield* publisher.publishRecord(record(`dynamic-${i}`))
      // 10 topics with their own series (sent, duration), then one overflow pair for the other 490
      const open = yield* Metric.snapshot
      const destinations = new Set(open.map((s) => s.attributes?.["messaging.destination.name"]))
      assert.strictEqual(destinations.size, 10 + 1) // the ten, and the unattributed overflow/gauge series
      const overflow = open.find(
        (s) => s.id === "messaging.client.sent.messages" && s.attributes?.["otel.metric.overflow"] === "true"
      )
      assert.deepStrictEqual(overflow?.state, { count: 490, incremental: true } as never)
      assert.isAtMost(open.length, baseline + 2 * 11 + 1)
      yield* Scope.close(scope, Exit.void)
      // still readable by an exporter's last export after the close; gone once the next publisher starts
      assert.strictEqual(yield* seriesCount, open.length)
      yield* Effect.scoped(Layer.build(layer()))
      assert.strictEqual(yield* seriesCount, baseline + 1) // the in-flight gauge is the process's, not the topic's
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("issue 18.9: series another open publisher still updates are kept when one publisher closes", () =>
    Effect.gen(function* () {
      const fake = yield* FakeKafka.make()
      const first = yield* Scope.make()
      const a = yield* Publisher.make().pipe(Effect.provideService(Producer, fake.producer), Scope.provide(first))
      const b = yield* Publisher.make().pipe(Effect.provideService(Producer, fake.producer))
      yield* a.publishRecord(record("shared"))
      yield* b.publishRecord(record("shared"))
      yield* Scope.close(first, Exit.void)
      yield* b.publishRecord(record("shared"))
      const sent = yield* Metric.value(Metric.withAttributes(PublisherMetrics.sentMessages, seriesOf("shared")))
      assert.strictEqual(sent.count, 3)
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect(
    "issue 18.4: the duration metric is measured on monotonic time: a wall clock stepped back 2 s mid-publish",
    () =>
      Effect.gen(function* () {
        const stepping = yield* makeSteppingClock
        yield* Effect.gen(function* () {
          const publisher = yield* Publisher.Publisher
          const fake = yield* FakeKafka.FakeKafka
          yield* fake.setLatency("10 millis")
          const fiber = yield* Effect.forkChild(publisher.publishRecord(record("orders")))
          yield* Effect.yieldNow
          yield* stepping.stepBack(2_000)
          yield* stepping.adjust(10)
          yield* Fiber.join(fiber)
          const duration = yield* Metric.value(
            Metric.withAttributes(PublisherMetrics.operationDuration, seriesOf("orders"))
          )
          assert.strictEqual(duration.count, 1)
          assert.closeTo(duration.max, 0.01, 1e-9)
        }).pipe(Effect.provide(layer()), Effect.provideService(Clock.Clock, stepping.clock))
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )
})
