/** What every benchmark publishes, and the drivers it can publish through. */
import { Schema } from "effect"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"

/** A small event; its JSON is about 40 bytes plus the body. */
export class BenchEvent extends Schema.Class<BenchEvent>("BenchEvent")({
  id: Schema.Int,
  key: Schema.String,
  body: Schema.String
}) {}

export const drivers = { kafkajs: KafkaJsProducer.layer, platformatic: PlatformaticProducer.layer } as const

export type DriverName = keyof typeof drivers

/** The driver an environment variable names: "platformatic", else kafkajs. */
export const driverNamed = (value: string | undefined): DriverName =>
  value === "platformatic" ? "platformatic" : "kafkajs"
