/** What every benchmark publishes, and the drivers it can publish through. */
import { Schema } from "effect"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"
import * as hdr from "hdr-histogram-js"

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

/** An HDR histogram of latencies in µs (1 µs to 10 min, 3 significant digits). */
export const histogram = (): hdr.Histogram =>
  hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 })

/** A histogram's percentiles in ms. */
export const percentiles = (h: hdr.Histogram) => ({
  p50: h.getValueAtPercentile(50) / 1000,
  p95: h.getValueAtPercentile(95) / 1000,
  p99: h.getValueAtPercentile(99) / 1000,
  max: h.maxValue / 1000
})
