import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Fiber, Layer, Random, Result, Schema, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Batcher, Publisher, RetryPolicy, Topic } from "effect-kafka-publisher"
import { FakeKafka } from "effect-kafka-publisher/testing"
import { Producer, type ProducerRecord } from "../../src/Producer.ts"
import { Fatal, Retriable } from "../../src/PublishError.ts"

class Event extends Schema.Class<Event>("Event")({
  id: Schema.Int.check(Schema.isGreaterThan(0)),
  key: Schema.String
}) {}

const events = Topic.make({ name: "events", schema: Event, key: (e) => e.key })
const event = (id: number, key = `k${id % 3}`) => new Event({ id, key })
const invalid = new Event({ id: -1, key: "k0" }, { disableChecks: true })
const unavailable = new Retriable({ reason: "BrokerUnavailable", ambiguous: false, message: "broker down" })
const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (!reason) throw new Error(`expected a typed failure: ${exit.cause}`)
  return reason.error
}

const noJitter = Effect.provideService(Random.Random, { nextDoubleUnsafe: () => 0.5, nextIntUnsafe: () => 0 })
const decoder = new TextDecoder()
const idOf = (value: Uint8Array | null) => (JSON.parse(decoder.decode(value!)) as { id: number }).id

const fakeLayer = FakeKafka.layer({
  topics: { events: { partitions: 3 }, one: { partitions: 1 }, small: { partitions: 1, maxMessageBytes: 2500 } }
})

/** A publisher (over a Batcher with these options, if given) in a scope the test closes itself. */
const scoped = (options: Publisher.Options = {}, batcher?: Batcher.Options) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const publisher =
      batcher === undefined
        ? Publisher.layer(options)
        : Publisher.layer(options).pipe(Layer.provide(Batcher.layer(batcher)))
    const context = yield* Layer.buildWithScope(publisher.pipe(Layer.provideMerge(fakeLayer)), scope)
    return {
      scope,
      context,
      publisher: Context.get(context, Publisher.Publisher),
      fake: Context.get(context, FakeKafka.FakeKafka)
    }
  })

/**
 * A producer over FakeKafka that fails like kafkajs when a request holds a record over 1,000 bytes: the request's
 * other records are written (other partitions), the request fails RecordTooLarge, every outcome unknown; the
 * large record alone fails RecordTooLarge.
 */
const kafkaJsLike = Effect.map(FakeKafka.make({ topics: { events: { partitions: 3 } } }), (fake) => {
  const tooLarge = (outcomes?: ReadonlyArray<"unknown">) =>
    new Fatal({ reason: "RecordTooLarge", topic: "events", message: "too large", ...(outcomes ? { outcomes } : {}) })
  const isLarge = (r: ProducerRecord) => r.topic === "events" && r.value !== null && r.value.length > 1000
  const producer: Producer = {
    ...fake.producer,
    send: (records) => {
      if (!records.some(isLarge)) return fake.producer.send(records)
      if (records.length === 1) return Effect.fail(tooLarge())
      return Effect.andThen(
        fake.producer.send(records.filter((r) => !isLarge(r))),
        Effect.fail(tooLarge(records.map(() => "unknown" as const)))
      )
    }
  }
  return { fake, producer }
})

const record = (topic: string, key: string, value: string) => ({
  topic,
  key: new TextEncoder().encode(key),
  value: new TextEncoder().encode(value),
  headers: {}
})

