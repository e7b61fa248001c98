/**
 * The contract suite: the same behavioural tests against FakeKafka and against a real broker, so the fake
 * stays honest. A harness provides a `Producer` plus a `ContractBroker` (topic creation and read-back) for
 * the broker under test.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, type Layer, Schema } from "effect"
import { DeadLetter, Publisher, RetryPolicy, Topic } from "effect-kafka-publisher"
import kafkajs from "kafkajs"
import { Producer, type ProducerRecord } from "../../src/Producer.ts"
import type { PublishError } from "../../src/PublishError.ts"
import type { ReadRecord } from "../../src/reader/TopicReader.ts"
import { failureOf } from "../support/exits.ts"

export interface ContractBrokerShape {
  readonly createTopic: (
    name: string,
    options: { readonly partitions: number; readonly maxMessageBytes?: number }
  ) => Effect.Effect<void, unknown>
  readonly readBack: (topic: string) => Effect.Effect<ReadonlyArray<ReadRecord>, unknown>
  /**
   * Makes the sends that follow overlap (several in flight at once): FakeKafka answers after a delay; a real
   * broker needs nothing (a round trip is long enough for the next sends to be called).
   */
  readonly overlapSends: Effect.Effect<void>
}

export class ContractBroker extends Context.Service<ContractBroker, ContractBrokerShape>()("test/ContractBroker") {}

export type HarnessLayer = (options: {
  readonly autoCreateTopics: boolean
}) => Layer.Layer<Producer | ContractBroker, unknown>

const decoder = new TextDecoder()
const text = (bytes: Uint8Array | null | undefined) => (bytes == null ? null : decoder.decode(bytes))

/** The partition kafkajs's default (Java-compatible murmur2) partitioner picks for a key. */
export const expectedPartition = (key: string, partitions: number): number =>
  kafkajs.Partitioners.DefaultPartitioner()({
    topic: "any",
    partitionMetadata: Array.from({ length: partitions }, (_, partitionId) => ({
      partitionId,
      leader: 0,
      replicas: [0],
      isr: [0],
      partitionErrorCode: 0
    })),
    message: { key: Buffer.from(key), value: null }
  })

const uniqueTopic = (prefix: string) => `${prefix}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`

class Order extends Schema.Class<Order>("Order")({
  orderId: Schema.String,
  userId: Schema.String,
  amountCents: Schema.Int
}) {}

const ordersTopic = (name: string) =>
  Topic.make({
    name,
    schema: Order,
    key: (order) => order.userId,
    headers: (order) => ({ eventType: "OrderPlaced", orderId: order.orderId, binary: new Uint8Array([0, 255, 7]) })
  })

const twentyOrders = Array.from(
  { length: 20 },
  (_, i) => new Order({ orderId: `order-${i + 1}`, userId: `user-${(i % 5) + 1}`, amountCents: 100 + i })
)

/** Offsets of each partition, in read order. */
const offsetsByPartition = (records: ReadonlyArray<ReadRecord>) => {
  const byPartition = new Map<number, Array<number>>()
  for (const r of records) byPartition.set(r.partition, [...(byPartition.get(r.partition) ?? []), Number(r.offset)])
  return byPartition
}

