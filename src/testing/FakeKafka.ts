/**
 * FakeKafka: an in-memory Kafka broker behind the driver-neutral `Producer` interface, for tests and for
 * running examples without a broker. It is meant to be honest: the contract suite runs the same tests on it
 * and on a real broker.
 *
 * - Topics with partitions; offsets per partition start at 0 and are continuous.
 * - Keyed records land on the partition kafkajs's default partitioner (Java-compatible murmur2) picks: it is
 *   kafkajs's own partitioner, so the same key goes to the same partition as on a real broker.
 * - Size limit per topic (`maxMessageBytes`), auto-creation on or off, unauthorised topics, invalid names:
 *   each fails the way the classification table says a real broker's error is classified.
 * - A send of several records is all-or-nothing, and answers one `RecordMetadata` per record, in order.
 * - Fault injection: fail the next sends, pause until resumed, added latency, "written but the answer was
 *   lost" (the records are appended, the send fails ambiguously: a resend duplicates them, as it would on a
 *   real broker). Inspection: the records of a topic, counts of sends and records.
 *
 * Time comes from Effect's `Clock`, so `TestClock` controls timestamps and latency.
 */
import { Context, Duration, Effect, Latch, Layer } from "effect"
import kafkajs from "kafkajs"
import { Producer, type ProducerRecord, type RecordMetadata, recordSize } from "../Producer.ts"
import { Fatal, type PublishError, Retriable } from "../PublishError.ts"

export interface TopicOptions {
  readonly partitions: number
  /** The topic's `max.message.bytes`. Default: the broker's `maxMessageBytes`. */
  readonly maxMessageBytes?: number | undefined
}

export interface Options {
  /** Create unknown topics on first use (a broker's `auto.create.topics.enable`). Default true. */
  readonly autoCreateTopics?: boolean | undefined
  /** Partitions of an auto-created topic (a broker's `num.partitions`). Default 1. */
  readonly defaultPartitions?: number | undefined
  /** Default `max.message.bytes`: 1048588, Kafka's default. */
  readonly maxMessageBytes?: number | undefined
  /** Topics the producer may not write to. */
  readonly unauthorizedTopics?: ReadonlyArray<string> | ((topic: string) => boolean) | undefined
  readonly topics?: Readonly<Record<string, TopicOptions>> | undefined
}

/** A record as a consumer would read it back: header values are bytes, as Kafka stores them. */
export interface StoredRecord {
  readonly topic: string
  readonly partition: number
  readonly offset: string
  readonly key: Uint8Array | null
  readonly value: Uint8Array | null
  readonly headers: Readonly<Record<string, Uint8Array>>
  readonly timestamp: number
}

/** What the log keeps: headers as the producer gave them (converted to bytes only when read back). */
interface LogEntry extends Omit<StoredRecord, "headers"> {
  readonly headers: ProducerRecord["headers"]
}

const textEncoder = new TextEncoder()
const readBack = (entry: LogEntry): StoredRecord => {
  const headers: Record<string, Uint8Array> = {}
  for (const name in entry.headers) {
    const value = entry.headers[name]!
    headers[name] = typeof value === "string" ? textEncoder.encode(value) : value
  }
  return { ...entry, headers }
}

export type InjectedError = PublishError | ((records: ReadonlyArray<ProducerRecord>) => PublishError)

export interface FakeKafkaShape {
  readonly createTopic: (name: string, options: TopicOptions) => Effect.Effect<void>
  /** Records of a topic, by partition then offset (or of one partition). Unknown topic: none. */
  readonly records: (
    topic: string,
    options?: { readonly partition?: number | undefined }
  ) => Effect.Effect<ReadonlyArray<StoredRecord>>
  readonly topics: Effect.Effect<ReadonlyArray<string>>
  /** Send calls received, failed ones included: count attempts with it. */
  readonly sendCount: Effect.Effect<number>
  /** Records stored, in every topic. */
  readonly recordCount: Effect.Effect<number>
  /** The next `n` sends fail with `error` and write nothing. */
  readonly failNext: (n: number, error: InjectedError) => Effect.Effect<void>
  /** The next `n` sends are written but answer with an ambiguous `RequestTimeout`. */
  readonly loseNextAnswers: (n: number) => Effect.Effect<void>
  /** Sends wait until `resume`. */
  readonly pause: Effect.Effect<void>
  readonly resume: Effect.Effect<void>
  /** Every send answers this much later. */
  readonly setLatency: (latency: Duration.Input) => Effect.Effect<void>
  /** Clears faults, topics and counters (keeps the options). */
  readonly reset: Effect.Effect<void>
}