describe("publishAll in bulk (issue 13.1)", () => {
  it.effect("sends requests of at most batchSize records: 1,200 events in 3 sends, receipts in input order", () =>
    Effect.gen(function* () {
      const { scope, publisher, fake } = yield* scoped()
      const input = Array.from({ length: 1200 }, (_, i) => event(i + 1))
      const receipts = yield* publisher.publishAll(events, input)
      assert.strictEqual(yield* fake.sendCount, 3)
      assert.strictEqual(receipts.length, 1200)
      assert.isTrue(receipts.every((r) => r._tag === "Delivered" && r.attempts === 1 && !r.possibleDuplicate))
      const stored = yield* fake.records("events")
      assert.strictEqual(stored.length, 1200)
      // receipt i is where event i was written
      const byPlace = new Map(stored.map((r) => [`${r.partition}/${r.offset}`, idOf(r.value)]))
      receipts.forEach((r, i) => {
        if (r._tag === "Delivered") assert.strictEqual(byPlace.get(`${r.partition}/${r.offset}`), i + 1)
      })
      yield* Scope.close(scope, Exit.void)
    })
  )

  it.effect("batchBytes bounds a request too", () =>
    Effect.gen(function* () {
      const { scope, publisher, fake } = yield* scoped({ batchBytes: 600 })
      yield* publisher.publishAll(
        events,
        Array.from({ length: 10 }, (_, i) => event(i + 1))
      )
      // each record estimates at 133 bytes (key, value, traceparent header, 46 of overhead): four fit in 600 with the batch header (61)
      assert.strictEqual(yield* fake.sendCount, 3)
      yield* Scope.close(scope, Exit.void)
    })
  )

  it.effect("invalid events fail on their own with Fatal SchemaInvalid; the valid ones go in one request", () =>
    Effect.gen(function* () {
      const { scope, publisher, fake } = yield* scoped()
      const failed = failureOf(yield* Effect.exit(publisher.publishAll(events, [event(1), invalid, event(3), invalid])))
      assert.strictEqual(failed._tag, "PublishAllFailed")
      assert.deepStrictEqual(
        failed.failures.map((f) => [f.index, (f.error as { reason: string }).reason]),
        [
          [1, "SchemaInvalid"],
          [3, "SchemaInvalid"]
        ]
      )
      assert.deepStrictEqual(
        failed.receipts.map((r) => r !== undefined),
        [true, false, true, false]
      )
      assert.strictEqual(yield* fake.sendCount, 1)
      assert.strictEqual((yield* fake.records("events")).length, 2)
      yield* Scope.close(scope, Exit.void)
    })
  )

  it.effect(
    "a failed request across partitions: written records keep their receipts, a partition refused as too large is resent record by record, in order",
    () =>
      Effect.gen(function* () {
        const { scope, publisher, fake } = yield* scoped()
        const big = (n: number) => `${n}`.padEnd(1000, "x")
        const input = [
          record("one", "a", "1"),
          record("small", "s", big(1)),
          record("one", "a", "2"),
          record("small", "s", big(2)),
          record("small", "s", big(3))
        ]
        const receipts = yield* publisher.publishRecords(input)
        assert.deepStrictEqual(
          receipts.map((r) => [r._tag, r.attempts, r._tag === "Delivered" && r.possibleDuplicate]),
          [
            ["Delivered", 1, false],
            ["Delivered", 2, false],
            ["Delivered", 1, false],
            ["Delivered", 2, false],
            ["Delivered", 2, false]
          ]
        )
        assert.strictEqual(yield* fake.sendCount, 4) // the request, then the three refused records one by one
        assert.deepStrictEqual(
          (yield* fake.records("small")).map((r) => decoder.decode(r.value!)),
          [big(1), big(2), big(3)]
        )
        assert.deepStrictEqual(
          (yield* fake.records("one")).map((r) => decoder.decode(r.value!)),
          ["1", "2"]
        )
        yield* Scope.close(scope, Exit.void)
      })
  )

  it.effect("a lost answer: each record resent on its own after the backoff, marked possibleDuplicate", () =>
    Effect.gen(function* () {
      const { scope, publisher, fake } = yield* scoped()
      yield* fake.loseNextAnswers(1)
      const fiber = yield* Effect.forkChild(publisher.publishAll(events, [event(1), event(2)]), {
        startImmediately: true
      })
      yield* Effect.yieldNow
      assert.strictEqual(yield* fake.sendCount, 1)
      yield* TestClock.adjust(99)
      assert.strictEqual(yield* fake.sendCount, 1)
      yield* TestClock.adjust(1)
      const receipts = yield* Fiber.join(fiber)
      assert.strictEqual(yield* fake.sendCount, 3)
      assert.deepStrictEqual(
        receipts.map((r) => [r._tag, r.attempts, r._tag === "Delivered" && r.possibleDuplicate]),
        [
          ["Delivered", 2, true],
          ["Delivered", 2, true]
        ]
      )
      assert.strictEqual((yield* fake.records("events")).length, 4) // the copies, marked
      yield* Scope.close(scope, Exit.void)
    }).pipe(noJitter)
  )

  it.effect(
    "order per key on retry: a record retried after its request failed lands before the later records of its key",
    () =>
      Effect.gen(function* () {
        const { scope, publisher, fake } = yield* scoped({ batchSize: 2 })
        // the first request fails for both, then A1's first retry fails again (sent before B1's)
        yield* fake.failNext(2, unavailable)
        const input = [event(1, "A"), event(2, "B"), event(3, "A"), event(4, "B")]
        const fiber = yield* Effect.forkChild(publisher.publishAll(events, input), { startImmediately: true })
        yield* Effect.yieldNow
        assert.strictEqual(yield* fake.sendCount, 1)
        yield* TestClock.adjust(100) // A1 and B1 retried: A1 fails again, B1 is written
        assert.strictEqual(yield* fake.sendCount, 3)
        yield* TestClock.adjust(199) // the second request waits for A1
        assert.strictEqual(yield* fake.sendCount, 3)
        yield* TestClock.adjust(1)
        const receipts = yield* Fiber.join(fiber)
        assert.strictEqual(yield* fake.sendCount, 5)
        assert.deepStrictEqual(
          receipts.map((r) => r.attempts),
          [3, 2, 1, 1]
        )
        const stored = yield* fake.records("events")
        for (const key of ["A", "B"]) {
          const ids = stored.filter((r) => decoder.decode(r.key!) === key).map((r) => idOf(r.value))
          assert.deepStrictEqual(ids, key === "A" ? [1, 3] : [2, 4])
        }
        yield* Scope.close(scope, Exit.void)
      }).pipe(noJitter)
  )

  it.effect("a record that cannot be delivered is dead-lettered on its own, the others delivered", () =>
    Effect.gen(function* () {
      const { scope, publisher, fake } = yield* scoped()
      const receipts = yield* publisher.publishRecords([
        record("one", "a", "1"),
        record("small", "s", "".padEnd(3000, "x")),
        record("one", "a", "2")
      ])
      assert.deepStrictEqual(
        receipts.map((r) => r._tag),
        ["Delivered", "DeadLettered", "Delivered"]
      )
      assert.strictEqual((yield* fake.records("small.dlt")).length, 1)
      yield* Scope.close(scope, Exit.void)
    })
  )

  // Regression (real broker, kafkajs driver): kafkajs fails a whole request when one partition's batch is too
  // large, and cannot say which partitions it wrote; each record of the request was dead-lettered with the size
  // error, the ones written on other partitions too (60 of 100 were in the topic). Through the Batcher (single
  // publishes) the same: the calls co-batched with the large one were dead-lettered.
  for (const via of ["publishAll", "publish + Batcher"] as const) {
    it.effect(`${via}: a request refused as too large, its outcomes unknown: only the large event dead-lettered`, () =>
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const { fake, producer } = yield* kafkaJsLike
        const publisherLayer = Publisher.layer({ batchSize: 10 })
        const context = yield* Layer.buildWithScope(
          (via === "publishAll" ? publisherLayer : publisherLayer.pipe(Layer.provide(Batcher.layer()))).pipe(
            Layer.provide(Layer.succeed(Producer, producer))
          ),
          scope
        )
        const publisher = Context.get(context, Publisher.Publisher)
        const input = Array.from({ length: 30 }, (_, i) =>
          i + 1 === 15 ? new Event({ id: 15, key: "k2".padEnd(1500, "-") }) : new Event({ id: i + 1, key: `k${i % 3}` })
        )
        const calls =
          via === "publishAll"
            ? publisher.publishAll(events, input)
            : Effect.forEach(input, (e) => publisher.publish(events, e), { concurrency: "unbounded" })
        const running = yield* Effect.forkChild(calls, { startImmediately: true })
        // the Batcher's linger, its resends, the dead letter: on the TestClock
        for (let i = 0; i < 20 && running.pollUnsafe() === undefined; i++) yield* TestClock.adjust("100 millis")
        const receipts = yield* Fiber.join(running)
        assert.deepStrictEqual(
          receipts.flatMap((r, i) => (r._tag === "DeadLettered" ? [i] : [])),
          [14]
        )
        const stored = (yield* fake.records("events")).map((r) => idOf(r.value))
        // every other event is in the topic; those of the refused request written before are there twice, marked
        assert.deepStrictEqual(
          [...new Set(stored)].sort((a, b) => a - b),
          input.map((e) => e.id).filter((id) => id !== 15)
        )
        const copies = stored.filter((id, i) => stored.indexOf(id) !== i)
        assert.isAbove(copies.length, 0)
        for (const id of copies) {
          const receipt = receipts[id - 1]!
          assert.isTrue(
            receipt._tag === "Delivered" && receipt.possibleDuplicate,
            `event ${id} written twice is marked`
          )
        }
        yield* Scope.close(scope, Exit.void)
      })
    )
  }

  it.effect(
    "deadLetterRetriable false: retries run out, the record fails Retriable (marked); a Fatal one is still dead-lettered",
    () =>
      Effect.gen(function* () {
        const { scope, publisher, fake } = yield* scoped({ retry: RetryPolicy.make({ maxAttempts: 1 }) })
        yield* fake.loseNextAnswers(1)
        const options = { deadLetterRetriable: false }
        const failed = failureOf(yield* Effect.exit(publisher.publishRecords([record("one", "a", "1")], options)))
        assert.deepStrictEqual(
          failed.failures.map((f) => [f.index, (f.error as { _tag: string })._tag]),
          [[0, "Retriable"]]
        )
        assert.isTrue((failed.failures[0]!.error as Retriable).possiblyDelivered)
        const poison = yield* publisher.publishRecords([record("small", "s", "".padEnd(3000, "x"))], options)
        assert.strictEqual(poison[0]?._tag, "DeadLettered")
        assert.strictEqual((yield* fake.records("one.dlt")).length, 0)
        assert.strictEqual((yield* fake.records("small.dlt")).length, 1)
        yield* Scope.close(scope, Exit.void)
      })
  )

  // Regression: after an earlier record of a key ran out of retries, a later record of that key was still
  // resent and could succeed, so the caller's resend of the earlier one landed after it (outbox relay).
  it.effect("deadLetterRetriable false: once a record of a key fails, its later records are not sent", () =>
    Effect.gen(function* () {
      const { scope, publisher, fake } = yield* scoped({ retry: RetryPolicy.make({ maxAttempts: 2 }) })
      yield* fake.failNext(2, unavailable) // the request, then the first record's one retry
      const fiber = yield* Effect.forkChild(
        publisher.publishRecords([record("one", "k", "1"), record("one", "k", "2")], { deadLetterRetriable: false }),
        { startImmediately: true }
      )
      yield* TestClock.adjust(Duration.seconds(10))
      const failed = failureOf(yield* Fiber.await(fiber))
      assert.deepStrictEqual(
        failed.failures.map((f) => [f.index, (f.error as { _tag: string })._tag]),
        [
          [0, "Retriable"],
          [1, "Retriable"]
        ]
      )
      assert.strictEqual(yield* fake.sendCount, 2)
      assert.deepStrictEqual(yield* fake.records("one"), [])
      yield* Scope.close(scope, Exit.void)
    }).pipe(noJitter)
  )

  it.effect("deadLetterRetriable false: a key that failed sends none of its records in the call's later requests", () =>
    Effect.gen(function* () {
      const { scope, publisher, fake } = yield* scoped({ retry: RetryPolicy.make({ maxAttempts: 2 }), batchSize: 1 })
      yield* fake.failNext(2, unavailable) // the first request, then its record's one retry
      const input = [record("one", "k", "1"), record("one", "other", "2"), record("one", "k", "3")]
      const fiber = yield* Effect.forkChild(publisher.publishRecords(input, { deadLetterRetriable: false }), {
        startImmediately: true
      })
      yield* TestClock.adjust(Duration.seconds(10))
      const failed = failureOf(yield* Fiber.await(fiber))
      assert.deepStrictEqual(
        failed.failures.map((f) => f.index),
        [0, 2]
      )
      assert.deepStrictEqual(
        (yield* fake.records("one")).map((r) => decoder.decode(r.value!)),
        ["2"]
      )
      yield* Scope.close(scope, Exit.void)
    }).pipe(noJitter)
  )

  it.effect("requests are pipelined: maxInFlightRequests of a call are out at once", () =>
    Effect.gen(function* () {
      for (const [maxInFlightRequests, expected] of [
        [5, 5],
        [2, 2],
        [1, 1]
      ] as const) {
        const { scope, publisher, fake } = yield* scoped({ maxInFlightRequests })
        yield* fake.setLatency("10 millis")
        const fiber = yield* Effect.forkChild(
          publisher.publishAll(
            events,
            Array.from({ length: 2500 }, (_, i) => event(i + 1))
          ),
          { startImmediately: true }
        )
        // the events are encoded and the requests sent within a few steps of the fibers, no time passing
        for (let i = 0; i < 100 && (yield* fake.producer.inFlight) < expected; i++) yield* Effect.yieldNow
        assert.strictEqual(yield* fake.producer.inFlight, expected, `maxInFlightRequests ${maxInFlightRequests}`)
        yield* TestClock.adjust("100 millis")
        const receipts = yield* Fiber.join(fiber)
        assert.strictEqual(receipts.length, 2500)
        assert.strictEqual(yield* fake.sendCount, 5)
        const ids = (yield* fake.records("events")).map((r) => idOf(r.value))
        assert.strictEqual(ids.length, 2500)
        yield* Scope.close(scope, Exit.void)
      }
    })
  )

  it.effect(
    "through a Batcher: a failed request takes the call's later requests back from its queue, and its records go first, in order per key",
    () =>
      Effect.gen(function* () {
        const batcher = { linger: "0 millis", maxInFlightBatches: 1, batchSize: 2 } as const
        const { scope, publisher, fake } = yield* scoped({ batchSize: 2 }, batcher)
        yield* fake.failNext(1, unavailable) // the first request
        const input = Array.from({ length: 6 }, (_, i) => event(i + 1))
        const fiber = yield* Effect.forkChild(publisher.publishAll(events, input), { startImmediately: true })
        yield* TestClock.adjust(Duration.seconds(10))
        const receipts = yield* Fiber.join(fiber)
        // the failed request's records retried (2 sends), the two taken back sent as first attempts
        assert.deepStrictEqual(
          receipts.map((r) => r.attempts),
          [2, 2, 1, 1, 1, 1]
        )
        const written = (yield* fake.records("events")).map((r) => [
          r.key === null ? "" : decoder.decode(r.key),
          idOf(r.value)
        ])
        for (const key of ["k0", "k1", "k2"]) {
          const ids = written.filter(([k]) => k === key).map(([, id]) => id)
          assert.deepStrictEqual(
            ids,
            [...ids].sort((a, b) => Number(a) - Number(b)),
            `order of ${key}`
          )
        }
        assert.strictEqual(written.length, 6)
        yield* Scope.close(scope, Exit.void)
      }).pipe(noJitter)
  )

  it.effect(
    "requests out at once: the first fails, the later ones are refused on its partitions, every record lands in order per key",
    () =>
      Effect.gen(function* () {
        const { scope, publisher, fake } = yield* scoped({ batchSize: 2 })
        yield* fake.setLatency("10 millis") // the three requests overlap
        yield* fake.failNext(1, unavailable) // the first request
        const input = Array.from({ length: 6 }, (_, i) => event(i + 1))
        const fiber = yield* Effect.forkChild(publisher.publishAll(events, input), { startImmediately: true })
        yield* TestClock.adjust(Duration.seconds(10))
        const receipts = yield* Fiber.join(fiber)
        assert.strictEqual(receipts[0]!.attempts, 2)
        assert.strictEqual(receipts[1]!.attempts, 2)
        const written = (yield* fake.records("events")).map((r) => [decoder.decode(r.key!), idOf(r.value)] as const)
        assert.strictEqual(written.length, 6)
        for (const key of ["k0", "k1", "k2"]) {
          const ids = written.filter(([k]) => k === key).map(([, id]) => id)
          assert.deepStrictEqual(
            ids,
            [...ids].sort((a, b) => a - b),
            `order of ${key}`
          )
        }
        yield* Scope.close(scope, Exit.void)
      }).pipe(noJitter)
  )

  it.effect("an interrupted caller does not abandon the accepted call: every record is written", () =>
    Effect.gen(function* () {
      const { scope, publisher, fake } = yield* scoped({ batchSize: 10 })
      yield* fake.setLatency("1 second")
      const caller = yield* Effect.forkChild(
        publisher.publishAll(
          events,
          Array.from({ length: 25 }, (_, i) => event(i + 1))
        ),
        { startImmediately: true }
      )
      yield* Effect.yieldNow
      yield* Fiber.interrupt(caller)
      assert.strictEqual(yield* publisher.inFlight, 25)
      yield* TestClock.adjust("3 seconds") // three requests, one after the other
      assert.strictEqual((yield* fake.records("events")).length, 25)
      assert.strictEqual(yield* publisher.inFlight, 0)
      yield* Scope.close(scope, Exit.void)
    })
  )

  it.effect("the delivery timeout ends requests the broker never answers: each record DeliveryTimeout, ambiguous", () =>
    Effect.gen(function* () {
      // no Batcher: each request runs in a fiber of its own, interrupted at the deadline (what the outbox
      // relay's broker outage met: the interruption was taken for the request's answer, a defect)
      const { scope, publisher, fake } = yield* scoped({
        batchSize: 10,
        deliveryTimeout: "5 seconds",
        deadLetter: false
      })
      yield* fake.pause
      const call = yield* Effect.forkChild(
        publisher.publishAll(
          events,
          Array.from({ length: 25 }, (_, i) => event(i + 1))
        ),
        { startImmediately: true }
      )
      yield* TestClock.adjust("5 seconds")
      const error = failureOf(yield* Fiber.await(call))
      assert.strictEqual(error._tag, "PublishAllFailed")
      if (error._tag !== "PublishAllFailed") return
      assert.strictEqual(error.failures.length, 25)
      for (const failure of error.failures) {
        const { _tag, reason, ambiguous } = failure.error as { _tag: string; reason: string; ambiguous: boolean }
        assert.deepStrictEqual([_tag, reason], ["Retriable", "DeliveryTimeout"])
        assert.isTrue(ambiguous, "sent and never answered: it may be in the topic")
      }
      yield* fake.resume
      yield* Scope.close(scope, Exit.void)
    })
  )

  it.effect("shutdown drains an accepted call, then refuses new ones: every event PublisherClosed, nothing sent", () =>
    Effect.gen(function* () {
      const { scope, publisher, fake } = yield* scoped({ batchSize: 10 })
      yield* fake.pause
      const accepted = yield* Effect.forkChild(
        publisher.publishAll(
          events,
          Array.from({ length: 30 }, (_, i) => event(i + 1))
        ),
        { startImmediately: true }
      )
      yield* Effect.yieldNow
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void), { startImmediately: true })
      yield* Effect.yieldNow
      assert.isUndefined(closing.pollUnsafe(), "closing waits for the accepted call")
      const refused = yield* Effect.exit(publisher.publishAll(events, [event(100), event(101)]))
      assert.isTrue(Exit.isFailure(refused))
      if (Exit.isFailure(refused)) {
        const error = (refused.cause.reasons[0] as { error: { failures: ReadonlyArray<{ error: { _tag: string } }> } })
          .error
        assert.deepStrictEqual(
          error.failures.map((f) => f.error._tag),
          ["PublisherClosed", "PublisherClosed"]
        )
      }
      yield* fake.resume
      yield* Fiber.join(closing)
      assert.strictEqual((yield* Fiber.join(accepted)).length, 30)
      assert.strictEqual((yield* fake.records("events")).length, 30)
    })
  )
})

