import { createRequire } from "node:module"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { FakeKafka } from "effect-kafka-publisher/testing"
import { Producer, type ProducerRecord } from "../../src/Producer.ts"
import { Fatal, type PublishError, Retriable } from "../../src/PublishError.ts"
import { expectedPartition } from "../contract/ProducerContract.ts"

const bytes = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array | null | undefined) => (b == null ? null : new TextDecoder().decode(b))

const rec = (topic: string, key: string | null, value = "v", extra: Partial<ProducerRecord> = {}): ProducerRecord => ({
  topic,
  key: key === null ? null : bytes(key),
  value: bytes(value),
  headers: {},
  ...extra
})

/** A fresh fake (4-partition topic "t" unless told otherwise), with its Producer and FakeKafka services. */
const withFake = <A, E>(
  effect: Effect.Effect<A, E, Producer | FakeKafka.FakeKafka>,
  options: FakeKafka.Options = { topics: { t: { partitions: 4 } } }
) => Effect.provide(effect, FakeKafka.layer(options))

/** The typed failure of a send that must fail. */
const sendFailure = (records: ReadonlyArray<ProducerRecord>) =>
  Effect.gen(function* () {
    return yield* Effect.flip((yield* Producer).send(records))
  })

const send = (records: ReadonlyArray<ProducerRecord>) =>
  Effect.gen(function* () {
    return yield* (yield* Producer).send(records)
  })

const assertReason = (error: PublishError, tag: PublishError["_tag"], reason: string, ambiguous?: boolean) => {
  assert.strictEqual(error._tag, tag)
  assert.strictEqual(error.reason, reason)
  if (ambiguous !== undefined && error._tag === "Retriable") assert.strictEqual(error.ambiguous, ambiguous)
}

// kafkajs's record batch encoder (CommonJS internals, untyped): the bytes the driver sends for one partition
const require = createRequire(import.meta.url)
const { RecordBatch } = require("kafkajs/src/protocol/recordBatch/v0/index.js") as {
  RecordBatch: (batch: object) => Promise<{ size(): number }>
}
const Record = require("kafkajs/src/protocol/recordBatch/record/v0/index.js") as (record: object) => object

/** The size of the record batch kafkajs 2.2.4 writes for these records (one partition, no compression). */
const kafkajsBatchSize = async (records: ReadonlyArray<ProducerRecord>, now: number) => {
  // as kafkajs's produce request does: the batch starts at its first (smallest) timestamp
  const timestamps = records.map((r) => r.timestamp ?? now)
  const first = Math.min(...timestamps)
  const encoded = await RecordBatch({
    firstTimestamp: first,
    maxTimestamp: Math.max(...timestamps),
    lastOffsetDelta: records.length - 1,
    records: records.map((r, i) =>
      Record({
        offsetDelta: i,
        timestampDelta: timestamps[i]! - first,
        key: r.key === null ? null : Buffer.from(r.key),
        value: r.value === null ? null : Buffer.from(r.value),
        headers: Object.fromEntries(
          Object.entries(r.headers).map(([k, v]) => [k, typeof v === "string" ? v : Buffer.from(v)])
        )
      })
    )
  })
  return encoded.size()
}

const unavailable = new Retriable({ reason: "BrokerUnavailable", ambiguous: false, message: "down" })

