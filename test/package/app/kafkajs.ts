// An app that installed effect-kafka-publisher with `effect` and `kafkajs` only (telemetry off: no OTLP endpoint).
import { Layer } from "effect"
import { type PublishError, Publisher } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { Telemetry } from "effect-kafka-publisher/opentelemetry"
import { runOnFakeKafka } from "./orders.js"

// production wiring, typechecked but never built here (it would connect to a broker)
export const PublisherLive: Layer.Layer<Publisher.Publisher, PublishError.PublishError> = Publisher.layer().pipe(
  Layer.provide(KafkaJsProducer.layer({ brokers: ["kafka-1:9092"], clientId: "orders", compression: "gzip" }))
)
export const PublisherFromEnvironment = Publisher.layer().pipe(Layer.provide(KafkaJsProducer.layerConfig()))

// no OTEL_* endpoint set: an empty layer, so none of the optional OpenTelemetry packages is needed
await runOnFakeKafka("kafkajs app", Telemetry.layerConfig({ serviceName: "orders" }))
