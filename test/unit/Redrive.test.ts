import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { DeadLetter, Publisher, Redrive } from "effect-kafka-publisher"
import { FakeKafka } from "effect-kafka-publisher/testing"
import type { ReadRecord } from "../../src/reader/TopicReader.ts"
import { counts, fakeSource } from "../support/redrive.ts"

const bytes = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b))

const letter = (headers: Record<string, string>, value: Uint8Array | null = bytes("v")): ReadRecord => ({
  topic: "orders.dlt",
  partition: 0,
  offset: "7",
  key: bytes("k"),
  value,
  timestamp: 0,
  headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, bytes(v)]))
})

const dead = { originalTopic: "orders", errorType: "Fatal.RecordTooLarge", errorMessage: "too large", eventType: "X" }
const context = { filters: [], maxRedrives: 3, done: new Set<string>() }

describe("Redrive.decide", () => {
  it("sends the original key, value and own headers, plus redrivenFrom and the history", () => {
    const d = Redrive.decide(letter(dead), context)
    assert.strictEqual(d._tag, "Send")
    if (d._tag !== "Send") return
    assert.strictEqual(d.record.topic, "orders")
    assert.deepStrictEqual(d.record.headers, {
      eventType: bytes("X"),
      redrivenFrom: "orders.dlt/0/7",
      redriveCount: "1",
      previousErrorTypes: "Fatal.RecordTooLarge"
    })
  })

  it("skips with a reason: done, no value, no originalTopic, too many redrives, not matching", () => {
    const reason = (r: ReadRecord, c: Partial<Redrive.Context> = {}) => {
      const d = Redrive.decide(r, { ...context, ...c })
      return d._tag === "Skip" ? d.reason : "sent"
    }
    assert.strictEqual(reason(letter(dead), { done: new Set(["orders.dlt/0/7"]) }), "alreadyRedriven")
    assert.strictEqual(reason(letter(dead, null)), "noValue")
    assert.strictEqual(reason(letter({ errorType: "Fatal.X" })), "noOriginalTopic")
    assert.strictEqual(reason(letter({ ...dead, redriveCount: "3" })), "maxRedrives")
    assert.strictEqual(reason(letter({ ...dead, redriveCount: "2" })), "sent")
    assert.strictEqual(reason(letter(dead), { filters: [Redrive.parseFilter("errorType=Retriable.*")!] }), "filtered")
    assert.strictEqual(reason(letter(dead), { filters: [Redrive.parseFilter("errorType=Fatal.*")!] }), "sent")
  })

  it("keeps the last 20 error types", () => {
    const earlier = Array.from({ length: 20 }, (_, i) => `E${i}`).join(",")
    const r = Redrive.toRecord(letter({ ...dead, previousErrorTypes: earlier, redriveCount: "1" }), "orders")
    const history = String(r.headers.previousErrorTypes).split(",")
    assert.strictEqual(history.length, 20)
    assert.strictEqual(history[0], "E1")
    assert.strictEqual(history[19], "Fatal.RecordTooLarge")
    assert.strictEqual(r.headers.redriveCount, "2")
  })

  it("parseFilter: name=value, name=prefix*, nothing without a name", () => {
    assert.deepStrictEqual(Redrive.parseFilter("a=b"), { name: "a", value: "b", prefix: false })
    assert.deepStrictEqual(Redrive.parseFilter("a=b*"), { name: "a", value: "b", prefix: true })
    assert.isUndefined(Redrive.parseFilter("=b"))
    assert.isUndefined(Redrive.parseFilter("ab"))
  })
})

describe("Redrive.run on FakeKafka", () => {
  it.effect("after a fix: sent once, a second run sends nothing; still failing: back to the DLT with history", () =>
    Effect.gen(function* () {
      const fake = yield* FakeKafka.FakeKafka
      yield* fake.createTopic("orders", { partitions: 1, maxMessageBytes: 200 })
      yield* fake.createTopic("orders.dlt", { partitions: 1 })
      const publish = (value: string) =>
        Publisher.Publisher.use((p) =>
          p.publishRecord({ topic: "orders", key: null, value: bytes(value), headers: {} })
        )
      yield* publish("x".repeat(500)) // too large: dead-lettered
      yield* publish("y".repeat(500))
      const options = { deadLetterTopic: "orders.dlt", to: "orders.fixed", max: 1 }
      const first = yield* Redrive.run(fakeSource(fake), options)
      assert.deepStrictEqual(counts(first), { read: 2, sent: 1, deadLetteredAgain: 0, failed: 0, skipped: 1 })
      const second = yield* Redrive.run(fakeSource(fake), { ...options, max: undefined })
      assert.deepStrictEqual(counts(second), { read: 2, sent: 1, deadLetteredAgain: 0, failed: 0, skipped: 1 })
      const third = yield* Redrive.run(fakeSource(fake), options)
      assert.deepStrictEqual(counts(third), { read: 2, sent: 0, deadLetteredAgain: 0, failed: 0, skipped: 2 })
      assert.strictEqual((yield* fake.records("orders.fixed")).length, 2)
      // to the original topic, still too large: back to orders.dlt with its history. Dedupe is per target:
      // the two sent to orders.fixed are not seen in orders, so they go again (documented in the README)
      const again = yield* Redrive.run(fakeSource(fake), { deadLetterTopic: "orders.dlt" })
      assert.strictEqual(again.deadLetteredAgain, 2)
      const letters = yield* fake.records("orders.dlt")
      const back = letters[letters.length - 1]!
      assert.strictEqual(text(back.headers.redrivenFrom), "orders.dlt/0/1")
      assert.strictEqual(text(back.headers.redriveCount), "1")
      assert.strictEqual(text(back.headers.previousErrorTypes), "Fatal.RecordTooLarge")
      assert.strictEqual(text(back.headers[DeadLetter.headerNames.errorType]), "Fatal.RecordTooLarge")
      // no loop: each run redrives only the newest dead letters, until maxRedrives (3) stops them
      const runs: Array<number> = []
      for (let i = 0; i < 4; i++)
        runs.push((yield* Redrive.run(fakeSource(fake), { deadLetterTopic: "orders.dlt" })).deadLetteredAgain)
      assert.deepStrictEqual(runs, [2, 2, 0, 0])
      const last = yield* Redrive.run(fakeSource(fake), { deadLetterTopic: "orders.dlt" })
      assert.strictEqual(last.skipped.maxRedrives, 2)
      assert.match(Redrive.summarize(last), /^read 8, sent 0, dead-lettered again 0, failed 0, skipped 8 \(/)
    }).pipe(Effect.provide(Publisher.layer().pipe(Layer.provideMerge(FakeKafka.layer()))))
  )
})
