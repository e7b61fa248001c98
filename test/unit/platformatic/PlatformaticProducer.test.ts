/**
 * The @platformatic/kafka driver on a stubbed client (`vi.mock`: only the client's `Producer` class is
 * replaced; its error classes and protocol symbols stay the client's): what the driver makes of the Produce
 * API's answers. The stub is a one-broker cluster whose Produce API calls `stub.produce`.
 */
import { assert, describe, it } from "@effect/vitest"
import { ProtocolError } from "@platformatic/kafka"
import { Effect, Exit, Fiber, Scope } from "effect"
import { TestClock } from "effect/testing"
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"
import { vi } from "vitest"
import type { ProducerRecord } from "../../../src/Producer.ts"
import { failureOf } from "../../support/exits.ts"

type Answer = { readonly partitions: ReadonlyArray<readonly [number, number, bigint]> } | Error | boolean

const stub = vi.hoisted(() => ({
  /** The answer to a produce request: per partition [partition, error code, base offset], an error, or acks=0's `true`. */
  produce: (_messages: Array<{ partition: number }>): unknown => true,
  /** Requests are answered when this resolves. */
  answered: Promise.resolve()
}))

vi.mock("@platformatic/kafka", async (importOriginal) => {
  const actual = await importOriginal<typeof import("@platformatic/kafka")>()
  const metadata = {
    brokers: new Map([[1, { host: "stub", port: 1 }]]),
    topics: new Map([["t", { partitionsCount: 2, partitions: [{ leader: 1 }, { leader: 1 }] }]])
  }
  class Producer {
    get currentMetadata() {
      return metadata
    }
    metadata() {
      return Promise.resolve(metadata)
    }
    initIdempotentProducer() {
      return Promise.resolve({ producerId: 1n, producerEpoch: 0 })
    }
    [actual.kGetConnection](_broker: unknown, callback: (error: null, connection: object) => void) {
      callback(null, {})
    }
    [actual.kGetApi](_name: string, callback: (error: null, api: unknown) => void) {
      callback(null, (...args: Array<unknown>) => {
        const messages = args[3] as Array<{ partition: number }>
        const callback = args[5] as (error: Error | null, response?: unknown) => void
        const done = (error: Error | null, response?: unknown) =>
          void stub.answered.then(() => callback(error, response))
        const answer = stub.produce(messages) as Answer
        if (answer instanceof Error) return done(answer)
        if (typeof answer === "boolean") return done(null, answer)
        const response = {
          responses: [
            {
              name: "t",
              partitionResponses: answer.partitions.map(([index, errorCode, baseOffset]) => ({
                index,
                errorCode,
                baseOffset,
                errorMessage: null
              }))
            }
          ]
        }
        const refused = answer.partitions.filter(([, code]) => code !== 0)
        if (refused.length === 0) return done(null, response)
        const errors = Object.fromEntries(
          refused.map(([index, code]) => [`/responses/0/partition_responses/${index}`, [code, null] as [number, null]])
        )
        done(new actual.ResponseError(0, 9, errors, response))
      })
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
  it.effect("outcomes: written where the partition's answer says, notWritten where it was refused", () =>
    Effect.gen(function* () {
      stub.produce = () => ({
        partitions: [
          [0, 0, 5n],
          [1, new ProtocolError("MESSAGE_TOO_LARGE").apiCode as number, -1n]
        ]
      })
      const producer = yield* PlatformaticProducer.make({ brokers: ["stub:1"] })
      const error = failureOf(yield* Effect.exit(producer.send([record(0, "a"), record(1, "big"), record(0, "b")])))
      assert.strictEqual(error._tag, "Fatal")
      assert.strictEqual(error.reason, "RecordTooLarge")
      assert.deepStrictEqual(
        error.outcomes?.map((o) => (typeof o === "string" ? o : `${o.partition}/${o.offset}`)),
        ["0/5", "notWritten", "0/6"]
      )
    }).pipe(Effect.scoped)
  )

  it.effect("a failure for every record alike (nothing written): no outcomes, the error says it", () =>
    Effect.gen(function* () {
      stub.produce = () => new ProtocolError("INVALID_TOPIC_EXCEPTION")
      const producer = yield* PlatformaticProducer.make({ brokers: ["stub:1"] })
      const error = failureOf(yield* Effect.exit(producer.send([record(0, "a"), record(1, "b")])))
      assert.strictEqual(error.reason, "InvalidTopic")
      assert.isUndefined(error.outcomes)
    }).pipe(Effect.scoped)
  )

  it.effect("receipts: each record's offset from its partition's base offset, in input order", () =>
    Effect.gen(function* () {
      stub.produce = () => ({ partitions: [[0, 0, 7n]] })
      const producer = yield* PlatformaticProducer.make({ brokers: ["stub:1"] })
      const receipts = yield* producer.send([record(0, "a"), record(0, "b")])
      assert.deepStrictEqual(
        receipts.map((r) => r.offset),
        ["7", "8"]
      )
    }).pipe(Effect.scoped)
  )

  it.effect('acks=none: one receipt per record with offset "-1"', () =>
    Effect.gen(function* () {
      stub.produce = () => true
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

  it.effect("closing waits for the sends in flight (bounded), then closes: inFlight counts them", () =>
    Effect.gen(function* () {
      let release: () => void = () => {}
      stub.answered = new Promise((resolve) => (release = resolve))
      stub.produce = () => ({ partitions: [[0, 0, 1n]] })
      const scope = yield* Scope.make()
      const producer = yield* PlatformaticProducer.make({ brokers: ["stub:1"] }).pipe(Scope.provide(scope))
      const sending = yield* Effect.forkChild(producer.send([record(0, "a")]))
      yield* Effect.yieldNow
      assert.strictEqual(yield* producer.inFlight, 1)
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("1 second")
      assert.isUndefined(closing.pollUnsafe(), "closing waits for the answer")
      release()
      yield* Effect.promise(() => stub.answered)
      yield* TestClock.adjust("20 millis")
      yield* Fiber.join(closing)
      assert.deepStrictEqual(
        (yield* Fiber.join(sending)).map((r) => r.offset),
        ["1"]
      )
      assert.strictEqual(yield* producer.inFlight, 0)
      stub.answered = Promise.resolve()
    })
  )
})
