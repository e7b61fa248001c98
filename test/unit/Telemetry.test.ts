// Telemetry: the one layer that exports over OTLP/HTTP. Off (nothing loaded) without an endpoint; on, the
// publisher's span, metrics and log lines reach an OTLP receiver, flushed when the layer's scope closes.
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Schema } from "effect"
import { Publisher, Topic } from "effect-kafka-publisher"
import { Telemetry } from "effect-kafka-publisher/opentelemetry"
import { FakeKafka } from "effect-kafka-publisher/testing"
import { modulesLoadedBy } from "../support/moduleLoads.ts"
import { startOtlpReceiver } from "../support/otlpReceiver.ts"
import { runExample } from "../support/runExample.ts"

const fromEnv = (env: Record<string, string>) =>
  Effect.provide(
    Telemetry.optionsConfig({ serviceName: "fallback" }),
    ConfigProvider.layer(ConfigProvider.fromUnknown(env))
  )

describe("Telemetry", () => {
  it("endpoints: <endpoint>/v1/<signal>, a signal's own URL as is, false turns one off", () => {
    assert.deepStrictEqual(Telemetry.endpoints({ serviceName: "s", endpoint: "http://c:4318/" }), {
      traces: "http://c:4318/v1/traces",
      metrics: "http://c:4318/v1/metrics",
      logs: "http://c:4318/v1/logs"
    })
    assert.deepStrictEqual(
      Telemetry.endpoints({
        serviceName: "s",
        endpoint: "http://c:4318",
        tracesEndpoint: "http://t/x",
        logsEndpoint: false
      }),
      { traces: "http://t/x", metrics: "http://c:4318/v1/metrics", logs: undefined }
    )
    assert.isFalse(Telemetry.enabled({ serviceName: "s" }))
    assert.isTrue(Telemetry.enabled({ serviceName: "s", metricsEndpoint: "http://m/v1/metrics" }))
  })

  it.effect("optionsConfig reads the standard OTEL_* variables", () =>
    Effect.gen(function* () {
      const none = yield* fromEnv({})
      assert.isFalse(Telemetry.enabled(none))
      assert.strictEqual(none.serviceName, "fallback")
      const all = yield* fromEnv({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
        OTEL_SERVICE_NAME: "orders",
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: "http://logs:9999/ingest",
        OTEL_METRICS_EXPORTER: "none",
        OTEL_EXPORTER_OTLP_HEADERS: "api-key=a%20b,x-tenant=t1",
        OTEL_METRIC_EXPORT_INTERVAL: "500"
      })
      assert.strictEqual(all.serviceName, "orders")
      assert.deepStrictEqual(Telemetry.endpoints(all), {
        traces: "http://collector:4318/v1/traces",
        metrics: undefined,
        logs: "http://logs:9999/ingest"
      })
      assert.deepStrictEqual(all.headers, { "api-key": "a b", "x-tenant": "t1" })
      assert.strictEqual(all.metricsInterval, "500 millis")
      const disabled = yield* fromEnv({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
        OTEL_SDK_DISABLED: "true"
      })
      assert.isFalse(Telemetry.enabled(disabled))
    })
  )

  it("off: without an endpoint, a publish through layerConfig loads no OpenTelemetry module", {
    timeout: 30_000
  }, async () => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("OTEL_")))
    const script = `
      import { Effect, Layer, Schema } from "effect"
      import { Publisher, Topic } from "effect-kafka-publisher"
      import { Telemetry } from "effect-kafka-publisher/opentelemetry"
      import { FakeKafka } from "effect-kafka-publisher/testing"
      const topic = Topic.make({ name: "t", schema: Schema.String, key: (s) => s })
      const receipt = await Effect.runPromise(Publisher.Publisher.use((p) => p.publish(topic, "k")).pipe(
        Effect.provide(Publisher.layer().pipe(Layer.provide(FakeKafka.layer()))),
        Effect.provide(Telemetry.layerConfig({ serviceName: "off" }))))
      if (receipt._tag !== "Delivered") process.exit(3)`
    const urls = await modulesLoadedBy(script, env)
    assert.isTrue(
      urls.some((url) => url.endsWith("/src/opentelemetry/Telemetry.ts")),
      "the hook saw the entry point load"
    )
    assert.deepStrictEqual(
      urls.filter((url) => url.includes("/@opentelemetry/") || url.includes("/src/opentelemetry/internal/")),
      []
    )
  })

  it.live(
    "on: the PRODUCER span, the metrics and the log lines reach OTLP/HTTP, spans and logs flushed when the scope closes",
    () =>
      Effect.gen(function* () {
        const receiver = yield* Effect.acquireRelease(
          Effect.promise(() => startOtlpReceiver()),
          (r) => Effect.promise(() => r.close())
        )
        const topic = Topic.make({ name: "telemetry-orders", schema: Schema.String, key: (s) => s.slice(0, 8) })
        const telemetry = Telemetry.layer({
          serviceName: "telemetry-test",
          serviceVersion: "1.2.3",
          endpoint: receiver.url,
          metricsInterval: "100 millis"
        })
        // order-2 is refused as fatal: dead-lettered, with the span's error.type and a log line at Error
        const refusing = FakeKafka.layer({ topics: { "telemetry-orders": { partitions: 1, maxMessageBytes: 300 } } })
        yield* Effect.gen(function* () {
          const publisher = yield* Publisher.Publisher
          yield* publisher.publish(topic, "order-1")
          const dead = yield* publisher.publish(topic, "x".repeat(1000))
          assert.strictEqual(dead._tag, "DeadLettered")
          // metrics: a periodic export, while the publisher is open (its series leave the registry when it closes)
          while (!receiver.metrics().some((m) => m.name === "kafka.publisher.dead_lettered")) yield* Effect.sleep(20)
        }).pipe(
          Effect.provide(Publisher.layer().pipe(Layer.provide(refusing))),
          Effect.provide(telemetry),
          Effect.scoped
        )
        // the scope is closed: the spans and log lines still buffered are exported without waiting
        const spans = receiver.spans()
        const sends = spans.filter((s) => s.name === "send telemetry-orders")
        assert.strictEqual(sends.length, 2, spans.map((s) => s.name).join(", "))
        assert.strictEqual(sends[0]!.kind, 4, "SPAN_KIND_PRODUCER")
        assert.include(sends[0]!.attributes, {
          "messaging.system": "kafka",
          "messaging.destination.name": "telemetry-orders",
          "messaging.operation.name": "send",
          "messaging.destination.partition.id": "0"
        })
        assert.strictEqual(sends[1]!.attributes["error.type"], "Fatal.RecordTooLarge")
        assert.isDefined(spans.find((s) => s.name === "dead-letter"))
        assert.include(receiver.resources("/v1/traces")[0], {
          "service.name": "telemetry-test",
          "service.version": "1.2.3"
        })
        const metrics = receiver.metrics()
        const sent = metrics.find((m) => m.name === "messaging.client.sent.messages")
        assert.isDefined(sent, metrics.map((m) => m.name).join(", "))
        assert.strictEqual(
          sent!.points.find((p) => p.attributes["messaging.destination.name"] === "telemetry-orders")?.value,
          1
        )
        const duration = metrics.find((m) => m.name === "messaging.client.operation.duration")
        assert.strictEqual(duration?.kind, "histogram")
        assert.isDefined(metrics.find((m) => m.name === "kafka.publisher.dead_lettered"))
        const logs = receiver.logs()
        assert.isTrue(
          logs.some((l) => l.severityText === "Error" && l.attributes.errorType === "Fatal.RecordTooLarge"),
          JSON.stringify(logs)
        )
      }).pipe(Effect.scoped),
    20_000
  )

  it("the orders demo (npm start) exports its spans, metrics and logs when OTEL_EXPORTER_OTLP_ENDPOINT is set", {
    timeout: 60_000
  }, async () => {
    const receiver = await startOtlpReceiver()
    try {
      const { code, stderr } = await runExample("examples/orders/main.ts", {
        KAFKA_BROKERS: undefined,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_SERVICE_NAME: "orders-demo-test"
      })
      assert.strictEqual(code, 0, stderr)
      // 21 publishes and order-7's retry: every span left at exit, without waiting for a batch interval
      const sends = receiver.spans().filter((s) => s.name === "send orders")
      assert.strictEqual(sends.length, 21)
      assert.isDefined(receiver.spans().find((s) => s.name === "dead-letter"))
      assert.include(receiver.resources("/v1/traces")[0], { "service.name": "orders-demo-test" })
      assert.isTrue(receiver.logs().some((l) => l.attributes.errorType === "Fatal.RecordTooLarge"))
      assert.isTrue(receiver.requests().some((r) => r.path === "/v1/metrics"))
    } finally {
      await receiver.close()
    }
  })
})
