// Metrics and spans leave through @effect/opentelemetry: the publisher's Effect metrics and spans reach the
// OpenTelemetry SDK's exporters under their OpenTelemetry names.
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { assert, describe, it } from "@effect/vitest"
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  PeriodicExportingMetricReader
} from "@opentelemetry/sdk-metrics"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Effect, Layer, Schema } from "effect"
import { Publisher, Topic } from "effect-kafka-publisher"
import { FakeKafka } from "effect-kafka-publisher/testing"

describe("OpenTelemetry export", () => {
  it.live("metrics and the PRODUCER span reach the OTel SDK", () => {
    const spans = new InMemorySpanExporter()
    const metrics = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
    const reader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 60_000 })
    const otel = NodeSdk.layer(() => ({
      resource: { serviceName: "otel-export-test" },
      spanProcessor: new SimpleSpanProcessor(spans),
      metricReader: reader
    }))
    const topic = Topic.make({ name: "otel-orders", schema: Schema.String, key: (s) => s })
    return Effect.gen(function* () {
      const publisher = yield* Publisher.Publisher
      yield* publisher.publish(topic, "user-1")
      yield* publisher.publish(topic, "user-2")
      yield* Effect.promise(() => reader.forceFlush())
      const exported = metrics
        .getMetrics()
        .flatMap((m) => m.scopeMetrics.flatMap((s) => s.metrics))
        .map((m) => [m.descriptor.name, m.dataPoints] as const)
      const sent = exported.find(([name]) => name === "messaging.client.sent.messages")
      assert.isDefined(sent, `exported: ${exported.map(([n]) => n).join(", ")}`)
      const point = sent![1].find((p) => p.attributes["messaging.destination.name"] === "otel-orders")
      assert.strictEqual(point?.value, 2)
      assert.strictEqual(point?.attributes["messaging.system"], "kafka")
      assert.isDefined(exported.find(([name]) => name === "messaging.client.operation.duration"))
      const span = spans.getFinishedSpans().find((s) => s.name === "send otel-orders")
      assert.isDefined(span)
      assert.strictEqual(span!.attributes["messaging.system"], "kafka")
    }).pipe(Effect.provide(Publisher.layer().pipe(Layer.provideMerge(FakeKafka.layer()))), Effect.provide(otel))
  })

  it.live("the last export at shutdown still holds the publisher's counts (its series outlive its close)", () => {
    const metrics = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
    const reader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 60_000 })
    const otel = NodeSdk.layer(() => ({ resource: { serviceName: "otel-shutdown-test" }, metricReader: reader }))
    const topic = Topic.make({ name: "otel-shutdown", schema: Schema.String, key: (s) => s })
    return Effect.gen(function* () {
      // the publisher closes first, then the SDK's reader makes its last export (layers release in reverse)
      yield* Effect.scoped(
        Publisher.Publisher.use((publisher) => publisher.publish(topic, "user-1")).pipe(
          Effect.provide(Publisher.layer().pipe(Layer.provideMerge(FakeKafka.layer()), Layer.provideMerge(otel)))
        )
      )
      const sent = metrics
        .getMetrics()
        .flatMap((m) => m.scopeMetrics.flatMap((s) => s.metrics))
        .filter((m) => m.descriptor.name === "messaging.client.sent.messages")
        .flatMap((m) => m.dataPoints as ReadonlyArray<{ attributes: Record<string, unknown>; value: unknown }>)
        .find((p) => p.attributes["messaging.destination.name"] === "otel-shutdown")
      assert.strictEqual(sent?.value, 1)
    })
  })
})
