import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Latch, Layer, Random, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Batcher, Publisher, Topic } from "effect-kafka-publisher"
import { FakeKafka } from "effect-kafka-publisher/testing"
import { Producer, type ProducerRecord, type RecordMetadata, recordSize } from "../../src/Producer.ts"
import { Fatal, type PublishError, type RecordOutcome, Retriable } from "../../src/PublishError.ts"
import { makeSteppingClock } from "../support/steppingClock.ts"

const encoder = new TextEncoder()
const decoder = new TextDecoder()

const record = (value: string, topic = "orders"): ProducerRecord => ({
  topic,
  key: null,
  value: encoder.encode(value),
  headers: {}
})
const records = (...values: ReadonlyArray<string>) => values.map((value) => record(value))
const textOf = (r: ProducerRecord) => (r.value === null ? "" : decoder.decode(r.value))

/**
 * A recording Producer double: keeps the records of every send, answers each record with its value as
 * offset (so a receipt says which record it belongs to), fails scripted sends, and holds sends while
 * its gate is closed.
 */
const makeRecording = () => {
  const sends: Array<ReadonlyArray<ProducerRecord>> = []
  const failures: Array<PublishError> = []
  const gate = Latch.makeUnsafe(true)
  let inFlight = 0
  const producer: Producer = {
    send: (batch) =>
      Effect.suspend(() => {
        sends.push(batch)
        const failure = failures.shift()
        inFlight++
        return gate.await.pipe(
          Effect.andThen(
            failure === undefined
              ? Effect.succeed(
                  batch.map((r): RecordMetadata => ({ topic: r.topic, partition: 0, offset: textOf(r), timestamp: 0 }))
                )
              : Effect.fail(failure)
          ),
          Effect.ensuring(Effect.sync(() => inFlight--))
        )
      }),
    inFlight: Effect.sync(() => inFlight)
  }
  return {
    producer,
    sends,
    /** Values of each send, e.g. [["a", "b"], ["c"]]. */
    sent: () => sends.map((batch) => batch.map(textOf)),
    failNext: (error: PublishError) => failures.push(error),
    hold: () => gate.closeUnsafe(),
    release: () => gate.openUnsafe()
  }
}
type Recording = ReturnType<typeof makeRecording>

/** A Batcher over the recording producer; one batch in flight unless the options say otherwise (most tests watch one). */
const batcherOver = (recording: Recording, options: Batcher.Options = {}) =>
  Batcher.make({ maxInFlightBatches: 1, ...options }).pipe(Effect.provideService(Producer, recording.producer))

/** Starts a send in its own fiber; it enqueues before this returns. */
const start = (batcher: Producer, values: ReadonlyArray<string>) =>
  Effect.forkChild(batcher.send(records(...values)), { startImmediately: true })

