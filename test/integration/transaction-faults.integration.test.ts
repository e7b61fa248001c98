// Issue 15, transactions under faults, once per driver, on a single-node cluster of this file's own: the
// publishing process killed (kill -9) with a transaction open, and the broker paused (SIGSTOP) while a
// transaction commits. Visibility is checked with TopicReader and with kcat, a reader nobody here wrote.
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Option, Schema, type Scope } from "effect"
import { type PublishError, Publisher, Topic, TransactionalPublisher } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"
import { TopicReader } from "effect-kafka-publisher/testing"
import * as kafkajs from "kafkajs"
import { mayHaveWritten } from "../../src/PublishError.ts"
import { partitionOffsets } from "../../src/reader/partitionOffsets.ts"
import {
  type TransactionalProducer,
  TransactionalProducer as TransactionalProducerTag
} from "../../src/TransactionalProducer.ts"
import { unique } from "../contract/TransactionContract.ts"
import { startExample, waitForOutput } from "../support/runExample.ts"
import { describeWithKafka, kafkaVersion } from "./broker.ts"
import { kcatAvailable, kcatCount } from "./kcat.ts"
import { ownCluster } from "./ownCluster.ts"
import { createTopic } from "./realHarness.ts"
import { installTxnTrace } from "./txnTrace.ts"

installTxnTrace()

type DriverMake = (
  config: KafkaJsProducer.KafkaJsTransactionalConfig
) => Effect.Effect<TransactionalProducer, PublishError.PublishError, Scope.Scope>

// the name the tests print, the child's DRIVER, the driver's transactional producer
const drivers: ReadonlyArray<readonly [string, string, DriverMake]> = [
  ["kafkajs", "kafkajs", KafkaJsProducer.makeTransactional],
  ["@platformatic/kafka", "platformatic", PlatformaticProducer.makeTransactional]
]

const events = (topic: string) => Topic.make({ name: topic, schema: Schema.Struct({ n: Schema.Number }) })
const numbers = (from: number, count: number) => Array.from({ length: count }, (_, i) => ({ n: from + i }))
const publishAll = (topic: string, from: number, count: number) =>
  Effect.flatMap(Publisher.Publisher, (p) => p.publishAll(events(topic), numbers(from, count)))

type Isolation = "read_committed" | "read_uncommitted"

/** TopicReader's and kcat's counts of `topic` at `isolation` (kcat's undefined when it is not installed). */
const counts = (brokers: ReadonlyArray<string>, topic: string, isolation: Isolation, kcat: boolean) =>
  Effect.gen(function* () {
    const reader = (yield* TopicReader.readAll({ brokers, topic, isolation, timeout: "20 seconds" })).length
    // after TopicReader: read_committed, it waited for open transactions to end (kcat stops at the first one)
    const other = kcat ? yield* Effect.promise(() => kcatCount(brokers, topic, isolation)) : undefined
    return { reader, kcat: other }
  })

/** Partitions whose last stable offset is behind the high watermark: a transaction is open there. */
const openPartitions = (brokers: ReadonlyArray<string>, topic: string) =>
  Effect.promise(async () => {
    const kafka = new kafkajs.Kafka({ brokers: [...brokers], logLevel: kafkajs.logLevel.NOTHING })
    const admin = kafka.admin()
    await admin.connect()
    try {
      // kafkajs' admin asks at read_committed: the last stable offset; partitionOffsets the high watermark
      const stable = await admin.fetchTopicOffsets(topic)
      const high = await partitionOffsets(kafka, topic)
      return high.filter((p) => BigInt(stable.find((s) => s.partition === p.partition)?.offset ?? "0") < p.high).length
    } finally {
      await admin.disconnect()
    }
  })

const publisherOver = (make: DriverMake, config: KafkaJsProducer.KafkaJsTransactionalConfig) =>
  Effect.flatMap(make(config), (producer) =>
    TransactionalPublisher.make().pipe(Effect.provideService(TransactionalProducerTag, producer))
  )

