import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { Producer, type ProducerRecord } from "../../src/Producer.ts"
import { Retriable } from "../../src/PublishError.ts"
import * as FakeKafka from "../../src/testing/FakeKafka.ts"
import { expectedPartition } from "../contract/ProducerContract.ts"

const bytes = (s: string) => new TextEncoder().encode(s)
const rec = (topic: string, key: string | null, value = "v", extra: Partial<ProducerRecord> = {}): ProducerRecord => ({
  topic,
  key: key === null ? null : bytes(key),
  value: bytes(value),
  headers: {},
  ...extra
})

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (!reason) throw new Error(`expected a typed failure: ${exit.cause}`)
  return reason.error
}

const withFake = <A, E>(
  effect: Effect.Effect<A, E, Producer | FakeKafka.FakeKafka>,
  options: FakeKafka.Options = { topics: { t: { partitions: 4 } } }
) => Effect.provide(effect, FakeKafka.layer(options))

const unavailable = new Retriable({ reason: "BrokerUnavailable", ambiguous: false, message: "down" })

describe("FakeKafka", () => {
  it.effect("keys land where kafkajs's partitioner puts them; offsets are continuous per partition", () =>
    withFake(
      Effect.gen(function* () {
        const producer = yield* Producer
        const keys = Array.from({ length: 40 }, (_, i) => `key-${i}`)
        const metadata = yield* producer.send(keys.map((k) => rec("t", k)))
        metadata.forEach((m, i) => {
          assert.strictEqual(m.partition, expectedPartition(keys[i]!, 4))
        })
        const fake = yield* FakeKafka.FakeKafka
        for (let p = 0; p < 4; p++) {
          const offsets = (yield* fake.records("t", { partition: p })).map((r) => Number(r.offset))
          assert.deepStrictEqual(
            offsets,
            offsets.map((_, i) => i)
          )
        }
        assert.strictEqual(yield* fake.recordCount, 40)
      })
    )
  )

  it.effect("an explicit partition is honoured; one out of range is a Retriable UnknownTopicOrPartition", () =>
    withFake(
      Effect.gen(function* () {
        const producer = yield* Producer
        const [m] = yield* producer.send([rec("t", "k", "v", { partition: 3 })])
        assert.strictEqual(m!.partition, 3)
        const error = failureOf(yield* Effect.exit(producer.send([rec("t", "k", "v", { partition: 9 })])))
        assert.strictEqual(error._tag, "Retriable")
        assert.strictEqual(error.reason, "UnknownTopicOrPartition")
      })
    )
  )

  it.effect("timestamps come from the Clock unless the record has one", () =>
    withFake(
      Effect.gen(function* () {
        yield* TestClock.adjust(1234)
        const producer = yield* Producer
        const [a, b] = yield* producer.send([rec("t", "a"), rec("t", "b", "v", { timestamp: 42 })])
        assert.strictEqual(a!.timestamp, 1234)
        assert.strictEqual(b!.timestamp, 42)
      })
    )
  )

  it.effect("auto-creation: unknown topics get defaultPartitions; off: Fatal UnknownTopic", () =>
    Effect.gen(function* () {
      const created = yield* withFake(
        Effect.gen(function* () {
          yield* (yield* Producer).send([rec("fresh", "k")])
          return yield* (yield* FakeKafka.FakeKafka).topics
        }),
        { defaultPartitions: 2 }
      )
      assert.deepStrictEqual(created, ["fresh"])
      const error = yield* withFake(
        Effect.gen(function* () {
          return failureOf(yield* Effect.exit((yield* Producer).send([rec("fresh", "k")])))
        }),
        { autoCreateTopics: false }
      )
      assert.strictEqual(error.reason, "UnknownTopic")
    })
  )

  it.effect("Fatal errors: invalid topic names, unauthorised topics, records over max.message.bytes", () =>
    withFake(
      Effect.gen(function* () {
        const producer = yield* Producer
        for (const name of ["", ".", "..", "a".repeat(250), "has space", "slash/name"]) {
          const error = failureOf(yield* Effect.exit(producer.send([rec(name, "k")])))
          assert.strictEqual(error.reason, "InvalidTopic", JSON.stringify(name))
        }
        const denied = failureOf(yield* Effect.exit(producer.send([rec("secret", "k")])))
        assert.strictEqual(denied.reason, "TopicAuthorizationFailed")
        const big = failureOf(yield* Effect.exit(producer.send([rec("small", "k", "x".repeat(2000))])))
        assert.strictEqual(big.reason, "RecordTooLarge")
        assert.strictEqual(big._tag, "Fatal")
      }),
      { unauthorizedTopics: ["secret"], topics: { small: { partitions: 1, maxMessageBytes: 1024 } } }
    )
  )

  it.effect("a send is all-or-nothing: one bad record writes none of them", () =>
    withFake(
      Effect.gen(function* () {
        const producer = yield* Producer
        const fake = yield* FakeKafka.FakeKafka
        yield* Effect.exit(producer.send([rec("t", "a"), rec("bad topic", "b"), rec("t", "c")]))
        assert.strictEqual(yield* fake.recordCount, 0)
      })
    )
  )

  it.effect("failNext: the next n sends fail and write nothing; sendCount counts them", () =>
    withFake(
      Effect.gen(function* () {
        const producer = yield* Producer
        const fake = yield* FakeKafka.FakeKafka
        yield* fake.failNext(2, unavailable)
        assert.deepStrictEqual(failureOf(yield* Effect.exit(producer.send([rec("t", "a")]))), unavailable)
        assert.deepStrictEqual(failureOf(yield* Effect.exit(producer.send([rec("t", "a")]))), unavailable)
        yield* producer.send([rec("t", "a")])
        assert.strictEqual(yield* fake.sendCount, 3)
        assert.strictEqual(yield* fake.recordCount, 1)
      })
    )
  )

  it.effect("pause: sends wait until resume; inFlight counts them", () =>
    withFake(
      Effect.gen(function* () {
        const producer = yield* Producer
        const fake = yield* FakeKafka.FakeKafka
        yield* fake.pause
        const fiber = yield* Effect.forkChild(producer.send([rec("t", "a")]))
        yield* TestClock.adjust("1 hour")
        assert.isUndefined(fiber.pollUnsafe())
        assert.strictEqual(yield* producer.inFlight, 1)
        assert.strictEqual(yield* fake.recordCount, 0)
        yield* fake.resume
        yield* Fiber.join(fiber)
        assert.strictEqual(yield* producer.inFlight, 0)
        assert.strictEqual(yield* fake.recordCount, 1)
      })
    )
  )

  it.effect("latency: the answer comes after the set delay", () =>
    withFake(
      Effect.gen(function* () {
        const producer = yield* Producer
        const fake = yield* FakeKafka.FakeKafka
        yield* fake.setLatency("250 millis")
        const fiber = yield* Effect.forkChild(producer.send([rec("t", "a")]))
        yield* TestClock.adjust(249)
        assert.isUndefined(fiber.pollUnsafe())
        yield* TestClock.adjust(1)
        const [m] = yield* Fiber.join(fiber)
        assert.strictEqual(m!.timestamp, 250)
      })
    )
  )

  it.effect("a lost answer: written, then an ambiguous RequestTimeout; a resend duplicates", () =>
    withFake(
      Effect.gen(function* () {
        const producer = yield* Producer
        const fake = yield* FakeKafka.FakeKafka
        yield* fake.loseNextAnswers(1)
        const error = failureOf(yield* Effect.exit(producer.send([rec("t", "a")])))
        assert.strictEqual(error._tag, "Retriable")
        if (error._tag === "Retriable") {
          assert.strictEqual(error.reason, "RequestTimeout")
          assert.isTrue(error.ambiguous)
        }
        assert.strictEqual(yield* fake.recordCount, 1)
        yield* producer.send([rec("t", "a")])
        assert.strictEqual(yield* fake.recordCount, 2)
      })
    )
  )

  it.effect("records read back with header values as bytes, like a consumer sees them", () =>
    withFake(
      Effect.gen(function* () {
        yield* (yield* Producer).send([rec("t", "a", "v", { headers: { s: "text", b: new Uint8Array([1, 2]) } })])
        const [r] = yield* (yield* FakeKafka.FakeKafka).records("t")
        assert.deepStrictEqual([...r!.headers.s!], [...bytes("text")])
        assert.deepStrictEqual([...r!.headers.b!], [1, 2])
      })
    )
  )

  it.effect("reset clears topics, counters and faults", () =>
    withFake(
      Effect.gen(function* () {
        const producer = yield* Producer
        const fake = yield* FakeKafka.FakeKafka
        yield* producer.send([rec("t", "a")])
        yield* fake.failNext(5, unavailable)
        yield* fake.reset
        assert.strictEqual(yield* fake.recordCount, 0)
        assert.strictEqual(yield* fake.sendCount, 0)
        yield* producer.send([rec("t", "a")])
        assert.strictEqual((yield* fake.records("t")).length, 1)
      })
    )
  )
})