/** Lets the batcher's fibers run without moving the clock. */
const settle = Effect.gen(function* () {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

const offsets = (metadata: ReadonlyArray<RecordMetadata>) => metadata.map((m) => m.offset)

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (!reason) throw new Error(`expected a typed failure: ${exit.cause}`)
  return reason.error
}

const unavailable = new Retriable({ reason: "BrokerUnavailable", ambiguous: false, message: "broker down" })

describe("Batcher", () => {
  it.effect("linger: nothing is sent before 5 ms, then one batch with every record", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const batcher = yield* batcherOver(recording)
      const a = yield* start(batcher, ["a1", "a2"])
      yield* TestClock.adjust(1)
      const b = yield* start(batcher, ["b1"])
      const c = yield* start(batcher, ["c1"])
      yield* TestClock.adjust(3)
      yield* settle
      assert.deepStrictEqual(recording.sent(), [])
      assert.strictEqual(yield* batcher.inFlight, 4)
      yield* TestClock.adjust(1) // 5 ms after the first record
      yield* settle
      assert.deepStrictEqual(recording.sent(), [["a1", "a2", "b1", "c1"]])
      assert.deepStrictEqual(offsets(yield* Fiber.join(a)), ["a1", "a2"])
      assert.deepStrictEqual(offsets(yield* Fiber.join(b)), ["b1"])
      assert.deepStrictEqual(offsets(yield* Fiber.join(c)), ["c1"])
      assert.strictEqual(yield* batcher.inFlight, 0)
      const stats = yield* batcher.stats
      assert.strictEqual(stats.batchesSent, 1)
      assert.strictEqual(stats.recordsSent, 4)
    })
  )

  it.effect("linger is counted from the batch's first record, per batch", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const batcher = yield* batcherOver(recording, { linger: "10 millis" })
      yield* start(batcher, ["a"])
      yield* TestClock.adjust(10)
      yield* settle
      yield* TestClock.adjust(3)
      yield* start(batcher, ["b"]) // a new batch at 13 ms: due at 23 ms
      yield* TestClock.adjust(9)
      yield* settle
      assert.deepStrictEqual(recording.sent(), [["a"]])
      yield* TestClock.adjust(1)
      yield* settle
      assert.deepStrictEqual(recording.sent(), [["a"], ["b"]])
    })
  )

  it.effect("size trigger: a batch of batchSize records is sent at once, without waiting for linger", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const batcher = yield* batcherOver(recording, { batchSize: 3, linger: "1 second" })
      const first = yield* start(batcher, ["a"])
      yield* start(batcher, ["b", "c"])
      yield* start(batcher, ["d"]) // the next batch
      yield* settle
      assert.deepStrictEqual(recording.sent(), [["a", "b", "c"]])
      assert.deepStrictEqual(offsets(yield* Fiber.join(first)), ["a"])
      yield* TestClock.adjust("1 second")
      yield* settle
      assert.deepStrictEqual(recording.sent(), [["a", "b", "c"], ["d"]])
    })
  )

  it.effect("a call is never split: one that does not fit starts the next batch; a big one is a batch alone", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const batcher = yield* batcherOver(recording, { batchSize: 3, linger: "1 second" })
      yield* start(batcher, ["a", "b"])
      yield* start(batcher, ["c", "d"]) // does not fit: closes the first batch
      const big = yield* start(batcher, ["e", "f", "g", "h"]) // more than batchSize
      yield* settle
      assert.deepStrictEqual(recording.sent(), [
        ["a", "b"],
        ["c", "d"],
        ["e", "f", "g", "h"]
      ])
      assert.deepStrictEqual(offsets(yield* Fiber.join(big)), ["e", "f", "g", "h"])
    })
  )

  it.effect("bytes trigger: the batch is sent when the next call would take it over batchBytes", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const size = Batcher.estimatedSize(record("xxxxxxxxxx"))
      assert.strictEqual(size, 10 + 36) // value bytes + record format overhead
      // room for two records (and the batch header), not three
      const batcher = yield* batcherOver(recording, { batchBytes: 61 + 2 * size, linger: "1 second" })
      yield* start(batcher, ["xxxxxxxxx1"])
      yield* settle
      assert.deepStrictEqual(recording.sent(), [])
      yield* start(batcher, ["xxxxxxxxx2"]) // exactly full
      yield* settle
      assert.deepStrictEqual(recording.sent(), [["xxxxxxxxx1", "xxxxxxxxx2"]])
      yield* start(batcher, ["xxxxxxxxx3"])
      yield* start(batcher, ["xxxxxxxxx4", "xxxxxxxxx5"]) // would overflow: the first batch leaves alone
      yield* settle
      assert.deepStrictEqual(recording.sent(), [
        ["xxxxxxxxx1", "xxxxxxxxx2"],
        ["xxxxxxxxx3"],
        ["xxxxxxxxx4", "xxxxxxxxx5"]
      ])
    })
  )

  it.effect("headers count towards the estimated size", () =>
    Effect.sync(() => {
      const plain = record("v")
      const withHeaders: ProducerRecord = { ...plain, headers: { ab: "cde", f: new Uint8Array(4) } }
      assert.strictEqual(Batcher.estimatedSize(withHeaders) - Batcher.estimatedSize(plain), 2 + 3 + 1 + 4 + 2 * 10)
    })
  )

  it.effect("batchBytes counts Kafka's encoding overhead: full batches stay under max.message.bytes", () =>
    Effect.gen(function* () {
      const fake = yield* FakeKafka.make({ topics: { t: { partitions: 1, maxMessageBytes: 10_000 } } })
      const event = (i: number): ProducerRecord => ({
        topic: "t",
        key: encoder.encode(`key-${String(i).padStart(6, "0")}`),
        value: new Uint8Array(90),
        headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
        timestamp: 1_700_000_000_000 + i * 1_000_000 // spread out: large timestamp deltas
      })
      // counting payload bytes only, 60 of these fit in 10,000 bytes, but their record batch is larger
      const sixty = Array.from({ length: 60 }, (_, i) => event(i))
      assert.isAtMost(
        sixty.reduce((n, r) => n + recordSize(r), 0),
        10_000
      )
      const direct = yield* Effect.flip(fake.producer.send(sixty))
      assert.strictEqual(direct.reason, "RecordTooLarge")

      const batcher = yield* Batcher.make({ batchBytes: 10_000, batchSize: 1_000 }).pipe(
        Effect.provideService(Producer, fake.producer)
      )
      const fibers = []
      for (let i = 0; i < 300; i++) {
        fibers.push(yield* Effect.forkChild(batcher.send([event(i)]), { startImmediately: true }))
      }
      yield* TestClock.adjust(5)
      for (const fiber of fibers) yield* Fiber.join(fiber)
      const stats = yield* batcher.stats
      assert.strictEqual(stats.batchesFailed, 0)
      assert.strictEqual(stats.recordsSent, 300)
      assert.isAtMost(stats.batchesSent, 7) // batches are well filled, not one record each
      assert.strictEqual((yield* fake.records("t")).length, 300)
    })
  )

  it.effect("each caller gets its own receipts, in input order, from a batch of several topics", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const batcher = yield* batcherOver(recording)
      const a = yield* Effect.forkChild(batcher.send([record("a1", "orders"), record("a2", "payments")]), {
        startImmediately: true
      })
      const b = yield* Effect.forkChild(batcher.send([record("b1", "payments")]), { startImmediately: true })
      const c = yield* Effect.forkChild(
        batcher.send([record("c1", "orders"), record("c2", "orders"), record("c3", "audit")]),
        { startImmediately: true }
      )
      const empty = yield* batcher.send([])
      assert.deepStrictEqual(empty, [])
      yield* TestClock.adjust(5)
      assert.strictEqual(recording.sends.length, 1)
      assert.deepStrictEqual(
        recording.sends[0]!.map((r) => r.topic),
        ["orders", "payments", "payments", "orders", "orders", "audit"]
      )
      const ra = yield* Fiber.join(a)
      const rb = yield* Fiber.join(b)
      const rc = yield* Fiber.join(c)
      assert.deepStrictEqual(
        ra.map((m) => [m.topic, m.offset]),
        [
          ["orders", "a1"],
          ["payments", "a2"]
        ]
      )
      assert.deepStrictEqual(
        rb.map((m) => [m.topic, m.offset]),
        [["payments", "b1"]]
      )
      assert.deepStrictEqual(
        rc.map((m) => [m.topic, m.offset]),
        [
          ["orders", "c1"],
          ["orders", "c2"],
          ["audit", "c3"]
        ]
      )
    })
  )

  it.effect("a failed batch fails every caller in it with the batch's error; later batches still work", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const batcher = yield* batcherOver(recording)
      recording.failNext(unavailable)
      const a = yield* start(batcher, ["a1", "a2"])
      const b = yield* start(batcher, ["b1"])
      yield* TestClock.adjust(5)
      assert.strictEqual(failureOf(yield* Fiber.await(a)), unavailable)
      assert.strictEqual(failureOf(yield* Fiber.await(b)), unavailable)
      const c = yield* start(batcher, ["c1"])
      yield* TestClock.adjust(5)
      assert.deepStrictEqual(offsets(yield* Fiber.join(c)), ["c1"])
      assert.deepStrictEqual(recording.sent(), [["a1", "a2", "b1"], ["c1"]])
      const stats = yield* batcher.stats
      assert.strictEqual(stats.batchesFailed, 1)
      assert.strictEqual(stats.batchesSent, 1)
      assert.strictEqual(yield* batcher.inFlight, 0)
    })
  )

  it.effect("a producer that answers the wrong number of receipts is a defect for its callers, not a hang", () =>
    Effect.gen(function* () {
      const broken: Producer = { send: () => Effect.succeed([]), inFlight: Effect.succeed(0) }
      const batcher = yield* Batcher.make().pipe(Effect.provideService(Producer, broken))
      const a = yield* Effect.forkChild(batcher.send(records("a")), { startImmediately: true })
      yield* TestClock.adjust(5)
      const exit = yield* Fiber.await(a)
      assert.isTrue(Exit.isFailure(exit) && exit.cause.reasons.some((r) => r._tag === "Die"))
    })
  )

  it.effect("5 batches in flight by default, as the Java client; the next waits for a slot", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const batcher = yield* Batcher.make({ linger: 0, batchSize: 1 }).pipe(
        Effect.provideService(Producer, recording.producer)
      )
      recording.hold()
      for (const value of ["a", "b", "c", "d", "e", "f", "g"]) yield* start(batcher, [value])
      yield* settle
      assert.deepStrictEqual(recording.sent(), [["a"], ["b"], ["c"], ["d"], ["e"]])
      recording.release()
      yield* settle
      assert.deepStrictEqual(recording.sent(), [["a"], ["b"], ["c"], ["d"], ["e"], ["f"], ["g"]])
    })
  )

  it.effect(
    "with maxInFlightBatches 1, one batch in flight at a time; records arriving meanwhile form the next batch",
    () =>
      Effect.gen(function* () {
        const recording = makeRecording()
        const batcher = yield* batcherOver(recording, { linger: 0 })
        recording.hold()
        yield* start(batcher, ["a"])
        yield* settle
        const b = yield* start(batcher, ["b"])
        yield* start(batcher, ["c"])
        yield* settle
        assert.deepStrictEqual(recording.sent(), [["a"]])
        assert.deepStrictEqual(yield* batcher.stats, {
          waiting: 0,
          queued: 2,
          inFlight: 1,
          batchesSent: 0,
          batchesFailed: 0,
          recordsSent: 0
        })
        recording.release()
        yield* settle
        assert.deepStrictEqual(recording.sent(), [["a"], ["b", "c"]])
        assert.deepStrictEqual(offsets(yield* Fiber.join(b)), ["b"])
      })
  )

  it.effect("maxInFlightBatches > 1 lets batches overlap", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const batcher = yield* batcherOver(recording, { linger: 0, maxInFlightBatches: 2 })
      recording.hold()
      yield* start(batcher, ["a"])
      yield* settle
      yield* start(batcher, ["b"])
      yield* settle
      yield* start(batcher, ["c"])
      yield* settle
      assert.deepStrictEqual(recording.sent(), [["a"], ["b"]])
      assert.strictEqual((yield* batcher.stats).queued, 1)
      recording.release()
      yield* settle
      assert.deepStrictEqual(recording.sent(), [["a"], ["b"], ["c"]])
    })
  )

  it.effect("backpressure: beyond maxQueued a send waits, without growing the queue, until room frees", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const batcher = yield* batcherOver(recording, { maxQueued: 2, batchSize: 2, linger: "1 second" })
      recording.hold()
      const a = yield* start(batcher, ["a1", "a2"]) // full batch: in flight, held
      yield* settle
      const b = yield* start(batcher, ["b1", "b2"]) // queued: the queue is full
      const c = yield* start(batcher, ["c1"]) // waits for room
      const d = yield* start(batcher, ["d1"]) // waits behind c
      yield* TestClock.adjust("5 seconds")
      yield* settle
      assert.deepStrictEqual(recording.sent(), [["a1", "a2"]])
      assert.deepStrictEqual(yield* batcher.stats, {
        waiting: 2,
        queued: 2,
        inFlight: 2,
        batchesSent: 0,
        batchesFailed: 0,
        recordsSent: 0
      })
      assert.strictEqual(yield* batcher.inFlight, 6)
      assert.isUndefined(c.pollUnsafe())
      assert.isUndefined(d.pollUnsafe())
      recording.release()
      yield* settle
      // b left for the producer, so c and d were admitted; with callers waiting nothing lingers
      assert.deepStrictEqual(recording.sent(), [
        ["a1", "a2"],
        ["b1", "b2"],
        ["c1", "d1"]
      ])
      assert.deepStrictEqual(offsets(yield* Fiber.join(a)), ["a1", "a2"])
      assert.deepStrictEqual(offsets(yield* Fiber.join(b)), ["b1", "b2"])
      assert.deepStrictEqual(offsets(yield* Fiber.join(c)), ["c1"])
      assert.deepStrictEqual(offsets(yield* Fiber.join(d)), ["d1"])
    })
  )

  it.effect("backpressure: the queue never holds more than maxQueued records under many senders", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const batcher = yield* batcherOver(recording, { maxQueued: 10, batchSize: 4, linger: "1 millis" })
      recording.hold()
      const fibers = []
      for (let i = 0; i < 100; i++) fibers.push(yield* start(batcher, [`r${i}`]))
      yield* settle
      let stats = yield* batcher.stats
      assert.strictEqual(stats.queued, 10)
      assert.strictEqual(stats.inFlight, 4)
      assert.strictEqual(stats.waiting, 86)
      recording.release()
      while ((yield* batcher.inFlight) > 0) {
        stats = yield* batcher.stats
        assert.isAtMost(stats.queued, 10)
        yield* TestClock.adjust(1)
      }
      const all = recording.sent().flat()
      assert.deepStrictEqual(
        all,
        Array.from({ length: 100 }, (_, i) => `r${i}`)
      )
      assert.isTrue(recording.sends.every((batch) => batch.length <= 4))
      for (let i = 0; i < 100; i++) assert.deepStrictEqual(offsets(yield* Fiber.join(fibers[i]!)), [`r${i}`])
    })
  )

  it.effect("a call larger than maxQueued is admitted once the queue is empty", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const batcher = yield* batcherOver(recording, { maxQueued: 2, linger: 0 })
      const big = yield* start(batcher, ["a", "b", "c"])
      yield* settle
      assert.deepStrictEqual(offsets(yield* Fiber.join(big)), ["a", "b", "c"])
    })
  )

  it.effect("a caller interrupted while waiting for room withdraws its records: they are never sent", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const batcher = yield* batcherOver(recording, { maxQueued: 1, batchSize: 1, linger: 0 })
      recording.hold()
      yield* start(batcher, ["a"]) // in flight
      yield* settle
      yield* start(batcher, ["b"]) // queued
      const c = yield* start(batcher, ["c"]) // waiting
      const d = yield* start(batcher, ["d"]) // waiting
      yield* Fiber.interrupt(c)
      assert.strictEqual((yield* batcher.stats).waiting, 1)
      recording.release()
      yield* settle
      assert.deepStrictEqual(recording.sent(), [["a"], ["b"], ["d"]])
      assert.deepStrictEqual(offsets(yield* Fiber.join(d)), ["d"])
    })
  )

  it.effect("shutdown: closing the scope sends what was queued at once and the callers get their receipts", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const scope = yield* Scope.make()
      const batcher = yield* batcherOver(recording, { linger: "1 minute", batchSize: 2 }).pipe(Scope.provide(scope))
      recording.hold()
      const a = yield* start(batcher, ["a1", "a2"]) // full: in flight, held
      yield* settle
      const b = yield* start(batcher, ["b1"])
      const c = yield* start(batcher, ["c1"])
      const d = yield* start(batcher, ["d1"])
      yield* settle
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void), { startImmediately: true })
      yield* settle
      assert.isUndefined(closing.pollUnsafe(), "closing waits for the answers")
      // new sends are refused while flushing
      const late = yield* Effect.exit(batcher.send(records("late")))
      assert.strictEqual(failureOf(late)._tag, "Fatal")
      recording.release()
      yield* Fiber.join(closing)
      assert.deepStrictEqual(recording.sent(), [["a1", "a2"], ["b1", "c1"], ["d1"]])
      assert.deepStrictEqual(offsets(yield* Fiber.join(a)), ["a1", "a2"])
      assert.deepStrictEqual(offsets(yield* Fiber.join(b)), ["b1"])
      assert.deepStrictEqual(offsets(yield* Fiber.join(c)), ["c1"])
      assert.deepStrictEqual(offsets(yield* Fiber.join(d)), ["d1"])
      assert.strictEqual(yield* batcher.inFlight, 0)
    })
  )

  it.effect("shutdown flushes callers that were waiting for room too", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const scope = yield* Scope.make()
      const batcher = yield* batcherOver(recording, { maxQueued: 1, linger: "1 minute" }).pipe(Scope.provide(scope))
      const a = yield* start(batcher, ["a"])
      const b = yield* start(batcher, ["b"]) // waits for room
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(offsets(yield* Fiber.join(a)), ["a"])
      assert.deepStrictEqual(offsets(yield* Fiber.join(b)), ["b"])
      assert.deepStrictEqual(recording.sent().flat(), ["a", "b"])
    })
  )

  it.effect("sends after close fail with a typed Fatal error, nothing sent", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const scope = yield* Scope.make()
      const batcher = yield* batcherOver(recording).pipe(Scope.provide(scope))
      yield* Scope.close(scope, Exit.void)
      const error = yield* Effect.flip(batcher.send(records("late")))
      assert.strictEqual(error._tag, "Fatal")
      assert.strictEqual(error.reason, "Unknown")
      assert.strictEqual(error.topic, "orders")
      assert.include(error.message, "batcher closed")
      assert.isTrue(Schema.is(Fatal)(error))
      assert.deepStrictEqual(recording.sent(), [])
    })
  )

  it.effect("shutdown timeout: callers never sent get Fatal, callers in flight get an ambiguous Retriable", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const scope = yield* Scope.make()
      const batcher = yield* batcherOver(recording, { batchSize: 1, shutdownTimeout: "2 seconds" }).pipe(
        Scope.provide(scope)
      )
      recording.hold() // the producer never answers
      const a = yield* start(batcher, ["a"])
      yield* settle
      const b = yield* start(batcher, ["b"])
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void), { startImmediately: true })
      yield* TestClock.adjust("1999 millis")
      assert.isUndefined(closing.pollUnsafe())
      yield* TestClock.adjust(1)
      yield* Fiber.join(closing)
      const inFlight = failureOf(yield* Fiber.await(a))
      assert.strictEqual(inFlight._tag, "Retriable")
      assert.isTrue(inFlight._tag === "Retriable" && inFlight.ambiguous)
      const notSent = failureOf(yield* Fiber.await(b))
      assert.strictEqual(notSent._tag, "Fatal")
      assert.deepStrictEqual(recording.sent(), [["a"]])
      assert.strictEqual(yield* batcher.inFlight, 0)
    })
  )

  it.effect("invalid options are a defect at construction", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(batcherOver(makeRecording(), { batchSize: 0 }))
      assert.isTrue(Exit.isFailure(exit) && exit.cause.reasons.some((r) => r._tag === "Die"))
    })
  )

  it.effect("layer: under an unchanged Publisher, concurrent publishes become one request", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const topic = Topic.make({ name: "orders", schema: Schema.String })
      const stack = Publisher.layer({ deadLetter: false }).pipe(
        Layer.provideMerge(Batcher.layer()),
        Layer.provide(Layer.succeed(Producer, recording.producer))
      )
      yield* Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const events = Array.from({ length: 10 }, (_, i) => `e${i}`)
        const all = yield* Effect.forkChild(publisher.publishAll(topic, events), { startImmediately: true })
        yield* settle
        assert.deepStrictEqual(recording.sent(), [])
        yield* TestClock.adjust(5)
        const receipts = yield* Fiber.join(all)
        assert.strictEqual(recording.sends.length, 1)
        assert.strictEqual(recording.sends[0]!.length, 10)
        assert.isTrue(receipts.every((r) => r._tag === "Delivered"))
        const stats = yield* (yield* Batcher.Batcher).stats
        assert.strictEqual(stats.batchesSent, 1)
      }).pipe(Effect.provide(stack))
    })
  )

  it.effect("layer: a failed batch under the Publisher is retried record by record, nothing lost", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const topic = Topic.make({ name: "orders", schema: Schema.String })
      const stack = Publisher.layer({ deadLetter: false }).pipe(
        Layer.provide(Batcher.layer()),
        Layer.provide(Layer.succeed(Producer, recording.producer))
      )
      recording.failNext(unavailable)
      yield* Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const all = yield* Effect.forkChild(publisher.publishAll(topic, ["a", "b", "c"]), { startImmediately: true })
        yield* TestClock.adjust(5) // the first batch fails for all three
        yield* TestClock.adjust(100) // each publish retries after its backoff (no jitter: exactly 100 ms)
        yield* TestClock.adjust(5)
        const receipts = yield* Fiber.join(all)
        assert.deepStrictEqual(
          receipts.map((r) => [r._tag, r.attempts]),
          [
            ["Delivered", 2],
            ["Delivered", 2],
            ["Delivered", 2]
          ]
        )
        assert.deepStrictEqual(recording.sent(), [
          ['"a"', '"b"', '"c"'],
          ['"a"', '"b"', '"c"']
        ])
      }).pipe(
        Effect.provide(stack),
        Effect.provideService(Random.Random, { nextDoubleUnsafe: () => 0.5, nextIntUnsafe: () => 0 })
      )
    })
  )
})

