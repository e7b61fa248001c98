// acks=none and acks=leader on the real broker, both drivers (issue 18.3): every record is written, receipts
// carry offset "-1" with acks=none (no answer: as the Java client reports) and real offsets with leader.
import { assert, it } from "@effect/vitest"
import { ConfigProvider, Effect, type Layer, Schedule } from "effect"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"
import { TopicReader } from "effect-kafka-publisher/testing"
import { Producer } from "../../src/Producer.ts"
import type { PublishError } from "../../src/PublishError.ts"
import { bootstrapServers, describeWithKafka } from "./broker.ts"
import { createTopic } from "./realHarness.ts"

const drivers: ReadonlyArray<
  [string, (overrides: { brokers: ReadonlyArray<string> }) => Layer.Layer<Producer, unknown>]
> = [
  ["kafkajs", (overrides) => KafkaJsProducer.layerConfig(overrides)],
  ["@platformatic/kafka", (overrides) => PlatformaticProducer.layerConfig(overrides)]
]

const decoder = new TextDecoder()

describeWithKafka("acks on a real broker", () => {
  for (const [driver, layerConfig] of drivers) {
    for (const acks of ["none", "leader"] as const) {
      it.live(
        `issue 18.3: ${driver} with KAFKA_ACKS=${acks} writes every record and answers one receipt each`,
        () =>
          Effect.gen(function* () {
            const brokers = bootstrapServers()
            const name = `acks-${acks}-${driver.replace(/\W/g, "")}-${Date.now()}`
            yield* createTopic(brokers, name, { partitions: 2 })
            const records = Array.from({ length: 6 }, (_, i) => ({
              topic: name,
              key: null,
              value: Buffer.from(`v${i}`),
              headers: {},
              partition: i % 2
            }))
            // three sends at once, two records each: requests in flight together (none answer with acks=none)
            const receipts = yield* Producer.use((producer) =>
              Effect.forEach([0, 2, 4], (i) => producer.send(records.slice(i, i + 2)), { concurrency: "unbounded" })
            ).pipe(
              Effect.map((parts) => parts.flat()),
              Effect.provide(layerConfig({ brokers })),
              Effect.provide(
                ConfigProvider.layer(ConfigProvider.fromUnknown({ KAFKA_ACKS: acks, KAFKA_IDEMPOTENT: "false" }))
              )
            )
            assert.strictEqual(receipts.length, 6)
            receipts.forEach((r, i) => {
              assert.strictEqual(r.partition, i % 2, `record ${i}`)
            })
            // acks=none: the send returns before the broker appended, so read until all six are there (bounded)
            const read = yield* TopicReader.readAll({ brokers, topic: name }).pipe(
              Effect.repeat({
                while: (read) => read.length < records.length,
                schedule: Schedule.spaced("200 millis"),
                times: 50
              })
            )
            assert.sameMembers(
              read.map((r) => decoder.decode(r.value!)),
              records.map((r) => decoder.decode(r.value))
            )
            if (acks === "none") {
              assert.deepStrictEqual(
                receipts.map((r) => r.offset),
                receipts.map(() => "-1")
              )
            } else {
              const at = new Map(read.map((r) => [`${r.partition}/${r.offset}`, decoder.decode(r.value!)]))
              receipts.forEach((r, i) => {
                assert.strictEqual(at.get(`${r.partition}/${r.offset}`), `v${i}`)
              })
            }
          }) as Effect.Effect<void, PublishError | unknown>
      )
    }
  }
})
