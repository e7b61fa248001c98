// Spans on FakeKafka, as the tracing integration test checks them on a real broker: one PRODUCER span per
// publish under the caller's span, its context in the record headers, retries as its events, and the
// dead-letter write as its child.
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { assert, describe, it } from "@effect/vitest"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Effect, Layer, Option, Schema } from "effect"
import { Publisher, RetryPolicy, Topic, TraceContext } from "effect-kafka-publisher"
import { FakeKafka } from "effect-kafka-publisher/testing"
import { Fatal, Retriable } from "../../src/PublishError.ts"

class Greeting extends Schema.Class<Greeting>("Greeting")({ userId: Schema.String, text: Schema.String }) {}

const topic = Topic.make({ name: "greetings", schema: Greeting, key: (g) => g.userId })
const greeting = new Greeting({ userId: "user-1", text: "hello" })

interface Traced {
  readonly spans: InMemorySpanExporter
  readonly publisher: Publisher.Publisher
  readonly fake: FakeKafka.FakeKafkaShape
}

/** Runs `body` on a Publisher over FakeKafka, its spans exported to `spans`. */
const traced = <A, E>(body: (env: Traced) => Effect.Effect<A, E>) => {
  const spans = new InMemorySpanExporter()
  const otel = NodeSdk.layer(() => ({
    resource: { serviceName: "tracing-unit" },
    spanProcessor: new SimpleSpanProcessor(spans)
  }))
  const layer = Publisher.layer({ retry: RetryPolicy.make({ initialDelay: "1 millis", jitter: false }) }).pipe(
    Layer.provideMerge(FakeKafka.layer({ topics: { greetings: { partitions: 2 } } }))
  )
  return Effect.gen(function* () {
    return yield* body({ spans, publisher: yield* Publisher.Publisher, fake: yield* FakeKafka.FakeKafka })
  }).pipe(Effect.provide(layer), Effect.provide(otel))
}

describe("tracing", () => {
  it.live("a PRODUCER span per publish, under the caller's span; its context travels in the headers", () =>
    traced(({ spans, publisher, fake }) =>
      Effect.gen(function* () {
        const receipt = yield* publisher.publish(topic, greeting).pipe(Effect.withSpan("handle request"))
        assert.strictEqual(receipt._tag, "Delivered")
        const send = spans.getFinishedSpans().find((s) => s.name === "send greetings")
        const caller = spans.getFinishedSpans().find((s) => s.name === "handle request")
        assert.isDefined(send)
        assert.strictEqual(send!.kind, 3) // SpanKind.PRODUCER
        assert.strictEqual(send!.parentSpanContext?.spanId, caller!.spanContext().spanId)
        assert.deepInclude(send!.attributes, {
          "messaging.system": "kafka",
          "messaging.operation.name": "send",
          "messaging.operation.type": "send",
          "messaging.destination.name": "greetings",
          "messaging.kafka.message.key": "user-1",
          "messaging.destination.partition.id": String(receipt.partition),
          "messaging.kafka.offset": receipt.offset,
          "messaging.kafka.attempts": 1
        })
        const [record] = yield* fake.records("greetings")
        const parent = TraceContext.extract(record!.headers)
        assert.isTrue(Option.isSome(parent))
        if (Option.isNone(parent)) return
        assert.strictEqual(parent.value.traceId, send!.spanContext().traceId)
        assert.strictEqual(parent.value.spanId, send!.spanContext().spanId)
      })
    )
  )

  it.live("retries are events of the publish's span; the dead-letter write is its child span", () =>
    traced(({ spans, publisher, fake }) =>
      Effect.gen(function* () {
        yield* fake.failNext(1, new Retriable({ reason: "BrokerUnavailable", ambiguous: false, message: "down" }))
        yield* fake.failNext(1, new Fatal({ reason: "RecordTooLarge", message: "too large" }))
        const receipt = yield* publisher.publish(topic, greeting)
        assert.strictEqual(receipt._tag, "DeadLettered")
        const send = spans.getFinishedSpans().find((s) => s.name === "send greetings")
        const deadLetter = spans.getFinishedSpans().find((s) => s.name === "dead-letter")
        assert.isDefined(send)
        assert.isDefined(deadLetter)
        assert.strictEqual(deadLetter!.parentSpanContext?.spanId, send!.spanContext().spanId)
        assert.include(
          send!.events.map((e) => e.name),
          "publish failed, retrying"
        )
        assert.deepInclude(send!.attributes, {
          "error.type": "Fatal.RecordTooLarge",
          "messaging.kafka.dead_letter.topic": "greetings.dlt",
          "messaging.kafka.attempts": 2
        })
      })
    )
  )

  it.live("issue 18.5: a record's own traceparent is the publish span's parent in OpenTelemetry too", () =>
    traced(({ spans, publisher, fake }) =>
      Effect.gen(function* () {
        const traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
        const spanId = "00f067aa0ba902b7"
        const record = {
          topic: "greetings",
          key: null,
          value: new TextEncoder().encode("{}"),
          headers: { traceparent: `00-${traceId}-${spanId}-01`, tracestate: "vendor=abc" }
        }
        yield* publisher.publishRecord(record).pipe(Effect.withSpan("handle request"))
        const send = spans.getFinishedSpans().find((s) => s.name === "send greetings")
        assert.strictEqual(send!.spanContext().traceId, traceId)
        assert.strictEqual(send!.parentSpanContext?.spanId, spanId)
        const [written] = yield* fake.records("greetings")
        const parent = TraceContext.extract(written!.headers)
        assert.isTrue(Option.isSome(parent) && parent.value.spanId === send!.spanContext().spanId)
        assert.strictEqual(new TextDecoder().decode(written!.headers.tracestate), "vendor=abc")
      })
    )
  )
})