describe("streams (issue 13.2)", () => {
  it.effect(
    "sink: backpressure, maxInFlightRequests arrays out and one waiting on a paused broker; then a summary",
    () =>
      Effect.gen(function* () {
        const { scope, context, fake } = yield* scoped()
        yield* fake.pause
        let pulled = 0
        const source = Stream.range(1, 5000).pipe(
          Stream.tap(() =>
            Effect.sync(() => {
              pulled++
            })
          ),
          Stream.map((n) => event(n)),
          Stream.rechunk(100)
        )
        const run = yield* Effect.forkChild(Stream.run(source, Publisher.sink(events)).pipe(Effect.provide(context)), {
          startImmediately: true
        })
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow
        // 5 requests out, one array in the queue, one being offered: the rest of the stream is not pulled
        assert.strictEqual(yield* fake.producer.inFlight, 5)
        assert.isAtMost(pulled, 700, "the paused broker holds the stream back")
        assert.strictEqual((yield* fake.records("events")).length, 0)
        yield* fake.resume
        const summary = yield* Fiber.join(run)
        assert.deepStrictEqual(summary, { delivered: 5000, possibleDuplicates: 0, deadLettered: 0 })
        assert.strictEqual(yield* fake.sendCount, 50)
        yield* Scope.close(scope, Exit.void)
      })
  )

  it.effect("publishStream: one outcome per event, in input order, a failed event does not stop the stream", () =>
    Effect.gen(function* () {
      const { scope, context, fake } = yield* scoped()
      const input = [...Array.from({ length: 9 }, (_, i) => event(i + 1, "k")), invalid, event(11, "k")]
      const outcomes = yield* Stream.fromIterable(input).pipe(
        Publisher.publishStream(events, { batchSize: 4 }),
        Stream.runCollect,
        Effect.provide(context)
      )
      assert.strictEqual(outcomes.length, 11)
      assert.deepStrictEqual(
        outcomes.map((o) => (Result.isSuccess(o) ? o.success._tag : o.failure._tag)),
        [...Array.from({ length: 9 }, () => "Delivered"), "Fatal", "Delivered"]
      )
      const offsets = outcomes.flatMap((o) =>
        Result.isSuccess(o) && o.success._tag === "Delivered" ? [Number(o.success.offset)] : []
      )
      assert.deepStrictEqual(
        offsets,
        Array.from({ length: 10 }, (_, i) => i)
      ) // one key: one partition, in order
      assert.strictEqual(yield* fake.sendCount, 3)
      yield* Scope.close(scope, Exit.void)
    })
  )

  it.effect("publishStream lingers: a trickle is sent linger after its first event", () =>
    Effect.gen(function* () {
      const { scope, context, fake } = yield* scoped()
      const source = Stream.fromIterable([event(1), event(2)]).pipe(Stream.concat(Stream.never))
      const run = yield* Effect.forkChild(
        source.pipe(Publisher.publishStream(events), Stream.take(2), Stream.runCollect, Effect.provide(context)),
        { startImmediately: true }
      )
      yield* TestClock.adjust(4)
      assert.strictEqual(yield* fake.sendCount, 0)
      yield* TestClock.adjust(1)
      assert.strictEqual((yield* Fiber.join(run)).length, 2)
      assert.strictEqual(yield* fake.sendCount, 1)
      yield* Scope.close(scope, Exit.void)
    })
  )

  it.effect(
    "shutdown drains the sink's requests out; the next array is refused: the sink fails with PublisherClosed",
    () =>
      Effect.gen(function* () {
        const { scope, context, fake } = yield* scoped()
        yield* fake.pause
        const source = Stream.range(1, 1000).pipe(
          Stream.rechunk(100),
          Stream.map((n) => event(n))
        )
        const run = yield* Effect.forkChild(Stream.run(source, Publisher.sink(events)).pipe(Effect.provide(context)), {
          startImmediately: true
        })
        for (let i = 0; i < 10; i++) yield* Effect.yieldNow
        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void), { startImmediately: true })
        yield* Effect.yieldNow
        yield* fake.resume
        yield* Fiber.join(closing)
        const exit = yield* Fiber.await(run)
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isFailure(exit)) {
          assert.strictEqual((exit.cause.reasons[0] as { error: { _tag: string } }).error._tag, "PublisherClosed")
        }
        // the 5 requests out when closing began are drained, nothing lost; no array is taken after
        const ids = (yield* fake.records("events")).map((r) => idOf(r.value))
        assert.deepStrictEqual(
          ids.sort((a, b) => a - b),
          Array.from({ length: 500 }, (_, i) => i + 1)
        )
      })
  )
})
