// TopicReader at read_committed against kcat (librdkafka, a reader nobody here wrote) on one partition holding
// transactions of several producers interleaved, some aborted. Regression: kafkajs 2.2.4's filter
// (consumer/filterAbortedMessages.js) expects the fetch's aborted transactions sorted by first offset and
// starts at most one per record; brokers list them in abort-marker order, so the reader let aborted records
// through (and could drop committed ones).
import { assert, it } from "@effect/vitest"
import { Effect } from "effect"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { TopicReader } from "effect-kafka-publisher/testing"
import type { TransactionHandle } from "../../src/TransactionalProducer.ts"
import { unique } from "../contract/TransactionContract.ts"
import { bootstrapServers, describeWithKafka } from "./broker.ts"
import { kcatAvailable, kcatLines } from "./kcat.ts"
import { createTopic } from "./realHarness.ts"

const encoder = new TextEncoder()
const records = (topic: string, label: string, n: number) =>
  Array.from({ length: n }, (_, i) => ({ topic, key: null, value: encoder.encode(`${label}/${i}`), headers: {} }))

/** The offsets TopicReader and kcat read at read_committed, each sorted. */
const readBoth = (topic: string) =>
  Effect.gen(function* () {
    const brokers = bootstrapServers()
    const read = yield* TopicReader.readAll({ brokers, topic, isolation: "read_committed", timeout: "20 seconds" })
    const kcat = yield* Effect.promise(() => kcatLines(brokers, topic, "read_committed", "%o"))
    const sorted = (offsets: Iterable<string>) => [...offsets].map(Number).sort((a, b) => a - b)
    return { reader: sorted(read.map((r) => r.offset)), kcat: sorted(kcat) }
  })

describeWithKafka("TopicReader read_committed on interleaved transactions", () => {
  it.live(
    "3 producers, transactions open at once, aborted in another order than begun: the reader reads what kcat reads",
    () =>
      Effect.gen(function* () {
        if (!(yield* kcatAvailable)) return
        const brokers = bootstrapServers()
        const topic = unique("rc-interleaved")
        yield* createTopic(brokers, topic, { partitions: 1 })
        const producers = yield* Effect.forEach(["a", "b", "c"], (p) =>
          KafkaJsProducer.makeTransactional({ brokers, transactionalId: unique(`rc-${p}`) })
        )
        // two rounds: a, b and c each send 2 records while all three are open, then c aborts, b commits and
        // a aborts; the abort markers list c before a, whose records come first
        for (const round of [1, 2]) {
          const open: Array<TransactionHandle> = []
          for (const [i, producer] of producers.entries()) {
            const transaction = yield* producer.begin
            yield* transaction.send(records(topic, `${round}${"abc"[i]}`, 2))
            open.push(transaction)
          }
          const [a, b, c] = open as [TransactionHandle, TransactionHandle, TransactionHandle]
          yield* c.abort
          yield* b.commit
          yield* a.abort
        }
        const { reader, kcat } = yield* readBoth(topic)
        assert.strictEqual(kcat.length, 4, "kcat: the two committed transactions of b")
        assert.deepStrictEqual(reader, kcat)
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "4 producers x 12 concurrent transactions of 3 on one partition, every 3rd aborted: the reader reads what kcat reads",
    () =>
      Effect.gen(function* () {
        if (!(yield* kcatAvailable)) return
        const brokers = bootstrapServers()
        const topic = unique("rc-load")
        yield* createTopic(brokers, topic, { partitions: 1 })
        yield* Effect.forEach(
          [0, 1, 2, 3],
          (p) =>
            Effect.gen(function* () {
              const producer = yield* KafkaJsProducer.makeTransactional({ brokers, transactionalId: unique(`rc-${p}`) })
              for (let t = 0; t < 12; t++) {
                const transaction = yield* producer.begin
                yield* transaction.send(records(topic, `${p}-${t}`, 3))
                yield* (t + p) % 3 === 0 ? transaction.abort : transaction.commit
              }
            }),
          { concurrency: "unbounded" }
        )
        const { reader, kcat } = yield* readBoth(topic)
        assert.strictEqual(kcat.length, 3 * (48 - 16), "kcat: the 32 committed transactions")
        assert.deepStrictEqual(reader, kcat)
      }).pipe(Effect.scoped),
    60_000
  )
})
