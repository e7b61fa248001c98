/**
 * The kafkajs driver on a stubbed kafkajs client (`vi.mock`: only `Kafka` is replaced, codecs, log levels
 * and partitioners stay kafkajs's): what the driver makes of kafkajs's answers, without a broker.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import kafkajs from "kafkajs"
import { vi } from "vitest"
import { codecFor } from "../../../src/kafkajs/compressionCodecs.ts"
import type { ProducerRecord } from "../../../src/Producer.ts"
import { failureOf } from "../../support/exits.ts"

interface StubProducer {
  readonly connect: () => Promise<void>
  readonly sendBatch: (request: { acks: number; topicMessages: Array<unknown> }) => Promise<unknown>
  readonly disconnect: () => Promise<void>
}

const stub = vi.hoisted(() => ({
  /** Builds producer number `index` (0: the first session); `cluster` is what kafkajs's cluster factory makes. */
  producer: (
    _index: number,
    _cluster: () => { findBroker: (query: unknown) => Promise<Record<string, unknown>> }
  ): StubProducer => {
    throw new Error("no stub producer configured")
  },
  created: 0
}))

vi.mock("kafkajs", async (importOriginal) => {
  const actual = (await importOriginal<{ default: Record<string, unknown> }>()).default
  const factory = Symbol("private:Kafka:createCluster")
  class Kafka {
    // kafkajs's private cluster factory, which the driver hooks to watch produce requests; a broker per call
    [factory] = () => ({ findBroker: async () => ({ produce: async (request: unknown) => request }) })
    producer() {
      const self = this as unknown as Record<
        symbol,
        (options: unknown) => { findBroker: (query: unknown) => Promise<Record<string, unknown>> }
      >
      return stub.producer(stub.created++, () => self[factory]!({}))
    }
  }
  return { default: { ...actual, Kafka } }
})

const record = (partition: number, value = "v"): ProducerRecord => ({
  topic: "t",
  key: null,
  value: Buffer.from(value),
  headers: {},
  partition
})

/** Producers that connect at once, answer `sendBatch` with `answer`, and count their sends. */
const answering = (answer: (request: { acks: number }) => Promise<unknown>) => {
  const sends: Array<{ acks: number }> = []
  stub.created = 0
  stub.producer = () => ({
    connect: async () => {},
    sendBatch: (request) => {
      sends.push(request)
      return answer(request)
    },
    disconnect: async () => {}
  })
  return sends
}

const protocolError = (type: string) => Object.assign(new Error(type), { name: "KafkaJSProtocolError", type })