describe("FakeKafka partitioning", () => {
  it.effect(
    "a keyed record lands where kafkajs's default partitioner puts it, for any partition count (the fake imports no kafkajs)",
    () =>
      Effect.gen(function* () {
        for (const partitions of [1, 2, 3, 6, 12, 50]) {
          const keys = Array.from({ length: 200 }, (_, i) => `key-${i}-${"x".repeat(i % 9)}`)
          const metadata = yield* withFake(send(keys.map((k) => rec("t", k))), { topics: { t: { partitions } } })
          metadata.forEach((m, i) => {
            assert.strictEqual(m.partition, expectedPartition(keys[i]!, partitions), `${keys[i]} of ${partitions}`)
          })
        }
      })
  )

  it.effect("keys land where the Java client puts them (murmur2 values from kafka-clients 3.9.2)", () =>
    Effect.gen(function* () {
      // Utils.toPositive(Utils.murmur2(key.getBytes(UTF_8))) % n, run on the kafka-clients 3.9.2 jar
      const java: ReadonlyArray<readonly [string, number, number, number]> = [
        ["21", 0, 0, 0],
        ["foobar", 0, 0, 6],
        ["abc", 0, 3, 3],
        ["user-1", 2, 2, 8],
        ["order-42", 0, 0, 0],
        ["a-little-bit-long-string", 2, 2, 8],
        ["", 0, 3, 9],
        ["k", 2, 2, 8],
        ["été", 1, 1, 1]
      ]
      for (const [index, partitions] of [3, 6, 12].entries()) {
        const metadata = yield* withFake(send(java.map(([key]) => rec("t", key))), { topics: { t: { partitions } } })
        assert.deepStrictEqual(
          metadata.map((m) => m.partition),
          java.map((row) => row[index + 1]),
          `${partitions} partitions`
        )
      }
    })
  )

  it.effect("a key keeps its partition across sends of many keys", () =>
    withFake(
      Effect.gen(function* () {
        const keys = Array.from({ length: 12_000 }, (_, i) => `k${i}`)
        yield* send(keys.map((k) => rec("t", k)))
        const again = yield* send(keys.slice(0, 100).map((k) => rec("t", k)))
        assert.deepStrictEqual(
          again.map((m) => m.partition),
          keys.slice(0, 100).map((k) => expectedPartition(k, 6))
        )
      }),
      { topics: { t: { partitions: 6 } } }
    )
  )

  it.effect("records without a key go round-robin over the partitions, as kafkajs does", () =>
    withFake(
      Effect.gen(function* () {
        const metadata = yield* send(Array.from({ length: 12 }, () => rec("t", null)))
        const first = metadata[0]!.partition
        assert.deepStrictEqual(
          metadata.map((m) => m.partition),
          metadata.map((_, i) => (first + i) % 4)
        )
        const [next] = yield* send([rec("t", null)])
        assert.strictEqual(next!.partition, (first + 12) % 4, "the round-robin continues across sends")
      })
    )
  )

  it.effect("an explicit partition is honoured, whatever the key", () =>
    withFake(
      Effect.gen(function* () {
        const metadata = yield* send([0, 3, 1, 3].map((partition) => rec("t", "same-key", "v", { partition })))
        assert.deepStrictEqual(
          metadata.map((m) => m.partition),
          [0, 3, 1, 3]
        )
      })
    )
  )
})

