/**
 * Latency and throughput of the same order load under different producer settings:
 * `npm run example:orders-latency`.
 *
 * The same EVENTS (default 5000) OrderPlaced events from CALLERS (default 64) concurrent callers, published
 * per event (no Batcher), then the orders lab's full grid: through the Batcher with linger 0, 5 and 20 ms, each
 * uncompressed and with gzip, snappy, lz4 and zstd. Prints p50/p95/p99 latency and records/s per variant. Against KAFKA_BROKERS when set (each
 * variant on a topic of its own); otherwise on the embedded broker, where compression changes nothing.
 */
import { Clock, DateTime, Duration, Effect, Layer, Option } from "effect"
import { Batcher, type ProducerConfig, Publisher } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { FakeKafka } from "effect-kafka-publisher/testing"
import * as hdr from "hdr-histogram-js"
import { brokersFromEnv } from "../shared/broker.ts"
import { ensureTopics } from "../shared/topics.ts"
import { OrderPlaced, ordersTopic } from "./Order.ts"

const events = Number(process.env.EVENTS ?? 5000)
const callers = Number(process.env.CALLERS ?? 64)

interface Variant {
  readonly name: string
  /** The Batcher's linger in ms; undefined: no Batcher, one produce request per publish. */
  readonly linger: number | undefined
  readonly compression: ProducerConfig.Compression
}

const codecs: ReadonlyArray<ProducerConfig.Compression> = ["none", "gzip", "snappy", "lz4", "zstd"]

const variants: ReadonlyArray<Variant> = [
  { name: "per event (no Batcher)", linger: undefined, compression: "none" },
  ...[0, 5, 20].flatMap((linger) =>
    codecs.map((compression) => ({
      name: `linger ${linger} ms${compression === "none" ? "" : ` + ${compression}`}`,
      linger,
      compression
    }))
  )
]

const order = (i: number) =>
  new OrderPlaced({
    orderId: `order-${i}`,
    userId: `user-${(i % 5) + 1}`,
    amountCents: 1000 + i,
    currency: "EUR",
    placedAt: DateTime.makeUnsafe(Date.UTC(2026, 10, 22, 12, 0, 0) + i),
    note: "gift wrap, leave at the door, ring twice".repeat(4) // a few hundred bytes that compress
  })

const measure = (variant: Variant, brokers: Option.Option<ReadonlyArray<string>>) =>
  Effect.gen(function* () {
    const topicName = `orders-latency-${variant.name.replace(/\W+/g, "-")}-${Date.now()}`
    if (Option.isSome(brokers)) yield* ensureTopics(brokers.value, [{ name: topicName, partitions: 3 }])
    const topic = ordersTopic(topicName)
    const driver = Option.isSome(brokers)
      ? KafkaJsProducer.layer({ brokers: brokers.value, compression: variant.compression, clientId: "orders-latency" })
      : FakeKafka.layer()
    const producer =
      variant.linger === undefined
        ? driver
        : Batcher.layer({ linger: Duration.millis(variant.linger) }).pipe(Layer.provide(driver))
    const latency = hdr.build({
      lowestDiscernibleValue: 1,
      highestTrackableValue: 120_000_000,
      numberOfSignificantValueDigits: 3
    })
    const started = yield* Clock.currentTimeMillis
    yield* Effect.gen(function* () {
      const publisher = yield* Publisher.Publisher
      let next = 0
      const caller = Effect.gen(function* () {
        while (next < events) {
          const i = next++
          const start = yield* Clock.currentTimeNanos
          yield* publisher.publish(topic, order(i))
          latency.recordValue(Number(((yield* Clock.currentTimeNanos) - start) / 1000n))
        }
      })
      yield* Effect.all(
        Array.from({ length: callers }, () => caller),
        { concurrency: "unbounded", discard: true }
      )
    }).pipe(Effect.provide(Publisher.layer().pipe(Layer.provide(producer))))
    const seconds = ((yield* Clock.currentTimeMillis) - started) / 1000
    const ms = (p: number) => (latency.getValueAtPercentile(p) / 1000).toFixed(2)
    return `| ${variant.name} | ${ms(50)} | ${ms(95)} | ${ms(99)} | ${Math.round(events / seconds).toLocaleString("en-US")} |`
  })

const main = Effect.gen(function* () {
  const brokers = yield* brokersFromEnv
  console.log(
    `${events} orders from ${callers} callers on ${Option.isSome(brokers) ? brokers.value.join(",") : "the embedded broker (compression has no effect there)"}\n`
  )
  console.log("| variant | p50 ms | p95 ms | p99 ms | records/s |\n| --- | --- | --- | --- | --- |")
  for (const variant of variants) console.log(yield* measure(variant, brokers))
})

Effect.runPromise(main).catch((error) => {
  console.error(error)
  process.exit(1)
})