describe("Batcher on a monotonic clock", () => {
  it.effect(
    "issue 18.4: linger is measured on monotonic time: a wall clock stepped back 2 s does not delay a 5 ms linger",
    () =>
      Effect.gen(function* () {
        const stepping = yield* makeSteppingClock
        yield* Effect.gen(function* () {
          yield* stepping.adjust(10_000)
          const recording = makeRecording()
          const batcher = yield* batcherOver(recording, { linger: "5 millis" })
          const a = yield* start(batcher, ["a"])
          yield* settle
          yield* stepping.stepBack(2_000)
          yield* stepping.adjust(4)
          yield* settle
          assert.deepStrictEqual(recording.sent(), [])
          yield* stepping.adjust(1)
          yield* settle
          assert.deepStrictEqual(recording.sent(), [["a"]])
          assert.deepStrictEqual(offsets(yield* Fiber.join(a)), ["a"])
        }).pipe(Effect.provideService(Clock.Clock, stepping.clock))
      })
  )
})

describe("Batcher: failures that are not every record's (issue 18.2)", () => {
  const written = (value: string, partition: number): RecordMetadata => ({
    topic: "orders",
    partition,
    offset: value,
    timestamp: 0
  })
  const tooLargeWith = (outcomes?: ReadonlyArray<RecordOutcome>) =>
    new Fatal({
      reason: "RecordTooLarge",
      topic: "orders",
      partition: 1,
      message: "record batch too large",
      ...(outcomes === undefined ? {} : { outcomes })
    })

  it.effect(
    "issue 18.2a: in a batch spanning partitions, the caller whose partition the broker wrote gets its receipt",
    () =>
      Effect.gen(function* () {
        const recording = makeRecording()
        const batcher = yield* batcherOver(recording)
        recording.failNext(tooLargeWith([written("small", 0), "notWritten"]))
        recording.failNext(tooLargeWith()) // the big one alone: still too large
        const small = yield* start(batcher, ["small"])
        const big = yield* start(batcher, ["big"])
        yield* TestClock.adjust(5)
        assert.deepStrictEqual(offsets(yield* Fiber.join(small)), ["small"])
        const error = failureOf(yield* Fiber.await(big))
        assert.strictEqual(error._tag, "Fatal")
        assert.strictEqual(error.reason, "RecordTooLarge")
        assert.deepStrictEqual(recording.sent(), [["small", "big"], ["big"]]) // the small one is never resent
      })
  )

  // Regression: with kafkajs (every outcome of a refused multi-partition request unknown), the calls co-batched
  // with an oversize record were answered with its size error and dead-lettered, though written elsewhere.
  it.effect(
    "issue 18.2a: a call whose fate is unknown in a batch refused as too large goes again, its receipt marked",
    () =>
      Effect.gen(function* () {
        const recording = makeRecording()
        const batcher = yield* batcherOver(recording)
        recording.failNext(tooLargeWith([written("a", 0), "unknown", "notWritten"]))
        const a = yield* start(batcher, ["a"])
        const b = yield* start(batcher, ["b"])
        const c = yield* start(batcher, ["c"])
        yield* TestClock.adjust(5)
        assert.deepStrictEqual(offsets(yield* Fiber.join(a)), ["a"])
        const [maybeTwice] = yield* Fiber.join(b)
        assert.strictEqual(maybeTwice!.possibleDuplicate, true)
        const [once] = yield* Fiber.join(c)
        assert.isUndefined(once!.possibleDuplicate) // certainly not written before: resent, delivered, not marked
        assert.deepStrictEqual(recording.sent(), [["a", "b", "c"], ["b"], ["c"]])
      })
  )

  it.effect("issue 18.2a: a call of unknown fate refused again on its own fails marked possiblyDelivered", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const batcher = yield* batcherOver(recording)
      recording.failNext(tooLargeWith([written("a", 0), "unknown"]))
      recording.failNext(tooLargeWith()) // alone: its own size
      const a = yield* start(batcher, ["a"])
      const big = yield* start(batcher, ["big"])
      yield* TestClock.adjust(5)
      assert.deepStrictEqual(offsets(yield* Fiber.join(a)), ["a"])
      const error = failureOf(yield* Fiber.await(big))
      assert.strictEqual(error.reason, "RecordTooLarge")
      assert.isTrue(error.possiblyDelivered)
    })
  )

  it.effect("issue 18.2a: a retriable failure with outcomes answers the written callers and fails the others", () =>
    Effect.gen(function* () {
      const recording = makeRecording()
      const batcher = yield* batcherOver(recording)
      const notLeader = new Retriable({
        reason: "NotLeader",
        ambiguous: false,
        message: "not leader",
        outcomes: [written("a", 0), "notWritten"]
      })
      recording.failNext(notLeader)
      const a = yield* start(batcher, ["a"])
      const b = yield* start(batcher, ["b"])
      yield* TestClock.adjust(5)
      assert.deepStrictEqual(offsets(yield* Fiber.join(a)), ["a"])
      const error = failureOf(yield* Fiber.await(b))
      assert.strictEqual(error.reason, "NotLeader")
      assert.deepStrictEqual(error.outcomes, ["notWritten"]) // its own records' outcomes only
      assert.deepStrictEqual(recording.sent(), [["a", "b"]]) // the Publisher above retries it
    })
  )

  // Regression (real broker, @platformatic/kafka): the records held back on a refused partition got the request's
  // error, ambiguous because other partitions were written, and their retries were marked possibleDuplicate.
  it.effect(
    "an ambiguous request error answers a caller whose records were certainly not written as not ambiguous",
    () =>
      Effect.gen(function* () {
        const recording = makeRecording()
        const batcher = yield* batcherOver(recording)
        recording.failNext(
          new Retriable({
            reason: "Unknown",
            ambiguous: true, // another partition of the request was written
            possiblyDelivered: true,
            message: "not written, to keep the order",
            outcomes: [written("a", 0), "notWritten", "unknown"]
          })
        )
        const a = yield* start(batcher, ["a"])
        const b = yield* start(batcher, ["b"])
        const c = yield* start(batcher, ["c"])
        yield* TestClock.adjust(5)
        assert.deepStrictEqual(offsets(yield* Fiber.join(a)), ["a"])
        const notWritten = failureOf(yield* Fiber.await(b))
        assert.isFalse(notWritten._tag === "Retriable" && notWritten.ambiguous, "certainly not written")
        assert.isUndefined(notWritten.possiblyDelivered)
        const unknown = failureOf(yield* Fiber.await(c))
        assert.isTrue(unknown.possiblyDelivered)
      })
  )

  it.effect("issue 18.2a: on FakeKafka, the small record's caller gets Delivered and its record is written once", () =>
    Effect.gen(function* () {
      const stack = Publisher.layer().pipe(
        Layer.provide(Batcher.layer()),
        Layer.provideMerge(FakeKafka.layer({ topics: { orders: { partitions: 2, maxMessageBytes: 2000 } } }))
      )
      yield* Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const fake = yield* FakeKafka.FakeKafka
        const small = yield* Effect.forkChild(publisher.publishRecord({ ...record("small"), partition: 0 }), {
          startImmediately: true
        })
        const big = yield* Effect.forkChild(publisher.publishRecord({ ...record("x".repeat(3000)), partition: 1 }), {
          startImmediately: true
        })
        yield* TestClock.adjust(5) // one batch, both partitions: partition 0 written, partition 1 refused
        yield* TestClock.adjust(5) // the big one's dead letter, batched too
        const delivered = yield* Fiber.join(small)
        assert.strictEqual(delivered._tag, "Delivered")
        if (delivered._tag === "Delivered") assert.isFalse(delivered.possibleDuplicate)
        const deadLettered = yield* Fiber.join(big)
        assert.strictEqual(deadLettered._tag, "DeadLettered")
        if (deadLettered._tag === "DeadLettered") assert.isFalse(deadLettered.possiblyDelivered)
        assert.deepStrictEqual(
          (yield* fake.records("orders")).map((r) => decoder.decode(r.value!)),
          ["small"]
        )
        assert.strictEqual((yield* fake.records("orders.dlt")).length, 1)
      }).pipe(Effect.provide(stack))
    })
  )

  it.effect("issue 18.2b: a batch over the topic's max.message.bytes is split and resent: every record delivered", () =>
    Effect.gen(function* () {
      const topic = Topic.make({ name: "orders", schema: Schema.String })
      const stack = Publisher.layer().pipe(
        Layer.provide(Batcher.layer()),
        Layer.provideMerge(FakeKafka.layer({ maxMessageBytes: 5000, topics: { orders: { partitions: 1 } } }))
      )
      yield* Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const fake = yield* FakeKafka.FakeKafka
        const events = Array.from({ length: 10 }, (_, i) => `${i}`.padEnd(998, "x")) // 1,000 bytes as JSON
        const all = yield* Effect.forkChild(publisher.publishAll(topic, events), { startImmediately: true })
        // publishAll hands the Batcher one call of 10 (never split): refused; the Publisher resends each
        // record on its own, and the Batcher gathers those 10 calls into a batch it can split
        yield* TestClock.adjust(5)
        yield* TestClock.adjust(5)
        const receipts = yield* Fiber.join(all)
        assert.deepStrictEqual(
          receipts.map((r) => r._tag),
          events.map(() => "Delivered")
        )
        assert.deepStrictEqual(
          (yield* fake.records("orders")).map((r) => decoder.decode(r.value!)),
          events.map((e) => JSON.stringify(e))
        ) // each once, in order
        assert.deepStrictEqual(yield* fake.records("orders.dlt"), [])
        // the call of 10, then 10 -> 5 + 5 -> (2 + 3) + (2 + 3): the two 5s are refused too, the four parts fit
        assert.strictEqual(yield* fake.sendCount, 8)
      }).pipe(Effect.provide(stack))
    })
  )
})

