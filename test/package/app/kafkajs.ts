// An app that installed effect-kafka-publisher with `effect` and `kafkajs` only.
import { Layer } from "effect"
import { type PublishError, Publisher } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { runOnFakeKafka } from "./orders.js"

// production wiring, typechecked but never built here (it would connect to a broker)
export const PublisherLive: Layer.Layer<Publisher.Publisher, PublishError.PublishError> = Publisher.layer().pipe(
  Layer.provide(KafkaJsProducer.layer({ brokers: ["kafka-1:9092"], clientId: "orders", compression: "gzip" }))
)
export const PublisherFromEnvironment = Publisher.layer().pipe(Layer.provide(KafkaJsProducer.layerConfig()))

await runOnFakeKafka("kafkajs app")