export class FakeKafka extends Context.Service<FakeKafka, FakeKafkaShape>()(
  "effect-kafka-publisher/testing/FakeKafka"
) {}

export const defaults = {
  autoCreateTopics: true,
  defaultPartitions: 1,
  maxMessageBytes: 1_048_588
} as const

/** Bytes a broker counts around a one-record batch (batch header, record framing), roughly. */
const batchOverhead = 70

const legalTopic = /^[a-zA-Z0-9._-]+$/
const topicNameProblem = (name: string): string | undefined => {
  if (name.length === 0) return "the topic name is empty"
  if (name === "." || name === "..") return `"${name}" is not a legal topic name`
  if (name.length > 249) return "the topic name is longer than 249 characters"
  if (!legalTopic.test(name)) return `"${name}" has characters other than ASCII letters, digits, '.', '_' and '-'`
  return undefined
}

interface TopicState {
  readonly name: string
  readonly partitions: Array<Array<LogEntry>>
  readonly maxMessageBytes: number
  /** kafkajs partitioner input, built once per topic */
  readonly partitionMetadata: Array<kafkajs.PartitionMetadata>
}

type Plan =
  | { readonly ok: true; readonly targets: ReadonlyArray<readonly [TopicState, number]> }
  | {
      readonly ok: false
      readonly error: PublishError
    }

