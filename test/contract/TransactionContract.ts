/**
 * The transaction contract: the same tests on FakeKafka and on a real broker (both drivers), so the fake's
 * model of transactional visibility and fencing stays honest. A harness provides a `TransactionBroker`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, type Duration, Effect, Exit, Fiber, type Layer, Schema, type Scope } from "effect"
import { Publisher, Topic, TransactionalPublisher } from "effect-kafka-publisher"
import type { ReadRecord } from "../../src/reader/TopicReader.ts"
import {
  type TransactionalProducer,
  TransactionalProducer as TransactionalProducerTag,
  type TransactionConfig
} from "../../src/TransactionalProducer.ts"
import type { Isolation } from "../../src/testing/FakeKafka.ts"
import { failureOf } from "../support/exits.ts"

export interface TransactionBrokerShape {
  readonly createTopic: (name: string, partitions: number) => Effect.Effect<void, unknown>
  readonly readBack: (topic: string, isolation: Isolation) => Effect.Effect<ReadonlyArray<ReadRecord>, unknown>
  /** A transactional producer (closed with the scope); building one fences earlier ones of the same id. */
  readonly producer: (config: TransactionConfig) => Effect.Effect<TransactionalProducer, unknown, Scope.Scope>
}

export class TransactionBroker extends Context.Service<TransactionBroker, TransactionBrokerShape>()(
  "test/TransactionBroker"
) {}

const decoder = new TextDecoder()
const values = (records: ReadonlyArray<ReadRecord>) => records.map((r) => (r.value ? decoder.decode(r.value) : null))

const topicOf = (name: string) => Topic.make({ name, schema: Schema.Unknown })