describe("FakeKafka log", () => {
  it.effect("offsets start at 0 and are continuous per partition, across sends; answers are in input order", () =>
    withFake(
      Effect.gen(function* () {
        const fake = yield* FakeKafka.FakeKafka
        const values = Array.from({ length: 30 }, (_, i) => `v${i}`)
        const metadata = [
          ...(yield* send(values.slice(0, 10).map((v, i) => rec("t", `k${i % 7}`, v)))),
          ...(yield* send(values.slice(10).map((v, i) => rec("t", `k${i % 7}`, v))))
        ]
        const stored = yield* fake.records("t")
        assert.strictEqual(stored.length, 30)
        for (let p = 0; p < 4; p++) {
          const offsets = (yield* fake.records("t", { partition: p })).map((r) => r.offset)
          assert.deepStrictEqual(
            offsets,
            offsets.map((_, i) => String(i))
          )
        }
        // ordered by partition, then offset; every answer points at its own record
        assert.deepStrictEqual(
          stored.map((r) => [r.partition, Number(r.offset)]),
          [...stored].map((r) => [r.partition, Number(r.offset)]).sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!)
        )
        metadata.forEach((m, i) => {
          assert.strictEqual(m.topic, "t")
          const r = stored.find((s) => s.partition === m.partition && s.offset === m.offset)
          assert.strictEqual(text(r?.value), values[i])
        })
        assert.strictEqual(yield* fake.recordCount, 30)
      })
    )
  )

  it.effect("key, value, headers round-trip; header strings read back as UTF-8 bytes; null key and value kept", () =>
    withFake(
      Effect.gen(function* () {
        const fake = yield* FakeKafka.FakeKafka
        const headers = { eventType: "OrderPlaced", unicode: "zürich ✓", binary: new Uint8Array([0, 255, 7]) }
        yield* send([rec("t", "k1", "payload", { headers }), { topic: "t", key: null, value: null, headers: {} }])
        const [a, b] = yield* fake
          .records("t")
          .pipe(Effect.map((rs) => [...rs].sort((x, y) => x.timestamp - y.timestamp)))
        const keyed = a!.key === null ? b! : a!
        const tombstone = a!.key === null ? a! : b!
        assert.strictEqual(text(keyed.key), "k1")
        assert.strictEqual(text(keyed.value), "payload")
        assert.deepStrictEqual(Object.keys(keyed.headers), ["eventType", "unicode", "binary"])
        assert.strictEqual(text(keyed.headers.eventType), "OrderPlaced")
        assert.deepStrictEqual([...keyed.headers.unicode!], [...Buffer.from("zürich ✓", "utf8")])
        assert.deepStrictEqual([...keyed.headers.binary!], [0, 255, 7])
        assert.isNull(tombstone.key)
        assert.isNull(tombstone.value)
        assert.deepStrictEqual(tombstone.headers, {})
      })
    )
  )

  it.effect("the timestamp is the Clock's time at the send unless the record has one", () =>
    withFake(
      Effect.gen(function* () {
        const fake = yield* FakeKafka.FakeKafka
        yield* TestClock.adjust(1234)
        const [a, b] = yield* send([
          rec("t", "a", "v", { partition: 0 }),
          rec("t", "b", "v", { partition: 0, timestamp: 42 })
        ])
        assert.strictEqual(a!.timestamp, 1234)
        assert.strictEqual(b!.timestamp, 42)
        assert.deepStrictEqual(
          (yield* fake.records("t", { partition: 0 })).map((r) => r.timestamp),
          [1234, 42]
        )
      })
    )
  )

  it.effect(
    "topics: the initial ones, then auto-created ones with defaultPartitions; records of unknown topics: none",
    () =>
      withFake(
        Effect.gen(function* () {
          const fake = yield* FakeKafka.FakeKafka
          const metadata = yield* send(Array.from({ length: 8 }, () => rec("fresh", null)))
          assert.deepStrictEqual(yield* fake.topics, ["orders", "fresh"])
          assert.deepStrictEqual([...new Set(metadata.map((m) => m.partition))].sort(), [0, 1])
          assert.deepStrictEqual(yield* fake.records("nope"), [])
          assert.deepStrictEqual(yield* fake.records("fresh", { partition: 7 }), [])
        }),
        { topics: { orders: { partitions: 3 } }, defaultPartitions: 2 }
      )
  )

  it.effect("auto-created topics get 1 partition by default, like a broker's num.partitions", () =>
    withFake(
      Effect.gen(function* () {
        const metadata = yield* send(Array.from({ length: 5 }, (_, i) => rec("auto", `k${i}`)))
        assert.deepStrictEqual(
          metadata.map((m) => m.partition),
          [0, 0, 0, 0, 0]
        )
      }),
      {}
    )
  )

  it.effect("createTopic: a new topic, an existing one left as it is, Fatal errors for a bad name or count", () =>
    withFake(
      Effect.gen(function* () {
        const fake = yield* FakeKafka.FakeKafka
        yield* fake.createTopic("made", { partitions: 2 })
        yield* send([rec("t", "a")])
        yield* fake.createTopic("t", { partitions: 9 })
        assert.deepStrictEqual(yield* fake.topics, ["t", "made"])
        assert.strictEqual((yield* fake.records("t")).length, 1)
        assertReason(yield* Effect.flip(fake.createTopic("bad name", { partitions: 1 })), "Fatal", "InvalidTopic")
        assertReason(yield* Effect.flip(fake.createTopic("zero", { partitions: 0 })), "Fatal", "InvalidConfig")
        const error = yield* sendFailure([rec("made", "k", "v", { partition: 2 })])
        assertReason(error, "Retriable", "UnknownTopicOrPartition")
      }),
      { topics: { t: { partitions: 4 } }, autoCreateTopics: false }
    )
  )

  it.effect("make: an invalid initial topic is a defect (a bug in the test)", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(FakeKafka.make({ topics: { "no spaces": { partitions: 1 } } }))
      assert.isTrue(Exit.hasDies(exit))
    })
  )

  it.effect("layer: Producer and FakeKafka share one broker; make gives the same Producer as `producer`", () =>
    Effect.gen(function* () {
      yield* withFake(
        Effect.gen(function* () {
          yield* send([rec("t", "a")])
          assert.strictEqual(yield* (yield* FakeKafka.FakeKafka).recordCount, 1)
        })
      )
      const fake = yield* FakeKafka.make()
      yield* fake.producer.send([rec("x", "a")])
      assert.deepStrictEqual(yield* fake.topics, ["x"])
    })
  )
})