describeWithKafka("transaction faults (kill -9, broker paused during commit)", () => {
  // the coordinator looks for timed-out transactions every second (default 10 s), so a 3 s timeout aborts in ~4 s
  const cluster = ownCluster({
    nodes: 1,
    extraProps: { "transaction.abort.timed.out.transaction.cleanup.interval.ms": 1000 }
  })

  for (const [name, driver, make] of drivers) {
    describe(name, () => {
      it.live(
        "kill -9 mid-transaction: after the transaction timeout read_committed sees the committed records only; the restarted producer with the same id goes on",
        () =>
          Effect.gen(function* () {
            const brokers = cluster().brokers
            const kcat = yield* kcatAvailable
            const topic = unique("txn-kill")
            const transactionalId = unique("txn-kill")
            const transactionTimeout = Duration.seconds(3)
            yield* createTopic(brokers, topic, { partitions: 2 })
            const child = startExample("test/integration/transactionChild.ts", {
              DRIVER: driver,
              BROKERS: brokers.join(","),
              TOPIC: topic,
              TRANSACTIONAL_ID: transactionalId,
              TRANSACTION_TIMEOUT_MS: String(Duration.toMillis(transactionTimeout))
            })
            yield* Effect.addFinalizer(() => Effect.sync(() => child.child.kill("SIGKILL")))
            yield* Effect.promise(() => waitForOutput(child, (out) => out.includes("sent 10"), 30_000))
            child.child.kill("SIGKILL")
            yield* Effect.promise(() => child.exit)
            const killedAt = Date.now()
            // the transaction is still open: its 10 records are in the log, not yet stable
            assert.isAbove(yield* openPartitions(brokers, topic), 0, "a transaction is open after the kill")
            // read_committed waits for the coordinator to abort it on its timeout
            const committed = yield* counts(brokers, topic, "read_committed", kcat)
            const abortedAfterMs = Date.now() - killedAt
            assert.strictEqual(yield* openPartitions(brokers, topic), 0, "the coordinator ended the transaction")
            const uncommitted = yield* counts(brokers, topic, "read_uncommitted", kcat)
            assert.deepStrictEqual(committed, { reader: 3, kcat: kcat ? 3 : undefined })
            assert.deepStrictEqual(uncommitted, { reader: 13, kcat: kcat ? 13 : undefined })
            // the restarted producer (here, in-process) with the same id commits a new transaction
            const restarted = yield* publisherOver(make, { brokers, transactionalId, transactionTimeout })
            yield* restarted.transaction(publishAll(topic, 200, 2))
            const after = yield* counts(brokers, topic, "read_committed", kcat)
            assert.deepStrictEqual(after, { reader: 5, kcat: kcat ? 5 : undefined })
            console.log(
              `kill -9 mid-transaction (${name}, Kafka ${kafkaVersion()}, transaction timeout 3 s): read_committed ` +
                `${committed.reader} TopicReader / ${committed.kcat ?? "-"} kcat, read_uncommitted ${uncommitted.reader} / ` +
                `${uncommitted.kcat ?? "-"}, open transaction ended ${abortedAfterMs} ms after the kill; restarted ` +
                `producer committed 2: read_committed ${after.reader} / ${after.kcat ?? "-"}`
            )
          }).pipe(Effect.scoped),
        60_000
      )

      it.live(
        "fencing across two processes: a newer producer with the same id fences the publishing process, which fails ProducerFenced from then on; nothing it sends afterwards is visible",
        () =>
          Effect.gen(function* () {
            const brokers = cluster().brokers
            const kcat = yield* kcatAvailable
            const topic = unique("txn-fence")
            const transactionalId = unique("txn-fence")
            yield* createTopic(brokers, topic, { partitions: 2 })
            const older = startExample("test/integration/transactionChild.ts", {
              MODE: "loop",
              DRIVER: driver,
              BROKERS: brokers.join(","),
              TOPIC: topic,
              TRANSACTIONAL_ID: transactionalId,
              TRANSACTION_TIMEOUT_MS: "10000"
            })
            yield* Effect.addFinalizer(() => Effect.sync(() => older.child.kill("SIGKILL")))
            yield* Effect.promise(() => waitForOutput(older, (out) => out.includes("committed 3"), 30_000))
            // the newer producer, in this process: its InitProducerId fences the older one
            const newer = yield* publisherOver(make, { brokers, transactionalId })
            yield* newer.transaction(publishAll(topic, 1000, 2))
            yield* Effect.promise(() => waitForOutput(older, (out) => out.includes("done"), 30_000))
            assert.strictEqual(yield* Effect.promise(() => older.exit), 0, older.stderr())
            const lines = older.stdout().split("\n")
            const committed = lines.filter((l) => l.startsWith("committed ")).map((l) => Number(l.split(" ")[1]))
            const failed = lines.filter((l) => l.startsWith("failed "))
            const visible = (yield* TopicReader.readAll({ brokers, topic, isolation: "read_committed" })).map(
              (r) => (JSON.parse(new TextDecoder().decode(r.value ?? new Uint8Array())) as { n: number }).n
            )
            const kcatCommitted = kcat
              ? yield* Effect.promise(() => kcatCount(brokers, topic, "read_committed"))
              : undefined
            console.log(
              `fencing across two processes (${name}, Kafka ${kafkaVersion()}): the older committed ` +
                `${committed.length} (${committed.at(-1)} last), then ${failed.join("; ")}; read_committed ` +
                `${visible.length} TopicReader / ${kcatCommitted ?? "-"} kcat`
            )
            assert.deepStrictEqual(
              failed.map((l) => l.split(" ").slice(2).join(" ")),
              ["Fatal ProducerFenced", "Fatal ProducerFenced", "Fatal ProducerFenced"]
            )
            const byNumber = (a: number, b: number) => a - b
            assert.deepStrictEqual(visible.sort(byNumber), [...committed, 1000, 1001].sort(byNumber))
            if (kcat) assert.strictEqual(kcatCommitted, committed.length + 2)
          }).pipe(Effect.scoped),
        60_000
      )

      // The broker refuses a record larger than the topic's max.message.bytes without writing it. Before the
      // driver started a new epoch after a failed send, @platformatic/kafka kept that request's sequence numbers
      // (its #performSend resets them only without a transaction), so every later send to the partition left a
      // gap: OUT_OF_ORDER_SEQUENCE_NUMBER, read as Fatal ProducerFenced, for good (the "fencing" seen in the
      // coordinator fail-over).
      it.live(
        "a send the broker refuses fails its transaction, typed; the producer's next transactions to that partition commit",
        () =>
          Effect.gen(function* () {
            const brokers = cluster().brokers
            const kcat = yield* kcatAvailable
            const topic = unique("txn-refused")
            yield* createTopic(brokers, topic, { partitions: 1, maxMessageBytes: 2_000 })
            const txp = yield* publisherOver(make, { brokers, transactionalId: unique("txn-refused") })
            const padded = Topic.make({ name: topic, schema: Schema.Struct({ n: Schema.Number, pad: Schema.String }) })
            const publishPadded = (n: number, size: number) =>
              Effect.flatMap(Publisher.Publisher, (p) => p.publishAll(padded, [{ n, pad: "x".repeat(size) }]))
            yield* txp.transaction(publishPadded(0, 10))
            const refused = outcomeOf(yield* Effect.exit(txp.transaction(publishPadded(1, 5_000))))
            const next = []
            for (let n = 2; n <= 4; n++)
              next.push(outcomeOf(yield* Effect.exit(txp.transaction(publishPadded(n, 10)))).label)
            const committed = yield* counts(brokers, topic, "read_committed", kcat)
            console.log(
              `refused send (${name}, Kafka ${kafkaVersion()}): ${refused.label}; next transactions: ${next.join(", ")}; ` +
                `read_committed ${committed.reader} TopicReader / ${committed.kcat ?? "-"} kcat`
            )
            assert.include(refused.label, "RecordTooLarge")
            assert.deepStrictEqual(next, ["committed", "committed", "committed"])
            assert.deepStrictEqual(committed, { reader: 4, kcat: kcat ? 4 : undefined })
          }).pipe(Effect.scoped),
        60_000
      )

      // A transaction left open past its timeout: the coordinator aborts it and bumps the producer epoch, and the
      // commit is refused as a fencing would be. With Kafka 4 (transaction.version 2) the coordinator keeps the
      // old epoch as the last one, so @platformatic/kafka's InitProducerId naming it is accepted (no other producer
      // took the id): TransactionAborted, and the producer goes on. Kafka 3.9 forgets it, and kafkajs's
      // InitProducerId cannot name one: ProducerFenced from then on, as with the Java client.
      it.live(
        "a transaction open past its timeout is aborted by the coordinator: typed, nothing visible; the producer goes on where the coordinator can tell this from a newer producer",
        () =>
          Effect.gen(function* () {
            const brokers = cluster().brokers
            const kcat = yield* kcatAvailable
            const topic = unique("txn-timeout")
            yield* createTopic(brokers, topic, { partitions: 2 })
            const txp = yield* publisherOver(make, {
              brokers,
              transactionalId: unique("txn-timeout"),
              transactionTimeout: "3 seconds"
            })
            yield* txp.transaction(publishAll(topic, 0, 2))
            // the coordinator looks every second: the transaction is aborted 3 to 4 s after its first send
            const late = outcomeOf(
              yield* Effect.exit(txp.transaction(Effect.andThen(publishAll(topic, 10, 5), Effect.sleep("6 seconds"))))
            )
            const next = outcomeOf(yield* Effect.exit(txp.transaction(publishAll(topic, 20, 3))))
            const committed = yield* counts(brokers, topic, "read_committed", kcat)
            console.log(
              `transaction past its timeout (${name}, Kafka ${kafkaVersion()}): ${late.label}; next transaction: ` +
                `${next.label}; read_committed ${committed.reader} TopicReader / ${committed.kcat ?? "-"} kcat`
            )
            const goesOn = name === "@platformatic/kafka" && kafkaVersion().startsWith("4.")
            if (goesOn) {
              assert.include(late.label, "Fatal TransactionAborted")
              assert.strictEqual(next.label, "committed")
            } else {
              assert.include(late.label, "Fatal ProducerFenced")
              assert.include(next.label, "Fatal ProducerFenced")
            }
            assert.deepStrictEqual(committed, { reader: goesOn ? 5 : 2, kcat: kcat ? (goesOn ? 5 : 2) : undefined })
          }).pipe(Effect.scoped),
        60_000
      )

      // before the request timeout the commit's answer comes late; after it the client times the request out
      // and tries again; past the transaction timeout (6 s) the coordinator, once resumed, may abort it first
      const pauses = [
        { pause: Duration.seconds(2), requestTimeout: Duration.seconds(5) },
        { pause: Duration.seconds(4), requestTimeout: Duration.seconds(2) },
        { pause: Duration.seconds(8), requestTimeout: Duration.seconds(2) }
      ]
      for (const { pause, requestTimeout } of pauses) {
        it.live(
          `broker paused ${Duration.format(pause)} during commit (request timeout ${Duration.format(requestTimeout)}): a typed outcome in time, the transaction visible whole or not at all, as the outcome says`,
          () =>
            Effect.gen(function* () {
              const brokers = cluster().brokers
              const kcat = yield* kcatAvailable
              const topic = unique("txn-pause")
              yield* createTopic(brokers, topic, { partitions: 2 })
              const txp = yield* publisherOver(make, {
                brokers,
                transactionalId: unique("txn-pause"),
                transactionTimeout: "6 seconds",
                requestTimeout,
                retry: { retries: 1 }
              })
              const sent = yield* Deferred.make<void>()
              const commit = yield* Deferred.make<void>()
              const fiber = yield* Effect.forkChild(
                txp.transaction(
                  Effect.andThen(publishAll(topic, 1, 10), Deferred.succeed(sent, undefined)).pipe(
                    Effect.andThen(Deferred.await(commit))
                  )
                )
              )
              yield* Deferred.await(sent)
              cluster().pause(1)
              yield* Effect.addFinalizer(() => Effect.sync(() => cluster().resume(1)))
              const pausedAt = Date.now()
              yield* Deferred.succeed(commit, undefined)
              yield* Effect.sleep(pause)
              cluster().resume(1)
              // bounded: the commit ends, typed, well within 30 s of the pause
              const ended = yield* Effect.timeoutOption(Fiber.await(fiber), "30 seconds")
              const endedAfterMs = Date.now() - pausedAt
              assert.isTrue(Option.isSome(ended), "the commit ended within 30 s")
              const exit = Option.getOrThrow(ended)
              const outcome = outcomeOf(exit)
              const committed = yield* counts(brokers, topic, "read_committed", kcat)
              const uncommitted = yield* counts(brokers, topic, "read_uncommitted", kcat)
              console.log(
                `broker paused ${Duration.format(pause)} during commit (${name}, Kafka ${kafkaVersion()}, request ` +
                  `timeout ${Duration.format(requestTimeout)}): outcome ${outcome.label} after ${endedAfterMs} ms; ` +
                  `read_committed ${committed.reader} TopicReader / ${committed.kcat ?? "-"} kcat, read_uncommitted ` +
                  `${uncommitted.reader} / ${uncommitted.kcat ?? "-"}`
              )
              // the producer goes on, its next transaction commits; a fenced one stays fenced and commits nothing
              const next = outcomeOf(yield* Effect.exit(txp.transaction(publishAll(topic, 100, 1))))
              const afterNext = (yield* counts(brokers, topic, "read_committed", false)).reader
              console.log(`  next transaction: ${next.label}; read_committed ${afterNext}`)
              assert.deepStrictEqual(uncommitted, { reader: 10, kcat: kcat ? 10 : undefined })
              if (outcome.label.includes("ProducerFenced")) {
                assert.deepStrictEqual([next.visible, afterNext], [false, committed.reader])
              } else {
                assert.deepStrictEqual([next.label, afterNext], ["committed", committed.reader + 1])
              }
              assert.include([0, 10], committed.reader, "no partial transaction")
              if (kcat) assert.strictEqual(committed.kcat, committed.reader, "kcat sees what TopicReader sees")
              if (outcome.visible !== undefined) assert.strictEqual(committed.reader, outcome.visible ? 10 : 0)
            }).pipe(Effect.scoped),
          60_000
        )
      }
    })
  }
})

/**
 * What an outcome says of visibility: committed ⇒ visible; an ambiguous failure (possibly delivered) ⇒ either
 * (undefined); any other typed failure ⇒ not visible. A defect or an interruption fails the test.
 */
const outcomeOf = (
  exit: Exit.Exit<unknown, PublishError.PublishError | PublishError.PublishAllFailed>
): { label: string; visible?: boolean } => {
  if (Exit.isSuccess(exit)) return { label: "committed", visible: true }
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (reason?._tag !== "Fail") throw new Error(`the commit ended untyped: ${exit.cause}`)
  const error = reason.error
  // a send failed before the commit: the transaction aborted
  if (error._tag === "PublishAllFailed") {
    const first = error.failures[0]?.error as
      | { readonly _tag?: string; readonly reason?: string; readonly message?: string }
      | undefined
    return {
      label: `${error._tag}(${first?._tag} ${first?.reason} "${first?.message?.slice(0, 120)}")`,
      visible: false
    }
  }
  const label = `${error._tag} ${error.reason} "${error.message}"`
  return mayHaveWritten(error) ? { label: `${label} (ambiguous, possiblyDelivered)` } : { label, visible: false }
}