/** An in-memory broker: the fake (inspection, faults) and its `Producer`. */
export const make = (
  options: Options = {}
): Effect.Effect<{ readonly fake: FakeKafkaShape; readonly producer: Producer }> =>
  Effect.gen(function* () {
    const autoCreate = options.autoCreateTopics ?? defaults.autoCreateTopics
    const defaultPartitions = options.defaultPartitions ?? defaults.defaultPartitions
    const brokerMax = options.maxMessageBytes ?? defaults.maxMessageBytes
    const unauthorized = options.unauthorizedTopics
    const isUnauthorized =
      unauthorized === undefined
        ? () => false
        : typeof unauthorized === "function"
          ? unauthorized
          : (topic: string) => unauthorized.includes(topic)

    const topics = new Map<string, TopicState>()
    let partitioner = kafkajs.Partitioners.DefaultPartitioner()
    let sends = 0
    let stored = 0
    let inFlight = 0
    let latency = Duration.zero
    const failures: Array<InjectedError> = []
    let lostAnswers = 0
    const running = yield* Latch.make(true)

    const createTopic = (name: string, topic: TopicOptions): TopicState => {
      const state: TopicState = {
        name,
        partitions: Array.from({ length: topic.partitions }, () => []),
        maxMessageBytes: topic.maxMessageBytes ?? brokerMax,
        partitionMetadata: Array.from({ length: topic.partitions }, (_, partitionId) => ({
          partitionId,
          leader: 1,
          replicas: [1],
          isr: [1],
          partitionErrorCode: 0
        }))
      }
      topics.set(name, state)
      return state
    }
    for (const [name, topic] of Object.entries(options.topics ?? {})) createTopic(name, topic)

    const fatal = (reason: Fatal["reason"], topic: string, message: string) => new Fatal({ reason, topic, message })

    // Validates a whole send first (all-or-nothing), choosing each record's partition.
    const plan = (records: ReadonlyArray<ProducerRecord>): Plan => {
      const targets: Array<readonly [TopicState, number]> = []
      for (const record of records) {
        const problem = topicNameProblem(record.topic)
        if (problem) return { ok: false, error: fatal("InvalidTopic", record.topic, problem) }
        if (isUnauthorized(record.topic)) {
          return {
            ok: false,
            error: fatal("TopicAuthorizationFailed", record.topic, "Not authorized to access topics")
          }
        }
        let topic = topics.get(record.topic)
        if (topic === undefined) {
          if (!autoCreate) {
            return { ok: false, error: fatal("UnknownTopic", record.topic, `unknown topic ${record.topic}`) }
          }
          topic = createTopic(record.topic, { partitions: defaultPartitions })
        }
        const partition =
          record.partition ??
          partitioner({
            topic: record.topic,
            partitionMetadata: topic.partitionMetadata,
            message: { key: record.key === null ? null : Buffer.from(record.key), value: null }
          })
        if (partition < 0 || partition >= topic.partitions.length) {
          const error = new Retriable({
            reason: "UnknownTopicOrPartition",
            ambiguous: false,
            topic: record.topic,
            partition,
            message: `This server does not host this topic-partition (${record.topic}-${partition})`
          })
          return { ok: false, error }
        }
        if (recordSize(record) + batchOverhead > topic.maxMessageBytes) {
          const error = new Fatal({
            reason: "RecordTooLarge",
            topic: record.topic,
            partition,
            message: `The record is larger than the topic's max.message.bytes (${topic.maxMessageBytes})`
          })
          return { ok: false, error }
        }
        targets.push([topic, partition])
      }
      return { ok: true, targets }
    }

    const append = (
      records: ReadonlyArray<ProducerRecord>,
      targets: ReadonlyArray<readonly [TopicState, number]>,
      now: number
    ): Array<RecordMetadata> => {
      const metadata: Array<RecordMetadata> = new Array(records.length)
      for (let i = 0; i < records.length; i++) {
        const record = records[i]!
        const [topic, partition] = targets[i]!
        const log = topic.partitions[partition]!
        const offset = String(log.length)
        const timestamp = record.timestamp ?? now
        log.push({
          topic: record.topic,
          partition,
          offset,
          key: record.key,
          value: record.value,
          headers: record.headers,
          timestamp
        })
        metadata[i] = { topic: record.topic, partition, offset, timestamp }
      }
      stored += records.length
      return metadata
    }

    // The broker's answer to one send, once any pause or latency is over.
    const answer = (records: ReadonlyArray<ProducerRecord>) =>
      Effect.clockWith((clock) =>
        Effect.suspend((): Effect.Effect<ReadonlyArray<RecordMetadata>, PublishError> => {
          const injected = failures.shift()
          if (injected !== undefined) return Effect.fail(typeof injected === "function" ? injected(records) : injected)
          const planned = plan(records)
          if (!planned.ok) return Effect.fail(planned.error)
          const metadata = append(records, planned.targets, clock.currentTimeMillisUnsafe())
          if (lostAnswers > 0) {
            lostAnswers--
            return Effect.fail(
              new Retriable({
                reason: "RequestTimeout",
                ambiguous: true,
                topic: records[0]?.topic,
                message: "Request timed out (FakeKafka: written, answer lost)"
              })
            )
          }
          return Effect.succeed(metadata)
        })
      )

    const send = (records: ReadonlyArray<ProducerRecord>): Effect.Effect<ReadonlyArray<RecordMetadata>, PublishError> =>
      Effect.suspend(() => {
        sends++
        // fast path: no pause, no latency (benchmarks and most tests)
        if (running.isOpen() && Duration.isZero(latency)) return answer(records)
        inFlight++
        const wait = Duration.isZero(latency) ? running.await : Effect.andThen(running.await, Effect.sleep(latency))
        return wait.pipe(Effect.andThen(answer(records)), Effect.ensuring(Effect.sync(() => inFlight--)))
      })

    const records = (topic: string, opts?: { readonly partition?: number | undefined }) =>
      Effect.sync((): ReadonlyArray<StoredRecord> => {
        const state = topics.get(topic)
        if (state === undefined) return []
        if (opts?.partition !== undefined) return (state.partitions[opts.partition] ?? []).map(readBack)
        return state.partitions.flat().map(readBack)
      })

    const fake: FakeKafkaShape = {
      createTopic: (name, topic) =>
        Effect.sync(() => {
          if (!topics.has(name)) createTopic(name, topic)
        }),
      records,
      topics: Effect.sync(() => [...topics.keys()]),
      sendCount: Effect.sync(() => sends),
      recordCount: Effect.sync(() => stored),
      failNext: (n, error) =>
        Effect.sync(() => {
          for (let i = 0; i < n; i++) failures.push(error)
        }),
      loseNextAnswers: (n) =>
        Effect.sync(() => {
          lostAnswers += n
        }),
      pause: Effect.asVoid(running.close),
      resume: Effect.asVoid(running.open),
      setLatency: (input) =>
        Effect.sync(() => {
          latency = Duration.fromInputUnsafe(input)
        }),
      reset: Effect.gen(function* () {
        topics.clear()
        for (const [name, topic] of Object.entries(options.topics ?? {})) createTopic(name, topic)
        partitioner = kafkajs.Partitioners.DefaultPartitioner()
        sends = 0
        stored = 0
        failures.length = 0
        lostAnswers = 0
        latency = Duration.zero
        yield* running.open
      })
    }
    return { fake, producer: Producer.of({ send, inFlight: Effect.sync(() => inFlight) }) }
  })

/** Provides both the `Producer` (the in-memory driver) and `FakeKafka` (to inspect it and inject faults). */
export const layer = (options: Options = {}): Layer.Layer<Producer | FakeKafka> =>
  Layer.effectContext(
    Effect.map(make(options), ({ fake, producer }) =>
      Context.make(FakeKafka, fake).pipe(Context.add(Producer, producer))
    )
  )
