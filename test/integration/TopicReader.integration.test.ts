// TopicReader on the real broker: the isolation option (Java's isolation.level) against records of an aborted
// and a committed transaction, written by kafkajs's transactional producer. Both reads must finish at once:
// the partition ends with a commit marker, which the client filters out and never hands to eachBatch.
import { assert, it } from "@effect/vitest"
import { Effect } from "effect"
import { TopicReader } from "effect-kafka-publisher/testing"
import kafkajs from "kafkajs"
import { bootstrapServers, describeWithKafka } from "./broker.ts"
import { createTopic } from "./realHarness.ts"

const writeTransactions = async (topic: string) => {
  const kafka = new kafkajs.Kafka({ brokers: bootstrapServers(), logLevel: kafkajs.logLevel.NOTHING })
  const producer = kafka.producer({ transactionalId: `reader-test-${topic}`, idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  try {
    const aborted = await producer.transaction()
    await aborted.send({ topic, messages: [{ value: "aborted-1" }, { value: "aborted-2" }] })
    await aborted.abort()
    const committed = await producer.transaction()
    await committed.send({ topic, messages: [{ value: "committed-1" }] })
    await committed.commit()
  } finally {
    await producer.disconnect()
  }
}

describeWithKafka("TopicReader on the real broker", () => {
  it.live("read_committed skips an aborted transaction, read_uncommitted reads it; both end at the marker", () =>
    Effect.gen(function* () {
      const topic = `reader-isolation-${Date.now()}`
      yield* createTopic(bootstrapServers(), topic, { partitions: 1 })
      yield* Effect.promise(() => writeTransactions(topic))
      const values = (isolation: "read_committed" | "read_uncommitted") =>
        TopicReader.readAll({ brokers: bootstrapServers(), topic, isolation, timeout: "20 seconds" }).pipe(
          Effect.map((records) => records.map((r) => Buffer.from(r.value!).toString()))
        )
      assert.deepStrictEqual(yield* values("read_committed"), ["committed-1"])
      assert.deepStrictEqual(yield* values("read_uncommitted"), ["aborted-1", "aborted-2", "committed-1"])
    })
  )
})