describe("FakeKafka errors", () => {
  it.effect("record size: the limit falls on the byte where a Kafka 3.9.2 broker rejects the batch", () =>
    withFake(
      Effect.gen(function* () {
        const fake = yield* FakeKafka.FakeKafka
        // measured with kafkajs 2.2.4 on Kafka 3.9.2, max.message.bytes 1024: key "k", no headers: a 953-byte
        // value is written, 954 bytes is MESSAGE_TOO_LARGE; with headers h1="abc", h2=4 bytes: 938 and 939
        const headers = { h1: "abc", h2: new Uint8Array(4) }
        yield* send([rec("small", "k", "x".repeat(953))])
        yield* send([rec("small", "k", "x".repeat(938), { headers })])
        const tooLarge = yield* sendFailure([rec("small", "k", "x".repeat(954))])
        assertReason(tooLarge, "Fatal", "RecordTooLarge")
        assert.strictEqual(tooLarge.topic, "small")
        assert.strictEqual(tooLarge.partition, 0)
        assertReason(yield* sendFailure([rec("small", "k", "x".repeat(939), { headers })]), "Fatal", "RecordTooLarge")
        assert.strictEqual((yield* fake.records("small")).length, 2)
      }),
      { topics: { small: { partitions: 1, maxMessageBytes: 1024 } } }
    )
  )

  it.effect("the default limit is Kafka's 1048588 bytes: a 1 MiB value does not fit, 1048516 bytes do", () =>
    withFake(
      Effect.gen(function* () {
        // 61 bytes of batch header + 11 of record framing (length, attributes, deltas, key, value length, headers)
        yield* send([{ topic: "t", key: null, value: new Uint8Array(1_048_516), headers: {} }])
        const error = yield* sendFailure([{ topic: "t", key: null, value: new Uint8Array(1_048_517), headers: {} }])
        assertReason(error, "Fatal", "RecordTooLarge")
        assertReason(
          yield* sendFailure([{ topic: "t", key: null, value: new Uint8Array(1024 * 1024), headers: {} }]),
          "Fatal",
          "RecordTooLarge"
        )
      }),
      { topics: { t: { partitions: 1 } } }
    )
  )

  it.effect("a batch's size is what kafkajs's own record-batch encoder writes, byte for byte", () =>
    Effect.gen(function* () {
      const now = 1_700_000_000_000
      const batches: ReadonlyArray<ReadonlyArray<ProducerRecord>> = [
        [rec("t", "k", "v")],
        [{ topic: "t", key: null, value: null, headers: {} }],
        [rec("t", "é", "x".repeat(63), { headers: { a: "ü", ключ: new Uint8Array(64) } })],
        [rec("t", "k", "x".repeat(8191)), rec("t", "k", "x".repeat(8192), { timestamp: now - 5 })],
        Array.from({ length: 70 }, (_, i) => rec("t", `key-${i}`, "y".repeat(i * 3), { timestamp: now + i * 1000 })),
        [rec("t", "old", "v", { timestamp: now - 90 * 24 * 3600 * 1000 }), rec("t", "new", "v")],
        [rec("t", "k", "v", { headers: Object.fromEntries(Array.from({ length: 70 }, (_, i) => [`h${i}`, `${i}`])) })]
      ]
      for (const [index, records] of batches.entries()) {
        const size = yield* Effect.promise(() => kafkajsBatchSize(records, now))
        const limit = (maxMessageBytes: number) =>
          withFake(
            Effect.gen(function* () {
              yield* TestClock.setTime(now)
              return yield* Effect.exit(send(records.map((r) => ({ ...r, partition: 0 }))))
            }),
            { topics: { t: { partitions: 1, maxMessageBytes } } }
          )
        assert.isTrue(Exit.isSuccess(yield* limit(size)), `batch ${index} of ${size} bytes fits ${size}`)
        assert.isTrue(Exit.isFailure(yield* limit(size - 1)), `batch ${index} of ${size} bytes exceeds ${size - 1}`)
      }
    })
  )

  it.effect("the limit is per batch: small records that together exceed it fail, as kafkajs sends one batch", () =>
    withFake(
      Effect.gen(function* () {
        const fake = yield* FakeKafka.FakeKafka
        // measured on Kafka 3.9.2: 20 records of 100 bytes to one partition, max.message.bytes 1024
        const error = yield* sendFailure(Array.from({ length: 20 }, (_, i) => rec("small", `k${i}`, "x".repeat(100))))
        assertReason(error, "Fatal", "RecordTooLarge")
        assert.strictEqual(yield* fake.recordCount, 0)
        // the same records one send each are fine
        for (let i = 0; i < 20; i++) yield* send([rec("small", `k${i}`, "x".repeat(100))])
        assert.strictEqual(yield* fake.recordCount, 20)
      }),
      { topics: { small: { partitions: 1, maxMessageBytes: 1024 } } }
    )
  )

  it.effect("an oversize batch fails the send, but the send's other partitions are written, as on a broker", () =>
    withFake(
      Effect.gen(function* () {
        const fake = yield* FakeKafka.FakeKafka
        // measured on Kafka 3.9.2: partition 0 got its record, the send failed with MESSAGE_TOO_LARGE
        const error = yield* sendFailure([
          rec("two", null, "x".repeat(10), { partition: 0 }),
          rec("two", null, "x".repeat(2000), { partition: 1 })
        ])
        assertReason(error, "Fatal", "RecordTooLarge")
        assert.strictEqual(error.partition, 1)
        assert.deepStrictEqual(
          (yield* fake.records("two")).map((r) => [r.partition, r.offset]),
          [[0, "0"]]
        )
      }),
      { topics: { two: { partitions: 2, maxMessageBytes: 1024 } } }
    )
  )

  it.effect("invalid topic names are Fatal InvalidTopic (Kafka's rules), 249 legal characters are fine", () =>
    withFake(
      Effect.gen(function* () {
        const fake = yield* FakeKafka.FakeKafka
        for (const name of ["", ".", "..", "a".repeat(250), "has space", "slash/name", "ümlaut", "tab\t", "colon:x"]) {
          const error = yield* sendFailure([rec(name, "k")])
          assertReason(error, "Fatal", "InvalidTopic")
          assert.strictEqual(error.topic, name)
        }
        yield* send([rec("a".repeat(249), "k"), rec("Mixed_case-1.2", "k"), rec("...", "k")])
        assert.strictEqual(yield* fake.recordCount, 3)
      }),
      {}
    )
  )

  it.effect("an unknown topic with auto-creation off is Fatal UnknownTopic; it is not created", () =>
    withFake(
      Effect.gen(function* () {
        const fake = yield* FakeKafka.FakeKafka
        const error = yield* sendFailure([rec("missing", "k")])
        assertReason(error, "Fatal", "UnknownTopic")
        assert.strictEqual(error.topic, "missing")
        assert.deepStrictEqual(yield* fake.topics, ["t"])
        yield* fake.createTopic("missing", { partitions: 1 })
        yield* send([rec("missing", "k")])
      }),
      { topics: { t: { partitions: 1 } }, autoCreateTopics: false }
    )
  )

  it.effect("unauthorised topics (by name or predicate, existing or not) are Fatal TopicAuthorizationFailed", () =>
    Effect.gen(function* () {
      const byName = yield* withFake(sendFailure([rec("secret", "k")]), {
        topics: { secret: { partitions: 1 } },
        unauthorizedTopics: ["secret"]
      })
      assertReason(byName, "Fatal", "TopicAuthorizationFailed")
      assert.strictEqual(byName.topic, "secret")
      const byPredicate = yield* withFake(sendFailure([rec("internal.audit", "k")]), {
        unauthorizedTopics: (topic) => topic.startsWith("internal.")
      })
      assertReason(byPredicate, "Fatal", "TopicAuthorizationFailed")
    })
  )

  it.effect("a partition out of range is Retriable UnknownTopicOrPartition, not ambiguous; nothing is written", () =>
    withFake(
      Effect.gen(function* () {
        const fake = yield* FakeKafka.FakeKafka
        for (const partition of [4, 9, -1, 1.5]) {
          const error = yield* sendFailure([rec("t", "k", "v", { partition })])
          assertReason(error, "Retriable", "UnknownTopicOrPartition", false)
          assert.strictEqual(error.partition, partition)
        }
        assert.strictEqual(yield* fake.recordCount, 0)
      })
    )
  )

  it.effect("metadata errors fail the whole send: nothing written, later offsets unaffected", () =>
    withFake(
      Effect.gen(function* () {
        const fake = yield* FakeKafka.FakeKafka
        const bad: ReadonlyArray<ProducerRecord> = [rec("bad topic", "b"), rec("missing", "b"), rec("secret", "b")]
        for (const record of bad) {
          const error = yield* sendFailure([rec("t", "a", "v", { partition: 0 }), record, rec("t", "c")])
          assert.isTrue(error instanceof Fatal || error instanceof Retriable)
        }
        assert.strictEqual(yield* fake.recordCount, 0)
        const [m] = yield* send([rec("t", "a", "v", { partition: 0 })])
        assert.strictEqual(m!.offset, "0")
      }),
      {
        topics: { t: { partitions: 4 }, secret: { partitions: 1 } },
        autoCreateTopics: false,
        unauthorizedTopics: ["secret"]
      }
    )
  )

  it.effect("issue 18.7: a missing partition is not written, the send's other partitions are (as kafkajs does)", () =>
    withFake(
      Effect.gen(function* () {
        const fake = yield* FakeKafka.FakeKafka
        const error = yield* sendFailure([
          rec("t", "a", "v0", { partition: 0 }),
          rec("t", "b", "v7", { partition: 7 }),
          rec("t", "c", "v1", { partition: 1 })
        ])
        assertReason(error, "Retriable", "UnknownTopicOrPartition", true)
        assert.strictEqual(error.partition, 7)
        assert.deepStrictEqual(
          (yield* fake.records("t")).map((r) => [r.partition, r.offset]),
          [
            [0, "0"],
            [1, "0"]
          ]
        )
        assert.deepStrictEqual(error.outcomes, [
          { topic: "t", partition: 0, offset: "0", timestamp: 0 },
          "notWritten",
          { topic: "t", partition: 1, offset: "0", timestamp: 0 }
        ])
      }),
      { topics: { t: { partitions: 4 } } }
    )
  )

  it.effect("issue 18.2 (fake): RecordTooLarge on one partition: exact outcomes, the others written", () =>
    withFake(
      Effect.gen(function* () {
        const fake = yield* FakeKafka.FakeKafka
        const error = yield* sendFailure([
          rec("two", null, "small", { partition: 0 }),
          rec("two", null, "x".repeat(2000), { partition: 1 }),
          rec("two", null, "small too", { partition: 0 })
        ])
        assertReason(error, "Fatal", "RecordTooLarge")
        assert.deepStrictEqual(error.outcomes, [
          { topic: "two", partition: 0, offset: "0", timestamp: 0 },
          "notWritten",
          { topic: "two", partition: 0, offset: "1", timestamp: 0 }
        ])
        assert.strictEqual(yield* fake.recordCount, 2)
        // one partition only: the error applies to every record alike, no outcomes
        const single = yield* sendFailure([rec("two", null, "x".repeat(2000), { partition: 1 })])
        assert.isUndefined(single.outcomes)
      }),
      { topics: { two: { partitions: 2, maxMessageBytes: 1024 } } }
    )
  )

  it.effect("a send to several topics answers per record, in input order", () =>
    withFake(
      Effect.gen(function* () {
        const metadata = yield* send([rec("a", null), rec("b", null), rec("a", null), rec("b", null), rec("a", null)])
        assert.deepStrictEqual(
          metadata.map((m) => `${m.topic}/${m.offset}`),
          ["a/0", "b/0", "a/1", "b/1", "a/2"]
        )
      }),
      {}
    )
  )
})

