/**
 * `effect-kafka-publisher/platformatic`: the `Producer` driver over @platformatic/kafka 2.x (an optional
 * peer dependency: install `@platformatic/kafka` to use it).
 *
 * ```ts
 * import { Publisher } from "effect-kafka-publisher"
 * import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"
 *
 * const live = Publisher.layer().pipe(Layer.provide(PlatformaticProducer.layerConfig()))
 * ```
 *
 * @module effect-kafka-publisher/platformatic
 */
export * as PlatformaticProducer from "./PlatformaticProducer.ts"