describe("KafkaJsProducer on a stubbed kafkajs", () => {
  it.effect(
    'issue 18.3: acks=none answers one receipt per record with offset "-1" (kafkajs answers [] for acks 0)',
    () =>
      Effect.gen(function* () {
        const sends = answering(async () => [])
        const producer = yield* KafkaJsProducer.make({ brokers: ["stub:1"], acks: "none", idempotent: false })
        const receipts = yield* producer.send([record(0, "a"), record(1, "b"), record(1, "c")])
        assert.strictEqual(sends[0]!.acks, 0)
        assert.deepStrictEqual(
          receipts.map((r) => [r.partition, r.offset]),
          [
            [0, "-1"],
            [1, "-1"],
            [1, "-1"]
          ]
        )
      }).pipe(Effect.scoped)
  )

  it.effect("acks=leader: offsets from the base offset of each partition", () =>
    Effect.gen(function* () {
      const sends = answering(async () => [
        { topicName: "t", partition: 0, errorCode: 0, baseOffset: "10" },
        { topicName: "t", partition: 1, errorCode: 0, baseOffset: "4" }
      ])
      const producer = yield* KafkaJsProducer.make({ brokers: ["stub:1"], acks: "leader", idempotent: false })
      const receipts = yield* producer.send([record(0), record(1), record(1)])
      assert.strictEqual(sends[0]!.acks, 1)
      assert.deepStrictEqual(
        receipts.map((r) => [r.partition, r.offset]),
        [
          [0, "10"],
          [1, "4"],
          [1, "5"]
        ]
      )
    }).pipe(Effect.scoped)
  )

  it.effect("idempotence with acks other than all fails the layer with a typed Fatal InvalidConfig", () =>
    Effect.gen(function* () {
      answering(async () => [])
      const error = failureOf(yield* Effect.exit(KafkaJsProducer.make({ brokers: ["stub:1"], acks: "leader" })))
      assert.strictEqual(error._tag, "Fatal")
      assert.strictEqual(error.reason, "InvalidConfig")
      assert.include(error.message, "acks=all")
      assert.strictEqual(stub.created, 0, "no client was made")
    }).pipe(Effect.scoped)
  )

  it.effect("maxInFlightRequests out of range fails the layer with a typed Fatal InvalidConfig, before a client", () =>
    Effect.gen(function* () {
      answering(async () => [])
      for (const maxInFlightRequests of [0, 6, 2.5]) {
        const error = failureOf(yield* Effect.exit(KafkaJsProducer.make({ brokers: ["stub:1"], maxInFlightRequests })))
        assert.strictEqual(error._tag, "Fatal")
        assert.strictEqual(error.reason, "InvalidConfig")
        assert.include(error.message, "KAFKA_MAX_IN_FLIGHT_REQUESTS")
      }
      assert.strictEqual(stub.created, 0, "no client was made")
    }).pipe(Effect.scoped)
  )

  it.effect("keepOrder: the sends queued behind a failed send are not sent (Retriable, not ambiguous)", () =>
    Effect.gen(function* () {
      let fail: (error: Error) => void = () => {}
      const sends = answering(
        (request) =>
          new Promise((resolve, reject) => {
            if (sends.length === 1) fail = reject
            else resolve([{ topicName: "t", partition: 0, errorCode: 0, baseOffset: String(sends.length) }])
            void request
          })
      )
      const producer = yield* KafkaJsProducer.make({ brokers: ["stub:1"] })
      const first = yield* Effect.forkChild(Effect.flip(producer.send([record(0, "a")])))
      const second = yield* Effect.forkChild(Effect.flip(producer.send([record(0, "b")])))
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
      fail(protocolError("NOT_LEADER_FOR_PARTITION"))
      assert.strictEqual((yield* Fiber.join(first)).reason, "NotLeader")
      const held = yield* Fiber.join(second)
      assert.strictEqual(held._tag, "Retriable")
      assert.strictEqual(held.reason, "NotLeader")
      assert.isFalse(held._tag === "Retriable" && held.ambiguous)
      assert.include(held.message, "to keep the order")
      assert.strictEqual(sends.length, 1, "the second send never reached kafkajs")
      // a send after both returned goes (on a new session)
      yield* producer.send([record(0, "c")])
      assert.strictEqual(sends.length, 2)
      assert.strictEqual(stub.created, 2)
    }).pipe(Effect.scoped)
  )

  it.effect(
    "kafkajs answering a partition twice or not at all (a retry after a broker failure): unknown, new session",
    () =>
      Effect.gen(function* () {
        // what kafkajs 2.2.4 returned in the cluster-faults suite: partition 1 twice (written twice), partition 2 not at all
        const sends = answering(async () =>
          sends.length === 1
            ? [
                { topicName: "t", partition: 0, errorCode: 0, baseOffset: "10" },
                { topicName: "t", partition: 1, errorCode: 0, baseOffset: "206" },
                { topicName: "t", partition: 1, errorCode: 0, baseOffset: "209" }
              ]
            : [{ topicName: "t", partition: 0, errorCode: 0, baseOffset: "11" }]
        )
        const producer = yield* KafkaJsProducer.make({ brokers: ["stub:1"] })
        const error = failureOf(yield* Effect.exit(producer.send([record(0, "a"), record(1, "b"), record(2, "c")])))
        assert.strictEqual(error._tag, "Retriable")
        assert.isTrue(error._tag === "Retriable" && error.ambiguous)
        assert.deepStrictEqual(
          error.outcomes?.map((o) => (typeof o === "string" ? o : `${o.partition}/${o.offset}`)),
          ["0/10", "unknown", "unknown"]
        )
        // its sequence numbers may be behind the broker's: the next send starts a new session
        yield* producer.send([record(0, "d")])
        assert.strictEqual(stub.created, 2)
        assert.strictEqual(sends.length, 2)
      }).pipe(Effect.scoped)
  )

  it.effect(
    "kafkajs sending a partition again under new sequence numbers in one send: unknown; the same numbers: written",
    () =>
      Effect.gen(function* () {
        // as traced in the cluster-faults suite: partition 1 produced at sequence 552, then again in a retry at 553
        let sequences = [552, 553]
        stub.created = 0
        stub.producer = (_index, cluster) => ({
          connect: async () => {},
          sendBatch: async () => {
            const produce = (await brokerOf(cluster)).produce as (request: unknown) => Promise<unknown>
            for (const firstSequence of sequences)
              await produce({ topicData: [{ topic: "t", partitions: [{ partition: 1, firstSequence }] }] })
            return [
              { topicName: "t", partition: 0, errorCode: 0, baseOffset: "3" },
              { topicName: "t", partition: 1, errorCode: 0, baseOffset: "8" }
            ]
          },
          disconnect: async () => {}
        })
        const producer = yield* KafkaJsProducer.make({ brokers: ["stub:1"] })
        const error = failureOf(yield* Effect.exit(producer.send([record(0, "a"), record(1, "b")])))
        assert.isTrue(error._tag === "Retriable" && error.ambiguous)
        assert.deepStrictEqual(
          error.outcomes?.map((o) => (typeof o === "string" ? o : `${o.partition}/${o.offset}`)),
          ["0/3", "unknown"]
        )
        // a resend under the numbers kafkajs took back after a failure: the broker drops a copy, nothing is unknown
        sequences = [552, 552]
        const receipts = yield* producer.send([record(0, "a"), record(1, "b")])
        assert.deepStrictEqual(
          receipts.map((r) => `${r.partition}/${r.offset}`),
          ["0/3", "1/8"]
        )
      }).pipe(Effect.scoped)
  )

  it.effect("issue 18 (suspicion): a send whose caller gave up while a new session connected is not sent", () =>
    Effect.gen(function* () {
      let releaseConnect: () => void = () => {}
      const secondSends: Array<unknown> = []
      stub.created = 0
      stub.producer = (index) => ({
        connect: () => (index === 0 ? Promise.resolve() : new Promise<void>((resolve) => (releaseConnect = resolve))),
        sendBatch: async (request) => {
          if (index === 0) throw Object.assign(new Error("Closed connection"), { name: "KafkaJSConnectionClosedError" })
          secondSends.push(request)
          return [{ topicName: "t", partition: 0, errorCode: 0, baseOffset: "0" }]
        },
        disconnect: async () => {}
      })
      const producer = yield* KafkaJsProducer.make({ brokers: ["stub:1"] })
      const first = failureOf(yield* Effect.exit(producer.send([record(0)])))
      assert.strictEqual(first.reason, "ConnectionClosed")
      // the next send starts a new session; its caller gives up while it connects
      const second = yield* Effect.forkChild(producer.send([record(0)]))
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
      assert.strictEqual(stub.created, 2, "a new session is connecting")
      yield* Fiber.interrupt(second)
      releaseConnect()
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
      assert.deepStrictEqual(secondSends, [], "nothing was sent for the caller that gave up")
      // the new session serves the next send
      const receipts = yield* producer.send([record(0)])
      assert.strictEqual(receipts.length, 1)
      assert.strictEqual(secondSends.length, 1)
    }).pipe(Effect.scoped)
  )

  it.effect("issue 18.2 (kafkajs): a failed send spanning partitions answers outcomes 'unknown' for every record", () =>
    Effect.gen(function* () {
      answering(async () => {
        throw protocolError("MESSAGE_TOO_LARGE")
      })
      const producer = yield* KafkaJsProducer.make({ brokers: ["stub:1"] })
      const spanning = failureOf(yield* Effect.exit(producer.send([record(0), record(1), record(0)])))
      assert.strictEqual(spanning._tag, "Fatal")
      assert.strictEqual(spanning.reason, "RecordTooLarge")
      assert.deepStrictEqual(spanning.outcomes, ["unknown", "unknown", "unknown"])
      // one partition: the error applies to every record alike
      const single = failureOf(yield* Effect.exit(producer.send([record(1), record(1)])))
      assert.strictEqual(single.reason, "RecordTooLarge")
      assert.isUndefined(single.outcomes)
    }).pipe(Effect.scoped)
  )

  it.effect("a whole-request failure (unknown topic, before any write) answers no outcomes", () =>
    Effect.gen(function* () {
      answering(async () => {
        throw protocolError("UNKNOWN_TOPIC_OR_PARTITION")
      })
      const producer = yield* KafkaJsProducer.make({ brokers: ["stub:1"], autoCreateTopics: false })
      const error = failureOf(yield* Effect.exit(producer.send([record(0), record(1)])))
      assert.strictEqual(error.reason, "UnknownTopic")
      assert.isUndefined(error.outcomes)
    }).pipe(Effect.scoped)
  )

  it.effect("a partition kafkajs answered nothing for: Retriable UnknownTopicOrPartition, exact outcomes", () =>
    Effect.gen(function* () {
      answering(async () => [{ topicName: "t", partition: 0, errorCode: 0, baseOffset: "5" }])
      const producer = yield* KafkaJsProducer.make({ brokers: ["stub:1"] })
      const error = failureOf(yield* Effect.exit(producer.send([record(0), record(7)])))
      assert.strictEqual(error._tag, "Retriable")
      assert.strictEqual(error.reason, "UnknownTopicOrPartition")
      assert.strictEqual(error.partition, 7)
      assert.deepStrictEqual(error.outcomes?.[1], "notWritten")
      assert.deepInclude(error.outcomes?.[0] as object, { topic: "t", partition: 0, offset: "5" })
    }).pipe(Effect.scoped)
  )

  it.effect("snappy without the package kafkajs-snappy: Fatal InvalidConfig naming the package", () =>
    Effect.gen(function* () {
      const missing = () => {
        throw Object.assign(new Error("Cannot find module 'kafkajs-snappy'"), { code: "MODULE_NOT_FOUND" })
      }
      const error = failureOf(yield* Effect.exit(codecFor("snappy", missing)))
      assert.strictEqual(error._tag, "Fatal")
      assert.strictEqual(error.reason, "InvalidConfig")
      assert.include(error.message, "kafkajs-snappy")
      // installed (as in this repository): the codec loads on demand
      assert.isNumber(yield* codecFor("snappy"))
      // without snappy, the other codecs need nothing
      assert.isNumber(yield* codecFor("zstd", missing))
    })
  )

  it.effect("lz4 without the package @platformatic/wasm-utils: Fatal InvalidConfig naming the package", () =>
    Effect.gen(function* () {
      const asked: Array<string> = []
      const missing = (name: string) => {
        asked.push(name)
        throw Object.assign(new Error(`Cannot find module '${name}'`), { code: "MODULE_NOT_FOUND" })
      }
      const error = failureOf(yield* Effect.exit(codecFor("lz4", missing)))
      assert.strictEqual(error._tag, "Fatal")
      assert.strictEqual(error.reason, "InvalidConfig")
      assert.include(error.message, "@platformatic/wasm-utils")
      assert.deepStrictEqual(asked, ["@platformatic/wasm-utils"])
      // installed (as in this repository): the codec loads on demand, and round-trips an LZ4 frame
      assert.strictEqual(yield* codecFor("lz4"), kafkajs.CompressionTypes.LZ4)
      const codec = (
        kafkajs.CompressionCodecs[kafkajs.CompressionTypes.LZ4] as () => {
          compress: (encoder: { buffer: Buffer }) => Promise<Buffer>
          decompress: (buffer: Buffer) => Promise<Buffer>
        }
      )()
      const input = Buffer.from("order ".repeat(200))
      const compressed = yield* Effect.promise(() => codec.compress({ buffer: input }))
      assert.isBelow(compressed.length, input.length)
      assert.deepStrictEqual([...compressed.subarray(0, 4)], [0x04, 0x22, 0x4d, 0x18]) // the LZ4 frame magic
      assert.deepStrictEqual(yield* Effect.promise(() => codec.decompress(compressed)), input)
      // an app that does not ask for lz4 never loads it
      asked.length = 0
      assert.isNumber(yield* codecFor("gzip", missing))
      assert.deepStrictEqual(asked, [])
    })
  )
})

/** The broker the stub's cluster hands out (through the driver's hook). */
const brokerOf = (cluster: () => { findBroker: (query: unknown) => Promise<Record<string, unknown>> }) =>
  cluster().findBroker({ nodeId: 1 })