describe("Batcher: splitting a batch that spans partitions (issue 18.2b)", () => {
  it.effect(
    "issue 18.2b: over max.message.bytes on two partitions: split and resent, each record written once, in order",
    () =>
      Effect.gen(function* () {
        const stack = Publisher.layer().pipe(
          Layer.provide(Batcher.layer()),
          Layer.provideMerge(FakeKafka.layer({ topics: { orders: { partitions: 2, maxMessageBytes: 5000 } } }))
        )
        yield* Effect.gen(function* () {
          const publisher = yield* Publisher.Publisher
          const fake = yield* FakeKafka.FakeKafka
          const values = Array.from({ length: 10 }, (_, i) => `${i}`.padEnd(1000, "x"))
          const fibers = yield* Effect.forEach(values, (value, i) =>
            Effect.forkChild(publisher.publishRecord({ ...record(value), partition: i % 2 }), {
              startImmediately: true
            })
          )
          yield* TestClock.adjust(5)
          const receipts = yield* Effect.forEach(fibers, Fiber.join)
          assert.deepStrictEqual(
            receipts.map((r) => r._tag === "Delivered" && !r.possibleDuplicate),
            values.map(() => true)
          )
          for (const partition of [0, 1]) {
            assert.deepStrictEqual(
              (yield* fake.records("orders", { partition })).map((r) => decoder.decode(r.value!)),
              values.filter((_, i) => i % 2 === partition)
            )
          }
          assert.deepStrictEqual(yield* fake.records("orders.dlt"), [])
        }).pipe(Effect.provide(stack))
      })
  )
})
