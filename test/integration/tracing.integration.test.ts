// Tracing through a real broker: one PRODUCER span per publish with the messaging attributes, its W3C context
// injected into the record headers, and a consumer that rebuilds the parent from the headers it reads back.
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { assert, it } from "@effect/vitest"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Effect, Layer, Option, Schema } from "effect"
import { Publisher, Topic, TraceContext } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { TopicReader } from "effect-kafka-publisher/testing"
import { bootstrapServers, describeWithKafka } from "./broker.ts"
import { createTopic } from "./realHarness.ts"

class Greeting extends Schema.Class<Greeting>("Greeting")({ userId: Schema.String, text: Schema.String }) {}

describeWithKafka("tracing", () => {
  it.live("a PRODUCER span per publish; its context travels in the headers; a consumer continues the trace", () => {
    const spans = new InMemorySpanExporter()
    const otel = NodeSdk.layer(() => ({
      resource: { serviceName: "tracing-test" },
      spanProcessor: new SimpleSpanProcessor(spans)
    }))
    const brokers = bootstrapServers()
    const name = `traced-${Date.now()}`
    const topic = Topic.make({ name, schema: Greeting, key: (g) => g.userId })
    return Effect.gen(function* () {
      yield* createTopic(brokers, name, { partitions: 2 })
      const publisher = yield* Publisher.Publisher
      const receipt = yield* publisher.publish(topic, new Greeting({ userId: "user-1", text: "hello" }))
      assert.strictEqual(receipt._tag, "Delivered")

      const send = spans.getFinishedSpans().find((s) => s.name === `send ${name}`)
      assert.isDefined(send, "span 'send <topic>'")
      assert.strictEqual(send!.kind, 3) // SpanKind.PRODUCER
      assert.deepInclude(send!.attributes, {
        "messaging.system": "kafka",
        "messaging.destination.name": name,
        "messaging.operation.name": "send",
        "messaging.kafka.message.key": "user-1",
        "messaging.destination.partition.id": String(receipt.partition),
        "messaging.kafka.offset": receipt.offset
      })

      // the consumer side: read the record back from the broker and rebuild the parent span
      const [record] = yield* TopicReader.readAll({ brokers, topic: name })
      const parent = TraceContext.extract(record!.headers)
      assert.isTrue(Option.isSome(parent))
      if (Option.isNone(parent)) return
      assert.strictEqual(parent.value.traceId, send!.spanContext().traceId)
      assert.strictEqual(parent.value.spanId, send!.spanContext().spanId)

      yield* Effect.void.pipe(Effect.withSpan("process greeting", { kind: "consumer", parent: parent.value }))
      const processed = spans.getFinishedSpans().find((s) => s.name === "process greeting")
      assert.strictEqual(processed!.spanContext().traceId, send!.spanContext().traceId)
      assert.strictEqual(processed!.parentSpanContext?.spanId, send!.spanContext().spanId)
    }).pipe(
      Effect.provide(Publisher.layer().pipe(Layer.provide(KafkaJsProducer.layer({ brokers })))),
      Effect.provide(otel)
    )
  })
})
