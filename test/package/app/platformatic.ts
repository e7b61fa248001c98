// An app that installed effect-kafka-publisher with `effect` and `@platformatic/kafka` only.
import { Layer } from "effect"
import { Batcher, type PublishError, Publisher } from "effect-kafka-publisher"
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"
import { runOnFakeKafka } from "./orders.js"

// production wiring, typechecked but never built here (it would connect to a broker)
export const PublisherLive: Layer.Layer<Publisher.Publisher, PublishError.PublishError> = Publisher.layer().pipe(
  Layer.provide(Batcher.layer({ linger: "5 millis" })),
  Layer.provide(PlatformaticProducer.layer({ brokers: ["kafka-1:9092"], clientId: "orders" }))
)
export const PublisherFromEnvironment = Publisher.layer().pipe(Layer.provide(PlatformaticProducer.layerConfig()))

await runOnFakeKafka("platformatic app")