let counter = 0
/** Unique names per test and run (a real broker keeps topics between tests). */
export const unique = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${++counter}`

/** A transactional publisher over a new producer of `transactionalId`. */
export const publisherFor = (transactionalId: string, transactionTimeout?: Duration.Input) =>
  Effect.gen(function* () {
    const broker = yield* TransactionBroker
    const producer = yield* broker.producer({ transactionalId, transactionTimeout })
    return yield* TransactionalPublisher.make().pipe(Effect.provideService(TransactionalProducerTag, producer))
  })

/** The start of most tests: a new one-partition topic and a publisher over a new transactional id. */
const oneTopic = Effect.gen(function* () {
  const broker = yield* TransactionBroker
  const orders = unique("orders")
  yield* broker.createTopic(orders, 1)
  const txp = yield* publisherFor(unique("txn"))
  return { broker, orders, txp }
})

/** Publishes one value to `topic` with the Publisher of the transaction. */
const publishOne = (topic: string, value: unknown) =>
  Effect.flatMap(Publisher.Publisher, (p) => p.publish(topicOf(topic), value))

export const transactionContract = (name: string, layer: Layer.Layer<TransactionBroker, unknown>) =>
  describe(`transaction contract: ${name}`, () => {
    // every test: live clock, its own scope, the harness's broker, 60 s
    const test = (title: string, body: Effect.Effect<void, unknown, TransactionBroker | Scope.Scope>) =>
      it.live(title, () => body.pipe(Effect.scoped, Effect.provide(layer)), 60_000)
    test(
      "a committed transaction over two topics is visible to read_committed, all of it",
      Effect.gen(function* () {
        const broker = yield* TransactionBroker
        const orders = unique("orders")
        const payments = unique("payments")
        yield* broker.createTopic(orders, 3)
        yield* broker.createTopic(payments, 1)
        const txp = yield* publisherFor(unique("txn"))
        yield* txp.transaction(
          Effect.gen(function* () {
            const publisher = yield* Publisher.Publisher
            yield* publisher.publish(topicOf(orders), { id: "o-1" })
            yield* publisher.publishAll(topicOf(payments), [{ id: "p-1" }, { id: "p-2" }])
          })
        )
        assert.deepStrictEqual(values(yield* broker.readBack(orders, "read_committed")), ['{"id":"o-1"}'])
        assert.deepStrictEqual(values(yield* broker.readBack(payments, "read_committed")), [
          '{"id":"p-1"}',
          '{"id":"p-2"}'
        ])
      })
    )

    test(
      "a failing effect aborts: read_committed sees nothing, read_uncommitted sees the records, the caller gets the error",
      Effect.gen(function* () {
        const { broker, orders, txp } = yield* oneTopic
        const exit = yield* Effect.exit(
          txp.transaction(
            Effect.gen(function* () {
              const publisher = yield* Publisher.Publisher
              yield* publisher.publishAll(topicOf(orders), [{ n: 1 }, { n: 2 }])
              return yield* Effect.fail("business rule refused" as const)
            })
          )
        )
        assert.strictEqual(failureOf(exit), "business rule refused")
        assert.deepStrictEqual(values(yield* broker.readBack(orders, "read_committed")), [])
        assert.deepStrictEqual(values(yield* broker.readBack(orders, "read_uncommitted")), ['{"n":1}', '{"n":2}'])
        // the producer goes on: the next transaction commits
        yield* txp.transaction(publishOne(orders, { n: 3 }))
        assert.deepStrictEqual(values(yield* broker.readBack(orders, "read_committed")), ['{"n":3}'])
      })
    )

    test(
      "an interrupted transaction aborts: nothing of it is visible to read_committed",
      Effect.gen(function* () {
        const { broker, orders, txp } = yield* oneTopic
        const written = yield* Deferred.make<void>()
        const fiber = yield* Effect.forkChild(
          txp.transaction(
            Effect.gen(function* () {
              yield* publishOne(orders, { n: 1 })
              yield* Deferred.succeed(written, undefined)
              return yield* Effect.never
            })
          )
        )
        // the record is in the log (its publish was answered): interrupt
        yield* Deferred.await(written)
        const exit = yield* Fiber.interrupt(fiber).pipe(Effect.andThen(Fiber.await(fiber)))
        assert.isTrue(Exit.hasInterrupts(exit))
        assert.deepStrictEqual(values(yield* broker.readBack(orders, "read_committed")), [])
        yield* txp.transaction(publishOne(orders, { n: 2 }))
        assert.deepStrictEqual(values(yield* broker.readBack(orders, "read_committed")), ['{"n":2}'])
      })
    )

    test(
      "fencing: a second producer with the same id fences the first, which fails ProducerFenced and commits nothing",
      Effect.gen(function* () {
        const broker = yield* TransactionBroker
        const orders = unique("orders")
        yield* broker.createTopic(orders, 1)
        const id = unique("txn")
        const older = yield* publisherFor(id)
        yield* older.transaction(publishOne(orders, { from: "older" }))
        const newer = yield* publisherFor(id)
        const exit = yield* Effect.exit(older.transaction(publishOne(orders, { from: "fenced" })))
        const error = failureOf(exit) as { readonly _tag: string; readonly reason: string }
        assert.strictEqual(error._tag === "Fatal" ? error.reason : error._tag, "ProducerFenced")
        yield* newer.transaction(publishOne(orders, { from: "newer" }))
        assert.deepStrictEqual(values(yield* broker.readBack(orders, "read_committed")), [
          '{"from":"older"}',
          '{"from":"newer"}'
        ])
      })
    )

    test(
      "a publish error caught inside still aborts the transaction: Fatal TransactionAborted, nothing visible",
      Effect.gen(function* () {
        const { broker, orders, txp } = yield* oneTopic
        const exit = yield* Effect.exit(
          txp.transaction(
            Effect.gen(function* () {
              yield* publishOne(orders, { n: 1 })
              // an invalid topic name: the send fails Fatal InvalidTopic; the effect swallows it
              yield* Effect.ignore(publishOne("bad topic name!", { n: 2 }))
            })
          )
        )
        const error = failureOf(exit) as { readonly _tag: string; readonly reason?: string }
        assert.deepStrictEqual([error._tag, error.reason], ["Fatal", "TransactionAborted"])
        assert.deepStrictEqual(values(yield* broker.readBack(orders, "read_committed")), [])
      })
    )
  })