export const producerContract = (name: string, harness: HarnessLayer, options: { timeout?: number } = {}) =>
  describe(`Producer contract: ${name}`, { timeout: options.timeout ?? 60_000 }, () => {
    const withBroker = <A, E>(effect: Effect.Effect<A, E, Producer | ContractBroker | Publisher.Publisher>) =>
      effect.pipe(
        Effect.provide(Publisher.layer({ retry: RetryPolicy.make({ maxAttempts: 3, jitter: false }) })),
        Effect.provide(harness({ autoCreateTopics: true }))
      )

    it.live("keys land on the murmur2 partition; offsets are continuous; headers round-trip", () =>
      withBroker(
        Effect.gen(function* () {
          const broker = yield* ContractBroker
          const publisher = yield* Publisher.Publisher
          const name = uniqueTopic("contract-orders")
          yield* broker.createTopic(name, { partitions: 3 })
          const receipts = yield* publisher.publishAll(ordersTopic(name), twentyOrders, { concurrency: 1 })

          assert.strictEqual(receipts.length, 20)
          receipts.forEach((receipt, i) => {
            assert.strictEqual(receipt._tag, "Delivered")
            assert.strictEqual(receipt.partition, expectedPartition(twentyOrders[i]!.userId, 3), `order ${i + 1}`)
          })

          const records = yield* broker.readBack(name)
          assert.strictEqual(records.length, 20)
          for (const [, offsets] of offsetsByPartition(records)) {
            assert.deepStrictEqual(
              offsets,
              offsets.map((_, i) => i),
              "offsets 0..n-1 per partition"
            )
          }
          // every receipt points at the record it wrote
          const byPosition = new Map(records.map((r) => [`${r.partition}/${r.offset}`, r]))
          receipts.forEach((receipt, i) => {
            const record = byPosition.get(`${receipt.partition}/${receipt.offset}`)
            assert.isDefined(record, `record for receipt ${i + 1}`)
            assert.strictEqual(text(record!.key), twentyOrders[i]!.userId)
            assert.deepStrictEqual(JSON.parse(text(record!.value)!), {
              orderId: `order-${i + 1}`,
              userId: twentyOrders[i]!.userId,
              amountCents: 100 + i
            })
            assert.strictEqual(text(record!.headers.eventType), "OrderPlaced")
            assert.strictEqual(text(record!.headers.orderId), `order-${i + 1}`)
            assert.deepStrictEqual([...record!.headers.binary!], [0, 255, 7])
          })
        })
      )
    )

    it.live("an oversize record is Fatal RecordTooLarge, not retried, and dead-lettered with its headers", () =>
      withBroker(
        Effect.gen(function* () {
          const broker = yield* ContractBroker
          const publisher = yield* Publisher.Publisher
          const name = uniqueTopic("contract-small")
          yield* broker.createTopic(name, { partitions: 1, maxMessageBytes: 1024 })
          yield* broker.createTopic(DeadLetter.defaultTopicName(name), { partitions: 1 })
          const big = Topic.make({ name, schema: Schema.String, key: () => "big-key" })
          const receipt = yield* publisher.publish(big, "x".repeat(4096))

          assert.strictEqual(receipt._tag, "DeadLettered")
          if (receipt._tag !== "DeadLettered") return
          assert.strictEqual(receipt.error._tag, "Fatal")
          assert.strictEqual(receipt.error.reason, "RecordTooLarge")
          assert.strictEqual(receipt.attempts, 1)

          assert.strictEqual((yield* broker.readBack(name)).length, 0)
          const [dead, ...rest] = yield* broker.readBack(receipt.deadLetterTopic)
          assert.strictEqual(rest.length, 0)
          assert.strictEqual(text(dead!.key), "big-key")
          assert.strictEqual(text(dead!.value), JSON.stringify("x".repeat(4096)))
          assert.strictEqual(text(dead!.headers.errorType), "Fatal.RecordTooLarge")
          assert.strictEqual(text(dead!.headers.originalTopic), name)
          assert.strictEqual(text(dead!.headers.attempts), "1")
          assert.isTrue(Number.isFinite(Date.parse(text(dead!.headers.failedAt)!)))
          assert.isNotEmpty(text(dead!.headers.errorMessage))
        })
      )
    )

    it.live("an invalid topic name is Fatal InvalidTopic; its dead-letter write fails too, both causes kept", () =>
      withBroker(
        Effect.gen(function* () {
          const producer = yield* Producer
          const publisher = yield* Publisher.Publisher
          const record = { topic: "not a valid/topic", key: null, value: new Uint8Array([1]), headers: {} }
          const error = failureOf(yield* Effect.exit(producer.send([record]))) as PublishError
          assert.strictEqual(error._tag, "Fatal")
          assert.strictEqual(error.reason, "InvalidTopic")

          const both = failureOf(yield* Effect.exit(publisher.publishRecord(record)))
          assert.strictEqual(both._tag, "DeadLetterFailed")
          if (both._tag !== "DeadLetterFailed") return
          assert.strictEqual(both.original.reason, "InvalidTopic")
          assert.strictEqual(both.deadLetterError.reason, "InvalidTopic")
        })
      )
    )

    it.live("an unknown topic with auto-create off is Fatal UnknownTopic", () =>
      Effect.gen(function* () {
        const producer = yield* Producer
        const record = { topic: uniqueTopic("contract-missing"), key: null, value: new Uint8Array([1]), headers: {} }
        const error = failureOf(yield* Effect.exit(producer.send([record]))) as PublishError
        assert.strictEqual(error._tag, "Fatal")
        assert.strictEqual(error.reason, "UnknownTopic")
      }).pipe(Effect.provide(harness({ autoCreateTopics: false })))
    )

    it.live("a partition the topic does not have is a Retriable UnknownTopicOrPartition, never a silent drop", () =>
      withBroker(
        Effect.gen(function* () {
          const broker = yield* ContractBroker
          const producer = yield* Producer
          const name = uniqueTopic("contract-partition")
          yield* broker.createTopic(name, { partitions: 2 })
          const record = { topic: name, key: null, value: new Uint8Array([1]), headers: {}, partition: 7 }
          const error = failureOf(yield* Effect.exit(producer.send([record]))) as PublishError
          assert.strictEqual(error._tag, "Retriable")
          assert.strictEqual(error.reason, "UnknownTopicOrPartition")
          assert.strictEqual((yield* broker.readBack(name)).length, 0)
        })
      )
    )

    /**
     * What the topic holds agrees with the error's `outcomes`: a written record is where its outcome says,
     * a record "notWritten" is not in the topic, "unknown" agrees with anything. Without outcomes the error
     * applies to every record alike: none of them was written.
     */
    const assertOutcomesAgree = (
      error: PublishError,
      records: ReadonlyArray<{ readonly value: Uint8Array }>,
      read: ReadonlyArray<ReadRecord>
    ) => {
      const values = read.map((r) => text(r.value))
      if (error.outcomes === undefined) {
        for (const r of records) assert.notInclude(values, text(r.value), "no outcomes: nothing was written")
        return
      }
      assert.strictEqual(error.outcomes.length, records.length, "one outcome per record")
      error.outcomes.forEach((outcome, i) => {
        const value = text(records[i]!.value)
        if (outcome === "unknown") return
        if (outcome === "notWritten") {
          assert.notInclude(values, value, `record ${i} is not written`)
          return
        }
        const at = read.find((r) => r.partition === outcome.partition && r.offset === outcome.offset)
        assert.strictEqual(text(at?.value), value, `record ${i} is at ${outcome.partition}/${outcome.offset}`)
      })
    }

    it.live("issue 18.7: a send with a partition the topic does not have: the topic holds what the outcomes say", () =>
      withBroker(
        Effect.gen(function* () {
          const broker = yield* ContractBroker
          const producer = yield* Producer
          const name = uniqueTopic("contract-missing-partition")
          yield* broker.createTopic(name, { partitions: 2 })
          const records = [
            { topic: name, key: null, value: Buffer.from("on-0"), headers: {}, partition: 0 },
            { topic: name, key: null, value: Buffer.from("on-7"), headers: {}, partition: 7 },
            { topic: name, key: null, value: Buffer.from("on-1"), headers: {}, partition: 1 }
          ]
          const error = failureOf(yield* Effect.exit(producer.send(records))) as PublishError
          assert.strictEqual(error._tag, "Retriable")
          assert.strictEqual(error.reason, "UnknownTopicOrPartition")
          const read = yield* broker.readBack(name)
          assert.notInclude(
            read.map((r) => text(r.value)),
            "on-7"
          )
          assertOutcomesAgree(error, records, read)
          // written records of the other partitions make the failure ambiguous
          if (read.length > 0) assert.isTrue(error._tag === "Retriable" && error.ambiguous)
        })
      )
    )

    it.live("issue 18.2: a send spanning partitions, one batch too large: outcomes agree with the topic", () =>
      withBroker(
        Effect.gen(function* () {
          const broker = yield* ContractBroker
          const producer = yield* Producer
          const name = uniqueTopic("contract-outcomes")
          yield* broker.createTopic(name, { partitions: 2, maxMessageBytes: 1024 })
          const records = [
            { topic: name, key: null, value: Buffer.from("small-0"), headers: {}, partition: 0 },
            { topic: name, key: null, value: Buffer.from(`big-${"x".repeat(4096)}`), headers: {}, partition: 1 },
            { topic: name, key: null, value: Buffer.from("small-1"), headers: {}, partition: 0 }
          ]
          const error = failureOf(yield* Effect.exit(producer.send(records))) as PublishError
          assert.strictEqual(error._tag, "Fatal")
          assert.strictEqual(error.reason, "RecordTooLarge")
          assert.isDefined(error.outcomes, "a send spanning partitions reports outcomes")
          assert.isTrue(
            error.outcomes![1] === "notWritten" || error.outcomes![1] === "unknown",
            "the oversized record is not reported written"
          )
          const read = yield* broker.readBack(name)
          assert.notInclude(
            read.map((r) => text(r.value)),
            text(records[1]!.value)
          )
          assertOutcomesAgree(error, records, read)
        })
      )
    )

    it.live("a batch answers one receipt per record, in input order", () =>
      withBroker(
        Effect.gen(function* () {
          const broker = yield* ContractBroker
          const producer = yield* Producer
          const name = uniqueTopic("contract-batch")
          yield* broker.createTopic(name, { partitions: 2 })
          const records = Array.from({ length: 10 }, (_, i) => ({
            topic: name,
            key: Buffer.from(`k${i % 3}`),
            value: Buffer.from(`v${i}`),
            headers: {}
          }))
          const metadata = yield* producer.send(records)
          assert.strictEqual(metadata.length, 10)
          const read = yield* broker.readBack(name)
          const byPosition = new Map(read.map((r) => [`${r.partition}/${r.offset}`, text(r.value)]))
          metadata.forEach((m, i) => {
            assert.strictEqual(m.partition, expectedPartition(`k${i % 3}`, 2))
            assert.strictEqual(byPosition.get(`${m.partition}/${m.offset}`), `v${i}`)
          })
        })
      )
    )

    /** Sends `batches` one fiber each, started in order (so called in order); each result as an Exit. */
    const sendAll = (
      producer: Producer,
      batches: ReadonlyArray<ReadonlyArray<ProducerRecord>>,
      onStart: (index: number) => void = () => {},
      onEnd: (index: number) => void = () => {}
    ) =>
      Effect.forEach(
        batches,
        (records, index) =>
          Effect.suspend(() => {
            onStart(index)
            return Effect.exit(producer.send(records)).pipe(Effect.ensuring(Effect.sync(() => onEnd(index))))
          }),
        { concurrency: "unbounded" }
      )

    it.live(
      "several sends in flight: each partition holds the sends in the order they were called; receipts exact",
      () =>
        withBroker(
          Effect.gen(function* () {
            const broker = yield* ContractBroker
            const producer = yield* Producer
            const name = uniqueTopic("contract-inflight")
            yield* broker.createTopic(name, { partitions: 2 })
            yield* broker.overlapSends
            let running = 0
            let overlapped = 0
            const batches = Array.from({ length: 12 }, (_, s) =>
              Array.from({ length: 4 }, (_, r) => ({
                topic: name,
                key: Buffer.from(`k${(s + r) % 3}`),
                value: Buffer.from(`${s}/${r}`),
                headers: {}
              }))
            )
            const exits = yield* sendAll(
              producer,
              batches,
              () => {
                if (running++ > 0) overlapped++
              },
              () => {
                running--
              }
            )
            assert.isAbove(overlapped, 0, "some sends were called while others were in flight")
            const read = yield* broker.readBack(name)
            assert.strictEqual(read.length, 48)
            const byPosition = new Map(read.map((r) => [`${r.partition}/${r.offset}`, text(r.value)]))
            exits.forEach((exit, s) => {
              assert.isTrue(Exit.isSuccess(exit), `send ${s} succeeded`)
              if (!Exit.isSuccess(exit)) return
              exit.value.forEach((m, r) => {
                assert.strictEqual(m.partition, expectedPartition(`k${(s + r) % 3}`, 2))
                assert.strictEqual(byPosition.get(`${m.partition}/${m.offset}`), `${s}/${r}`, `send ${s} record ${r}`)
              })
            })
            for (const partition of [0, 1]) {
              const order = read
                .filter((r) => r.partition === partition)
                .map((r) => text(r.value)!.split("/").map(Number) as [number, number])
              const sorted = [...order].sort((x, y) => x[0] - y[0] || x[1] - y[1])
              assert.deepStrictEqual(order, sorted, `partition ${partition} in call order`)
            }
          })
        )
    )

    it.live(
      "the ordered-failure property: sends called while a refused send was in flight are not written on its partition",
      () =>
        withBroker(
          Effect.gen(function* () {
            const broker = yield* ContractBroker
            const producer = yield* Producer
            const name = uniqueTopic("contract-ordered-failure")
            // the first send's batch is refused (too large): certainly not written, and the broker would take the next
            yield* broker.createTopic(name, { partitions: 2, maxMessageBytes: 1024 })
            yield* broker.overlapSends
            const on = (partition: number, value: string) => ({
              topic: name,
              key: null,
              value: Buffer.from(value),
              headers: {},
              partition
            })
            const batches = [
              [on(0, `big-${"x".repeat(4096)}`)],
              [on(0, "b0"), on(1, "b1")],
              [on(0, "c0")],
              [on(1, "d1")]
            ]
            let firstReturned = false
            const calledBeforeFirstReturned: Array<boolean> = []
            const exits = yield* sendAll(
              producer,
              batches,
              (index) => {
                calledBeforeFirstReturned[index] = !firstReturned
              },
              (index) => {
                if (index === 0) firstReturned = true
              }
            )
            assert.isTrue(
              calledBeforeFirstReturned.every(Boolean),
              "every send was called before the refused one returned"
            )
            const first = failureOf(exits[0]!) as PublishError
            assert.strictEqual(first._tag, "Fatal")
            assert.strictEqual(first.reason, "RecordTooLarge")
            const read = yield* broker.readBack(name)
            const values = read.map((r) => text(r.value))
            for (const v of ["b0", "c0"]) assert.notInclude(values, v, `${v}: not written ahead of the refused send`)
            batches.slice(1).forEach((records, i) => {
              const exit = exits[i + 1]!
              if (Exit.isSuccess(exit)) {
                assert.isFalse(
                  records.some((r) => r.partition === 0),
                  `send ${i + 1} on the refused partition succeeded`
                )
                return
              }
              const error = failureOf(exit) as PublishError
              assertOutcomesAgree(error, records, read)
              records.forEach((record, r) => {
                if (record.partition !== 0) return
                // the refused partition's records fail certainly not written: resent after the first, they keep order
                const outcome = error.outcomes?.[r]
                if (outcome !== undefined) assert.strictEqual(outcome, "notWritten", `send ${i + 1} record ${r}`)
                else assert.isFalse(error._tag === "Retriable" && error.ambiguous, `send ${i + 1}: not ambiguous`)
              })
              assert.strictEqual(error._tag, "Retriable", `send ${i + 1} may be sent again`)
            })
            // once the sends returned, the partition takes new records
            const [after] = yield* producer.send([on(0, "after")])
            assert.strictEqual(after!.partition, 0)
            assert.include(
              (yield* broker.readBack(name)).map((r) => text(r.value)),
              "after"
            )
          })
        )
    )
  })
