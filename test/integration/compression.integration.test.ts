// Compression on a real broker: each codec the driver offers writes records a consumer reads back intact.
import { assert, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { Publisher, Topic } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"
import { TopicReader } from "effect-kafka-publisher/testing"
import { Producer } from "../../src/Producer.ts"
import { bootstrapServers, describeWithKafka } from "./broker.ts"
import { createTopic } from "./realHarness.ts"

const decoder = new TextDecoder()

describeWithKafka("compression", () => {
  const drivers = {
    kafkajs: (brokers: ReadonlyArray<string>, compression: "gzip" | "snappy" | "lz4" | "zstd") =>
      KafkaJsProducer.layer({ brokers, compression }),
    platformatic: (brokers: ReadonlyArray<string>, compression: "gzip" | "snappy" | "lz4" | "zstd") =>
      PlatformaticProducer.layer({ brokers, compression })
  }
  for (const [driver, makeLayer] of Object.entries(drivers))
    for (const compression of ["gzip", "snappy", "lz4", "zstd"] as const) {
      it.live(`${driver}, ${compression}: 50 records read back intact`, () =>
        Effect.gen(function* () {
          const brokers = bootstrapServers()
          const name = `compressed-${driver}-${compression}-${Date.now()}`
          yield* createTopic(brokers, name, { partitions: 2 })
          const topic = Topic.make({ name, schema: Schema.String, key: (s) => s.slice(0, 6) })
          const values = Array.from({ length: 50 }, (_, i) => `user-${i % 3} ${"compressible ".repeat(20)}${i}`)
          yield* Publisher.Publisher.use((p) => p.publishAll(topic, values, { concurrency: 8 })).pipe(
            Effect.provide(Publisher.layer().pipe(Layer.provide(makeLayer(brokers, compression))))
          )
          const read = yield* TopicReader.readAll({ brokers, topic: name })
          assert.deepStrictEqual(
            read.map((r) => JSON.parse(decoder.decode(r.value!)) as string).sort(),
            [...values].sort()
          )
        })
      )
      // gzip is encoded asynchronously by @platformatic/kafka: requests in flight must still leave in order
      it.live(`${driver}, ${compression}: 10 sends in flight, read back intact and in call order per partition`, () =>
        Effect.gen(function* () {
          const brokers = bootstrapServers()
          const name = `compressed-sends-${driver}-${compression}-${Date.now()}`
          yield* createTopic(brokers, name, { partitions: 2 })
          const sends = Array.from({ length: 10 }, (_, s) =>
            Array.from({ length: 20 }, (_, r) => ({
              topic: name,
              key: Buffer.from(`k${r % 4}`),
              value: Buffer.from(`${s}/${r} ${"compressible ".repeat(20)}`),
              headers: {}
            }))
          )
          yield* Producer.use((producer) => Effect.forEach(sends, producer.send, { concurrency: "unbounded" })).pipe(
            Effect.provide(makeLayer(brokers, compression))
          )
          const read = yield* TopicReader.readAll({ brokers, topic: name })
          assert.strictEqual(read.length, 200)
          for (const partition of [0, 1]) {
            const order = read
              .filter((r) => r.partition === partition)
              .map((r) => decoder.decode(r.value!).split(" ")[0]!.split("/").map(Number) as [number, number])
            assert.deepStrictEqual(
              order,
              [...order].sort((x, y) => x[0] - y[0] || x[1] - y[1]),
              `partition ${partition}`
            )
          }
        })
      )
    }
})
