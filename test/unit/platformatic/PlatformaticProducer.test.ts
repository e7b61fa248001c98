/**
 * The @platformatic/kafka driver on a stubbed client (`vi.mock`: only the client's `Producer` class is
 * replaced; its error classes stay the client's): what the driver makes of the client's answers.
 */
import { assert, describe, it } from "@effect/vitest"
import { MultipleErrors, ProtocolError } from "@platformatic/kafka"
import { Effect } from "effect"
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"
import { vi } from "vitest"
import type { ProducerRecord } from "../../../src/Producer.ts"
import { failureOf } from "../../support/exits.ts"

const stub = vi.hoisted(() => ({
  send: (_options: { messages: Array<{ partition: number }> }): Promise<unknown> => Promise.resolve({ offsets: [] })
}))

vi.mock("@platformatic/kafka", async (importOriginal) => {
  const actual = await importOriginal<Record<string, unknown>>()
  class Producer {
    metadata(options: { topics: Array<string> }) {
      return Promise.resolve({ topics: new Map(options.topics.map((t) => [t, { partitionsCount: 2 }])) })
    }
    initIdempotentProducer() {
      return Promise.resolve()
    }
    send(options: { messages: Array<{ partition: number }> }) {
      return stub.send(options)
    }
    close() {
      return Promise.resolve()
    }
  }
  return { ...actual, Producer }
})

const record = (partition: number, value: string): ProducerRecord => ({
  topic: "t",
  key: null,
  value: Buffer.from(value),
  headers: {},
  partition
})

describe("PlatformaticProducer on a stubbed client", () => {
  it.effect("issue 18.2 (platformatic): outcomes written where `error.produced` says, unknown for the rest", () =>
    Effect.gen(function* () {
      stub.send = () =>
        Promise.reject(
          Object.assign(new MultipleErrors("Producing messages failed.", [new ProtocolError("MESSAGE_TOO_LARGE")]), {
            produced: { offsets: [{ topic: "t", partition: 0, offset: 5n }] }
          })
        )
      const producer = yield* PlatformaticProducer.make({ brokers: ["stub:1"] })
      const error = failureOf(yield* Effect.exit(producer.send([record(0, "a"), record(1, "big"), record(0, "b")])))
      assert.strictEqual(error._tag, "Fatal")
      assert.strictEqual(error.reason, "RecordTooLarge")
      assert.deepStrictEqual(
        error.outcomes?.map((o) => (typeof o === "string" ? o : `${o.partition}/${o.offset}`)),
        ["0/5", "unknown", "0/6"]
      )
    }).pipe(Effect.scoped)
  )

  it.effect("a failure without `produced` (before anything was sent) applies to every record: no outcomes", () =>
    Effect.gen(function* () {
      stub.send = () =>
        Promise.reject(new MultipleErrors("Producing messages failed.", [new ProtocolError("INVALID_TOPIC_EXCEPTION")]))
      const producer = yield* PlatformaticProducer.make({ brokers: ["stub:1"] })
      const error = failureOf(yield* Effect.exit(producer.send([record(0, "a"), record(1, "b")])))
      assert.strictEqual(error.reason, "InvalidTopic")
      assert.isUndefined(error.outcomes)
    }).pipe(Effect.scoped)
  )

  it.effect('acks=none: one receipt per record with offset "-1"', () =>
    Effect.gen(function* () {
      stub.send = () => Promise.resolve({ unwritableNodes: [] })
      const producer = yield* PlatformaticProducer.make({ brokers: ["stub:1"], acks: "none", idempotent: false })
      const receipts = yield* producer.send([record(0, "a"), record(1, "b")])
      assert.deepStrictEqual(
        receipts.map((r) => [r.partition, r.offset]),
        [
          [0, "-1"],
          [1, "-1"]
        ]
      )
    }).pipe(Effect.scoped)
  )
})
