// Kafka transactions on the real broker of this run, once per driver: the transaction contract (the same
// tests run on FakeKafka in test/unit), and visibility checked with kcat, a reader nobody here wrote.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Schema } from "effect"
import { Publisher, Topic } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"
import { TopicReader } from "effect-kafka-publisher/testing"
import type { TransactionalProducer } from "../../src/TransactionalProducer.ts"
import { publisherFor, TransactionBroker, transactionContract, unique } from "../contract/TransactionContract.ts"
import { bootstrapServers, describeWithKafka } from "./broker.ts"
import { kcatAvailable, kcatCount } from "./kcat.ts"
import { createTopic } from "./realHarness.ts"

type DriverMake = (
  config: KafkaJsProducer.KafkaJsTransactionalConfig
) => Effect.Effect<TransactionalProducer, unknown, import("effect").Scope.Scope>

const brokerLayer = (brokers: ReadonlyArray<string>, make: DriverMake) =>
  Layer.succeed(TransactionBroker, {
    createTopic: (name, partitions) => createTopic(brokers, name, { partitions }),
    readBack: (topic, isolation) => TopicReader.readAll({ brokers, topic, isolation, timeout: "20 seconds" }),
    producer: (config) => make({ brokers, ...config })
  })

const drivers: ReadonlyArray<readonly [string, DriverMake]> = [
  ["kafkajs", KafkaJsProducer.makeTransactional],
  ["@platformatic/kafka", PlatformaticProducer.makeTransactional]
]

describeWithKafka("transactions on a real broker", () => {
  for (const [name, make] of drivers) {
    transactionContract(`${name} on Apache Kafka`, brokerLayer(bootstrapServers(), make))

    describe(`${name}: kcat`, () => {
      it.live(
        "kcat read_committed sees the committed transaction only; read_uncommitted sees the aborted one too",
        () =>
          Effect.gen(function* () {
            if (!(yield* kcatAvailable)) return
            const brokers = bootstrapServers()
            const broker = yield* TransactionBroker
            const topic = unique("kcat-orders")
            yield* broker.createTopic(topic, 2)
            const events = Topic.make({ name: topic, schema: Schema.Struct({ n: Schema.Number }) })
            const txp = yield* publisherFor(unique("txn"))
            yield* txp.transaction(
              Effect.flatMap(Publisher.Publisher, (p) => p.publishAll(events, [{ n: 1 }, { n: 2 }]))
            )
            yield* Effect.exit(
              txp.transaction(
                Effect.andThen(
                  Effect.flatMap(Publisher.Publisher, (p) => p.publishAll(events, [{ n: 3 }, { n: 4 }, { n: 5 }])),
                  Effect.fail("refused")
                )
              )
            )
            assert.strictEqual(yield* Effect.promise(() => kcatCount(brokers, topic, "read_committed")), 2)
            assert.strictEqual(yield* Effect.promise(() => kcatCount(brokers, topic, "read_uncommitted")), 5)
          }).pipe(Effect.scoped, Effect.provide(brokerLayer(bootstrapServers(), make))),
        60_000
      )
    })

    // Regression: the reader took kafkajs' admin offsets as the end, and those are the last stable offset, so
    // a read started between a commit and its markers (or during an open transaction) read nothing of it.
    it.live(
      `${name}: TopicReader started while a transaction is open reads it in full once it commits`,
      () =>
        Effect.gen(function* () {
          const brokers = bootstrapServers()
          const topic = unique("reader-open-txn")
          yield* createTopic(brokers, topic, { partitions: 2 })
          const producer = yield* make({ brokers, transactionalId: unique("txn") })
          const transaction = yield* producer.begin
          const record = (n: number) => ({ topic, key: null, value: new TextEncoder().encode(`${n}`), headers: {} })
          yield* transaction.send([record(1), record(2), record(3)])
          const read = (isolation: "read_committed" | "read_uncommitted") =>
            TopicReader.readAll({ brokers, topic, isolation, timeout: "20 seconds" })
          // read_uncommitted sees the open transaction's records at once
          assert.strictEqual((yield* read("read_uncommitted")).length, 3)
          const committed = yield* Effect.forkChild(read("read_committed"))
          yield* Effect.sleep("1 second")
          yield* transaction.commit
          assert.strictEqual((yield* Fiber.join(committed)).length, 3)
        }).pipe(Effect.scoped),
      60_000
    )
  }
})
