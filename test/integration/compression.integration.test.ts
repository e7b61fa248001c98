// Compression on a real broker: each codec the driver offers writes records a consumer reads back intact.
import { assert, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { Publisher, Topic } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { TopicReader } from "effect-kafka-publisher/testing"
import { bootstrapServers, describeWithKafka } from "./broker.ts"
import { createTopic } from "./realHarness.ts"

const decoder = new TextDecoder()

describeWithKafka("compression", () => {
  for (const compression of ["gzip", "snappy", "zstd"] as const) {
    it.live(`${compression}: 50 records read back intact`, () =>
      Effect.gen(function* () {
        const brokers = bootstrapServers()
        const name = `compressed-${compression}-${Date.now()}`
        yield* createTopic(brokers, name, { partitions: 2 })
        const topic = Topic.make({ name, schema: Schema.String, key: (s) => s.slice(0, 6) })
        const values = Array.from({ length: 50 }, (_, i) => `user-${i % 3} ${"compressible ".repeat(20)}${i}`)
        yield* Publisher.Publisher.use((p) => p.publishAll(topic, values, { concurrency: 8 })).pipe(
          Effect.provide(Publisher.layer().pipe(Layer.provide(KafkaJsProducer.layer({ brokers, compression }))))
        )
        const read = yield* TopicReader.readAll({ brokers, topic: name })
        assert.deepStrictEqual(
          read.map((r) => JSON.parse(decoder.decode(r.value!)) as string).sort(),
          [...values].sort()
        )
      })
    )
  }
})
