/**
 * `effect-kafka-publisher/kafkajs`: the `Producer` driver over kafkajs 2.2.4 (an optional peer dependency:
 * install `kafkajs` to use it; `kafkajs-snappy` too for snappy compression).
 *
 * ```ts
 * import { Publisher } from "effect-kafka-publisher"
 * import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
 *
 * const live = Publisher.layer().pipe(Layer.provide(KafkaJsProducer.layerConfig()))
 * ```
 *
 * @module effect-kafka-publisher/kafkajs
 */
export * as KafkaJsProducer from "./KafkaJsProducer.ts"
