import { assert, describe, it } from "@effect/vitest"
import { DeadLetter } from "effect-kafka-publisher"
import type { ProducerRecord } from "../../src/Producer.ts"
import { Fatal, Retriable } from "../../src/PublishError.ts"

const encoder = new TextEncoder()

const original = (headers: ProducerRecord["headers"] = {}): ProducerRecord => ({
  topic: "orders",
  key: encoder.encode("user-1"),
  value: encoder.encode("{}"),
  headers
})

const info = { deadLetterTopic: "orders.dlt", attempts: 1, failedAt: 0 }

describe("DeadLetter.toRecord", () => {
  it("issue 18.6: stale dead-letter headers do not survive re-dead-lettering: the why-headers are this failure's own", () => {
    const stale = original({
      eventType: "OrderPlaced",
      [DeadLetter.headerNames.ambiguous]: "true",
      [DeadLetter.headerNames.originalPartition]: "7",
      [DeadLetter.headerNames.errorType]: "Retriable.RequestTimeout",
      [DeadLetter.headerNames.attempts]: "3"
    })
    const error = new Fatal({ reason: "RecordTooLarge", message: "too large" })
    const record = DeadLetter.toRecord(stale, error, info)
    assert.deepStrictEqual(record.headers, {
      eventType: "OrderPlaced",
      errorType: "Fatal.RecordTooLarge",
      errorMessage: "too large",
      originalTopic: "orders",
      attempts: "1",
      failedAt: "1970-01-01T00:00:00.000Z"
    })
  })

  it("the why-headers of an ambiguous failure with a known partition", () => {
    const error = new Retriable({ reason: "RequestTimeout", ambiguous: true, partition: 2, message: "timed out" })
    const record = DeadLetter.toRecord(original({ [DeadLetter.headerNames.originalPartition]: "7" }), error, info)
    assert.strictEqual(record.headers.originalPartition, "2")
    assert.strictEqual(record.headers.ambiguous, "true")
  })

  it("issue 18 (smaller): errorMessage truncation at 4,096 UTF-16 units never splits a surrogate pair", () => {
    const message = `${"a".repeat(4095)}😀tail` // the emoji's two units sit at 4095 and 4096
    const record = DeadLetter.toRecord(original(), new Fatal({ reason: "Unknown", message }), info)
    const written = record.headers.errorMessage as string
    assert.strictEqual(written, "a".repeat(4095))
    assert.isTrue(written.isWellFormed())
    const whole = DeadLetter.toRecord(original(), new Fatal({ reason: "Unknown", message: "😀".repeat(3000) }), info)
    const text = whole.headers.errorMessage as string
    assert.isTrue(text.isWellFormed())
    assert.strictEqual(text.length, 4096)
  })
})
