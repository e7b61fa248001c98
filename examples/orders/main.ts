/**
 * The orders demo: `npm start`.
 *
 * Publishes 20 OrderPlaced events keyed user-1..user-5 (acks=all, idempotence on) and prints one line per
 * delivery. The 7th order's first send fails with an induced transient error, so the retry policy shows;
 * a 21st order too large for the topic fails fatally (a real RecordTooLarge from the broker) and is routed
 * to `orders.dlt`, whose headers are printed. Ends with the count and latency percentiles.
 *
 * No KAFKA_BROKERS: runs on the embedded in-memory broker (FakeKafka). KAFKA_BROKERS=host:port: runs on
 * that broker (topics `orders`, 3 partitions, max.message.bytes 16 KiB, and `orders.dlt` are created).
 * Exit code 0 when 20 orders were delivered and the oversize one dead-lettered, 1 otherwise.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Clock, Config, DateTime, Effect, Layer, Logger, Option } from "effect"
import { DeadLetter, PublishError, Publisher, type Receipt } from "effect-kafka-publisher"
import { Telemetry } from "effect-kafka-publisher/opentelemetry"
import { FakeKafka, TopicReader } from "effect-kafka-publisher/testing"
import * as hdr from "hdr-histogram-js"
import { driverLayer, driverName } from "../shared/broker.ts"
import { ensureTopics } from "../shared/topics.ts"
import * as InducedFailures from "./InducedFailures.ts"
import { OrderPlaced, ordersTopic } from "./Order.ts"

const topicName = "orders"
const maxMessageBytes = 16 * 1024
const topic = ordersTopic(topicName)

const orders = Array.from(
  { length: 20 },
  (_, i) =>
    new OrderPlaced({
      orderId: `order-${i + 1}`,
      userId: `user-${(i % 5) + 1}`,
      amountCents: 1000 + 25 * i,
      currency: i % 2 === 0 ? "EUR" : "USD",
      placedAt: DateTime.makeUnsafe(Date.UTC(2026, 10, 22, 12, 0, i))
    })
)
const oversize = new OrderPlaced({
  orderId: "order-21",
  userId: "user-1",
  amountCents: 4200,
  currency: "EUR",
  placedAt: DateTime.makeUnsafe(Date.UTC(2026, 10, 22, 12, 1, 0)),
  note: "x".repeat(2 * maxMessageBytes)
})

// order-7's first send fails as if the broker were briefly unreachable; nothing reaches the driver
const induced = InducedFailures.layer((record, attempt) =>
  record.headers.orderId === "order-7" && attempt === 1
    ? new PublishError.Retriable({
        reason: "BrokerUnavailable",
        ambiguous: false,
        topic: record.topic,
        message: "induced transient failure (demo)"
      })
    : undefined
)

const embedded = FakeKafka.layer({
  topics: { [topicName]: { partitions: 3, maxMessageBytes }, [`${topicName}.dlt`]: { partitions: 1 } }
})

const decoder = new TextDecoder()

const line = (receipt: Receipt.Receipt, orderId: string) =>
  receipt._tag === "Delivered"
    ? `delivered   ${receipt.topic} partition ${receipt.partition} offset ${receipt.offset.padStart(3)}  ${new Date(receipt.timestamp).toISOString()}  ${orderId}${receipt.attempts > 1 ? ` (attempts: ${receipt.attempts})` : ""}`
    : `dead-lettered ${orderId} -> ${receipt.deadLetterTopic} partition ${receipt.partition} offset ${receipt.offset}: ${DeadLetter.errorType(receipt.error)}`

type DeadLetterHeaders<R> = (topic: string) => Effect.Effect<Readonly<Record<string, string | Uint8Array>>, unknown, R>

const demo = <R>(readDeadLetterHeaders: DeadLetterHeaders<R>) =>
  Effect.gen(function* () {
    const publisher = yield* Publisher.Publisher
    const latency = hdr.build({
      lowestDiscernibleValue: 1,
      highestTrackableValue: 120_000_000,
      numberOfSignificantValueDigits: 3
    })
    let delivered = 0
    let deadLettered = 0
    const publishOne = (order: OrderPlaced) =>
      Effect.gen(function* () {
        const start = yield* Clock.currentTimeNanos
        const receipt = yield* publisher.publish(topic, order)
        latency.recordValue(Number(((yield* Clock.currentTimeNanos) - start) / 1000n)) // microseconds
        yield* Effect.sync(() => console.log(line(receipt, order.orderId)))
        if (receipt._tag === "Delivered") delivered++
        else deadLettered++
        return receipt
      })
    yield* Effect.forEach(orders, publishOne, { concurrency: 5, discard: true })
    const dead = yield* publishOne(oversize)
    if (dead._tag === "DeadLettered") {
      const headers = yield* readDeadLetterHeaders(dead.deadLetterTopic)
      for (const name of Object.values(DeadLetter.headerNames)) {
        const value = (headers as Record<string, string | Uint8Array | undefined>)[name]
        if (value !== undefined) {
          console.log(`  ${name}: ${typeof value === "string" ? value : decoder.decode(value)}`.slice(0, 160))
        }
      }
    }
    const ms = (p: number) => (latency.getValueAtPercentile(p) / 1000).toFixed(2)
    console.log(
      `\n${delivered} delivered, ${deadLettered} dead-lettered; latency ms p50 ${ms(50)} p95 ${ms(95)} p99 ${ms(99)} max ${(latency.maxValue / 1000).toFixed(2)}`
    )
    if (delivered !== orders.length || deadLettered !== 1) {
      return yield* Effect.fail(new Error(`expected ${orders.length} delivered and 1 dead-lettered`))
    }
  })

const main = Effect.gen(function* () {
  const brokers = yield* Config.String("KAFKA_BROKERS").pipe(
    Config.option,
    Config.map(Option.map((s) => s.split(",").map((b) => b.trim())))
  )
  if (Option.isNone(brokers)) {
    console.log("broker: embedded in-memory Kafka (FakeKafka); set KAFKA_BROKERS=host:port to use a real broker\n")
    const fromFake: DeadLetterHeaders<FakeKafka.FakeKafka> = (topic) =>
      FakeKafka.FakeKafka.use((fake) => fake.records(topic)).pipe(
        Effect.map((records) => records.at(-1)?.headers ?? {})
      )
    return yield* demo(fromFake).pipe(
      Effect.provide(Publisher.layer().pipe(Layer.provide(induced), Layer.provideMerge(embedded)))
    )
  }
  console.log(`broker: ${brokers.value.join(",")} (${yield* driverName} driver, acks=all, idempotence on)\n`)
  yield* ensureTopics(brokers.value, [
    { name: topicName, partitions: 3, config: { "max.message.bytes": String(maxMessageBytes) } },
    { name: `${topicName}.dlt`, partitions: 1 }
  ])
  const fromBroker: DeadLetterHeaders<never> = (topic) =>
    TopicReader.readAll({ brokers: brokers.value, topic }).pipe(Effect.map((records) => records.at(-1)?.headers ?? {}))
  return yield* demo(fromBroker).pipe(
    Effect.provide(Publisher.layer().pipe(Layer.provide(induced), Layer.provide(driverLayer())))
  )
})

main.pipe(
  // OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set (inside the logger layer, so logs are exported too)
  Effect.provide(Telemetry.layerConfig({ serviceName: "orders-demo" })),
  Effect.provide(Logger.layer([Logger.consolePretty()])),
  NodeRuntime.runMain
)