describe("FakeKafka faults", () => {
  it.effect("failNext: the next n sends fail with the error and write nothing; sendCount counts every attempt", () =>
    withFake(
      Effect.gen(function* () {
        const fake = yield* FakeKafka.FakeKafka
        yield* fake.failNext(2, unavailable)
        assert.strictEqual(yield* sendFailure([rec("t", "a")]), unavailable)
        assert.strictEqual(yield* sendFailure([rec("t", "a")]), unavailable)
        yield* send([rec("t", "a")])
        assert.strictEqual(yield* fake.sendCount, 3)
        assert.strictEqual(yield* fake.recordCount, 1)
      })
    )
  )

  it.effect("failNext with a function builds the error from the records; queued faults apply in order", () =>
    withFake(
      Effect.gen(function* () {
        const fake = yield* FakeKafka.FakeKafka
        yield* fake.failNext(
          1,
          (records) => new Fatal({ reason: "InvalidRecord", message: `${records.length} records` })
        )
        yield* fake.failNext(1, unavailable)
        const first = yield* sendFailure([rec("t", "a"), rec("t", "b")])
        assertReason(first, "Fatal", "InvalidRecord")
        assert.strictEqual(first.message, "2 records")
        assert.strictEqual(yield* sendFailure([rec("t", "a")]), unavailable)
        yield* send([rec("t", "a")])
      })
    )
  )

  it.effect("pause: sends wait, counted by inFlight, until resume; then they are written in order", () =>
    withFake(
      Effect.gen(function* () {
        const producer = yield* Producer
        const fake = yield* FakeKafka.FakeKafka
        yield* fake.pause
        const first = yield* Effect.forkChild(producer.send([rec("t", "a", "1", { partition: 0 })]))
        const second = yield* Effect.forkChild(producer.send([rec("t", "a", "2", { partition: 0 })]))
        yield* TestClock.adjust("1 hour")
        assert.isUndefined(first.pollUnsafe())
        assert.isUndefined(second.pollUnsafe())
        assert.strictEqual(yield* producer.inFlight, 2)
        assert.strictEqual(yield* fake.sendCount, 2)
        assert.strictEqual(yield* fake.recordCount, 0)
        yield* fake.resume
        const [a] = yield* Fiber.join(first)
        const [b] = yield* Fiber.join(second)
        assert.deepStrictEqual([a!.offset, b!.offset], ["0", "1"])
        assert.strictEqual(yield* producer.inFlight, 0)
        assert.strictEqual(yield* fake.recordCount, 2)
      })
    )
  )

  it.effect("an interrupted paused send writes nothing and leaves inFlight", () =>
    withFake(
      Effect.gen(function* () {
        const producer = yield* Producer
        const fake = yield* FakeKafka.FakeKafka
        yield* fake.pause
        const fiber = yield* Effect.forkChild(producer.send([rec("t", "a")]))
        yield* Effect.yieldNow
        assert.strictEqual(yield* producer.inFlight, 1)
        yield* Fiber.interrupt(fiber)
        assert.strictEqual(yield* producer.inFlight, 0)
        yield* fake.resume
        assert.strictEqual(yield* fake.recordCount, 0)
      })
    )
  )

  it.effect("latency: the answer comes after the set delay (TestClock), stamped with the send's start time", () =>
    withFake(
      Effect.gen(function* () {
        const producer = yield* Producer
        const fake = yield* FakeKafka.FakeKafka
        yield* fake.setLatency("250 millis")
        const fiber = yield* Effect.forkChild(producer.send([rec("t", "a")]))
        yield* TestClock.adjust(249)
        assert.isUndefined(fiber.pollUnsafe())
        assert.strictEqual(yield* producer.inFlight, 1)
        assert.strictEqual(yield* fake.recordCount, 0)
        yield* TestClock.adjust(1)
        const [m] = yield* Fiber.join(fiber)
        assert.strictEqual(m!.timestamp, 0, "CreateTime: when the driver stamped the record")
        assert.strictEqual(yield* producer.inFlight, 0)
        yield* fake.setLatency(0)
        yield* send([rec("t", "b")])
      })
    )
  )

  it.effect("a pause during the latency holds the answer until resume", () =>
    withFake(
      Effect.gen(function* () {
        const producer = yield* Producer
        const fake = yield* FakeKafka.FakeKafka
        yield* fake.setLatency("1 second")
        const fiber = yield* Effect.forkChild(producer.send([rec("t", "a")]))
        yield* TestClock.adjust(500)
        yield* fake.pause
        yield* TestClock.adjust("1 minute")
        assert.isUndefined(fiber.pollUnsafe())
        yield* fake.resume
        yield* Fiber.join(fiber)
        assert.strictEqual(yield* fake.recordCount, 1)
      })
    )
  )

  it.effect("a lost answer: written, then a Retriable ambiguous RequestTimeout; a resend duplicates", () =>
    withFake(
      Effect.gen(function* () {
        const fake = yield* FakeKafka.FakeKafka
        yield* fake.loseNextAnswers(1)
        const record = rec("t", "a", "once")
        const error = yield* sendFailure([record])
        assertReason(error, "Retriable", "RequestTimeout", true)
        assert.strictEqual(yield* fake.recordCount, 1)
        const [m] = yield* send([record])
        assert.strictEqual(m!.offset, "1")
        assert.deepStrictEqual(
          (yield* fake.records("t")).map((r) => text(r.value)),
          ["once", "once"]
        )
      })
    )
  )

  it.effect("a lost answer waits for a send that writes: a send that fails validation keeps it", () =>
    withFake(
      Effect.gen(function* () {
        const fake = yield* FakeKafka.FakeKafka
        yield* fake.loseNextAnswers(1)
        assertReason(yield* sendFailure([rec("bad topic", "a")]), "Fatal", "InvalidTopic")
        assertReason(yield* sendFailure([rec("t", "a")]), "Retriable", "RequestTimeout", true)
        yield* send([rec("t", "a")])
        assert.strictEqual(yield* fake.recordCount, 2)
      })
    )
  )

  it.effect(
    "overlapping sends (latency + failNext): a later send is refused on the failed send's partitions only",
    () =>
      withFake(
        Effect.gen(function* () {
          const producer = yield* Producer
          const fake = yield* FakeKafka.FakeKafka
          yield* fake.setLatency("10 millis")
          yield* fake.failNext(1, unavailable)
          const a = yield* Effect.forkChild(Effect.flip(producer.send([rec("t", "a", "a", { partition: 0 })])))
          const b = yield* Effect.forkChild(
            Effect.flip(producer.send([rec("t", "b", "b0", { partition: 0 }), rec("t", "b", "b1", { partition: 1 })]))
          )
          const c = yield* Effect.forkChild(producer.send([rec("t", "c", "c1", { partition: 1 })]))
          yield* TestClock.adjust(10)
          assert.strictEqual(yield* Fiber.join(a), unavailable)
          const refused = yield* Fiber.join(b)
          assertReason(refused, "Retriable", "BrokerUnavailable", true) // partition 1 of it was written
          assert.include(refused.message, "to keep the order")
          assert.deepStrictEqual(
            refused.outcomes?.map((o) => (typeof o === "string" ? o : o.offset)),
            ["notWritten", "0"]
          )
          assert.deepStrictEqual(
            (yield* Fiber.join(c)).map((m) => m.offset),
            ["1"]
          )
          // a send after the failed one returned is written
          yield* fake.setLatency(0)
          const [later] = yield* send([rec("t", "d", "d", { partition: 0 })])
          assert.strictEqual(later!.offset, "0")
          assert.deepStrictEqual(
            (yield* fake.records("t", { partition: 0 })).map((r) => text(r.value)),
            ["d"]
          )
        })
      )
  )

  it.effect("overlapping sends (pause): a batch refused as too large holds back the later sends of its partition", () =>
    withFake(
      Effect.gen(function* () {
        const producer = yield* Producer
        const fake = yield* FakeKafka.FakeKafka
        yield* fake.createTopic("small", { partitions: 1, maxMessageBytes: 200 })
        yield* fake.pause
        const big = yield* Effect.forkChild(Effect.flip(producer.send([rec("small", "k", "x".repeat(500))])))
        const next = yield* Effect.forkChild(Effect.flip(producer.send([rec("small", "k", "next")])))
        yield* Effect.yieldNow
        yield* fake.resume
        assertReason(yield* Fiber.join(big), "Fatal", "RecordTooLarge")
        const refused = yield* Fiber.join(next)
        assertReason(refused, "Retriable", "Unknown", false)
        assert.isUndefined(refused.outcomes)
        assert.strictEqual(yield* fake.recordCount, 0)
        yield* send([rec("small", "k", "again")])
        assert.strictEqual(yield* fake.recordCount, 1)
      })
    )
  )

  it.effect("sends that do not overlap a failure are not held back (no latency, no pause)", () =>
    withFake(
      Effect.gen(function* () {
        const fake = yield* FakeKafka.FakeKafka
        yield* fake.failNext(1, unavailable)
        yield* sendFailure([rec("t", "a", "a", { partition: 0 })])
        const [m] = yield* send([rec("t", "a", "b", { partition: 0 })])
        assert.strictEqual(m!.offset, "0")
      })
    )
  )

  it.effect("an empty send answers nothing at once, even when paused, and counts as a send", () =>
    withFake(
      Effect.gen(function* () {
        const fake = yield* FakeKafka.FakeKafka
        yield* fake.pause
        yield* fake.failNext(1, unavailable)
        assert.deepStrictEqual(yield* send([]), [])
        assert.strictEqual(yield* fake.sendCount, 1)
        yield* fake.resume
        assert.strictEqual(yield* sendFailure([rec("t", "a")]), unavailable)
      })
    )
  )

  it.effect("reset: back to the initial topics, counters zero, faults cleared, paused sends resumed", () =>
    withFake(
      Effect.gen(function* () {
        const producer = yield* Producer
        const fake = yield* FakeKafka.FakeKafka
        yield* send([rec("t", "a"), rec("other", "a")])
        yield* fake.failNext(5, unavailable)
        yield* fake.loseNextAnswers(5)
        yield* fake.setLatency("1 hour")
        yield* fake.pause
        const waiting = yield* Effect.forkChild(producer.send([rec("t", "b")]))
        yield* fake.reset
        assert.deepStrictEqual(yield* fake.topics, ["t"])
        assert.strictEqual(yield* fake.recordCount, 0)
        assert.strictEqual(yield* fake.sendCount, 0)
        const [m] = yield* send([rec("t", "a", "v", { partition: 0 })])
        assert.strictEqual(m!.offset, "0")
        yield* TestClock.adjust("1 hour") // the send that waited before the reset finishes its old latency
        yield* Fiber.join(waiting)
        assert.strictEqual(yield* fake.recordCount, 2)
      })
    )
  )
})
