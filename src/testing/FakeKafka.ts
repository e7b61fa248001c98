/**
 * FakeKafka: an in-memory Kafka broker behind the driver-neutral `Producer` interface, for tests and for
 * running examples without a broker. It is meant to be honest: the contract suite runs the same tests on it
 * and on a real broker, so where Kafka and the kafkajs driver behave in a particular way, the fake does too.
 *
 * - Topics with partitions; offsets per partition start at 0 and are continuous.
 * - Partitions are chosen by the Java client's partitioner (`toPositive(murmur2(key)) % partitions`, the
 *   one kafkajs's default partitioner implements; round-robin per topic for records without a key), one
 *   instance per fake as the driver has one per producer. The fake imports no Kafka client.
 * - Metadata errors fail the whole send and write nothing, as kafkajs asks for the metadata of every topic
 *   of a send before it writes: an invalid topic name (Fatal InvalidTopic), an unauthorised topic (Fatal
 *   TopicAuthorizationFailed), an unknown topic with auto-creation off (Fatal UnknownTopic).
 * - A partition the topic does not have: its records are not written, the send's other partitions are
 *   (kafkajs drops such records and writes the rest), and the send fails Retriable
 *   UnknownTopicOrPartition, ambiguous when something was written.
 * - Size: kafkajs writes the records of one send for one partition as one record batch, and the broker
 *   rejects a batch larger than the topic's `max.message.bytes` (Fatal RecordTooLarge). The fake computes
 *   the batch's size as kafkajs encodes it (record format v2, uncompressed), so the limit falls on the same
 *   byte as on a real broker. Like a real broker it appends the other partitions' batches of that send.
 * - A failed send spanning partitions reports `outcomes` exactly: each record written (where) or
 *   "notWritten".
 * - Fault injection: fail the next sends, pause until resumed, added latency, "written but the answer was
 *   lost" (the records are appended, then the send fails ambiguously: a resend duplicates them, as a resend
 *   by the application would on a real broker).
 * - Sends that overlap (latency, pause) keep the `Producer` contract's ordered-failure property: a send
 *   called before an earlier send returned a failure on a partition (`failNext`, a refused batch, a missing
 *   partition) is refused on that partition ("not written, to keep the order", Retriable, not ambiguous),
 *   and writes its other partitions. An injected failure hits the partitions the records would have gone to
 *   (a record without a key takes its round-robin turn, as a driver's request that failed did).
 *
 * - Transactions (`transactionalProducer`): records sent inside a transaction are in the log at once (a
 *   read_uncommitted reader sees them), and visible to a read_committed reader only once committed, aborted
 *   ones never; a read_committed reader stops at the first record of a transaction still open (the last
 *   stable offset), as a broker's fetch does. A second producer with the same transactional id aborts the
 *   first's open transaction and fences it (Fatal ProducerFenced on its next step); a transaction open longer
 *   than its timeout is aborted and its producer fenced, as the coordinator does. `loseNextCommitAnswer`
 *   commits and then fails ambiguously; `pause` holds commits too.
 *
 * Time comes from Effect's `Clock`, so `TestClock` controls timestamps and latency. Records are stored as
 * given (their key, value and header bytes are not copied): do not reuse a buffer after sending it.
 *
 * @module
 */
import { Context, Duration, Effect, Latch, Layer } from "effect"
import { heldBack, spansPartitions, withOutcomes } from "../internal/outcomes.ts"
import * as Partitioner from "../internal/partitioner.ts"
import { partitionKey } from "../internal/receipts.ts"
import { type Headers, Producer, type ProducerRecord, type RecordMetadata } from "../Producer.ts"
import { Fatal, type PublishError, Retriable } from "../PublishError.ts"
import type { ReadRecord } from "../reader/TopicReader.ts"
import {
  TransactionalProducer,
  type TransactionConfig,
  type TransactionHandle,
  transactionTimeoutOf
} from "../TransactionalProducer.ts"

/** How a topic is created. */
export interface TopicOptions {
  /** Number of partitions, at least 1. */
  readonly partitions: number
  /** The topic's `max.message.bytes`. Default: the fake's `maxMessageBytes`. */
  readonly maxMessageBytes?: number | undefined
}

/** How the fake broker is configured; every field has the default of a stock Kafka broker. */
export interface Options {
  /** Create unknown topics on first use (a broker's `auto.create.topics.enable`). Default true. */
  readonly autoCreateTopics?: boolean | undefined
  /** Partitions of an auto-created topic (a broker's `num.partitions`). Default 1. */
  readonly defaultPartitions?: number | undefined
  /** Default `max.message.bytes` of a topic: 1048588, Kafka's `message.max.bytes`. */
  readonly maxMessageBytes?: number | undefined
  /** Topics the producer is not authorised to write to: names, or a predicate. */
  readonly unauthorizedTopics?: ReadonlyArray<string> | ((topic: string) => boolean) | undefined
  /** Topics that exist from the start (and again after `reset`). */
  readonly topics?: Readonly<Record<string, TopicOptions>> | undefined
}

/** The defaults of `Options`. */
export const defaults = {
  /** true, a broker's `auto.create.topics.enable`. */
  autoCreateTopics: true,
  /** 1, a broker's `num.partitions`. */
  defaultPartitions: 1,
  /** 1048588, a broker's `message.max.bytes`. */
  maxMessageBytes: 1_048_588
} as const

/**
 * A record as a consumer reads it back from the fake: the same type `TopicReader` reads from a real broker
 * (header values as bytes, as Kafka stores them).
 */
export type StoredRecord = ReadRecord

/** What `failNext` fails a send with: an error, or a function of the send's records. */
export type InjectedError = PublishError | ((records: ReadonlyArray<ProducerRecord>) => PublishError)

/** Which records a reader sees: all (`read_uncommitted`) or committed ones only (`read_committed`). */
export type Isolation = "read_committed" | "read_uncommitted"

/** The fake broker: its `Producer`, inspection and fault injection. */
export interface FakeKafkaShape {
  /** The in-memory driver (what `layer` provides as `Producer`). */
  readonly producer: Producer
  /**
   * Creates a topic, as an admin client would. An existing topic is left as it is. An invalid name fails
   * with Fatal InvalidTopic, a partition count below 1 with Fatal InvalidConfig.
   */
  readonly createTopic: (name: string, options: TopicOptions) => Effect.Effect<void, Fatal>
  /** Records of a topic, ordered by partition then offset (or of one partition). Unknown topic: none. */
  readonly records: (
    topic: string,
    options?: {
      readonly partition?: number | undefined
      /** Default `read_uncommitted`: every record written, transactional ones included. */
      readonly isolation?: Isolation | undefined
    }
  ) => Effect.Effect<ReadonlyArray<StoredRecord>>
  /**
   * A transactional producer with this id, as a driver's `make` returns: it fences every earlier producer of
   * the same id (aborting its open transaction).
   */
  readonly transactionalProducer: (config: TransactionConfig) => Effect.Effect<TransactionalProducer>
  /** The next `n` commits are applied, then fail with a Retriable, ambiguous `RequestTimeout`. */
  readonly loseNextCommitAnswers: (n: number) => Effect.Effect<void>
  /** Names of the topics that exist, in order of creation. */
  readonly topics: Effect.Effect<ReadonlyArray<string>>
  /** Send calls received, failed ones included (an attempt counter for retry tests). */
  readonly sendCount: Effect.Effect<number>
  /** Records stored, in every topic. */
  readonly recordCount: Effect.Effect<number>
  /** The next `n` sends fail with `error` and write nothing. */
  readonly failNext: (n: number, error: InjectedError) => Effect.Effect<void>
  /**
   * The next `n` sends that write their records lose their answer: the records are appended, then the
   * send fails with a Retriable, ambiguous `RequestTimeout`.
   */
  readonly loseNextAnswers: (n: number) => Effect.Effect<void>
  /** Sends wait (counted by `inFlight`) until `resume`; nothing is written meanwhile. */
  readonly pause: Effect.Effect<void>
  /** Lets paused sends, and later ones, through. */
  readonly resume: Effect.Effect<void>
  /** Every send answers this much later (`Effect.sleep`: `TestClock` moves it). Zero: no delay. */
  readonly setLatency: (latency: Duration.Input) => Effect.Effect<void>
  /** Back to the state `make` built: topics, records, counters and faults cleared, paused sends resumed. */
  readonly reset: Effect.Effect<void>
}

/** The fake broker as a service, for inspection and fault injection in tests. */
export class FakeKafka extends Context.Service<FakeKafka, FakeKafkaShape>()(
  "effect-kafka-publisher/testing/FakeKafka"
) {}

/** One partition's log, plus the batch the current send builds for it. */
interface PartitionLog {
  readonly topic: string
  readonly partition: number
  readonly maxMessageBytes: number
  /** The records as given, and where each was written (`records[i]` is at offset `i`). */
  readonly records: Array<ProducerRecord>
  readonly written: Array<RecordMetadata>
  /** The transaction each record was written in (`undefined`: none, always visible). */
  readonly txns: Array<Txn | undefined>
  /** The send whose batch the fields below describe (sends are numbered). */
  batchOf: number
  batchCount: number
  batchBytes: number
  batchFirstTimestamp: number
}

/** One transaction, as the coordinator sees it. */
interface Txn {
  state: "open" | "committed" | "aborted"
  readonly startedAt: number
  readonly transactionalId: string
}

/** A send some of whose partitions were not written: its error, and those partitions. */
interface Refused {
  readonly error: PublishError
  readonly notWritten: ReadonlySet<string>
}

interface TopicState {
  readonly name: string
  readonly partitions: ReadonlyArray<PartitionLog>
}

/**
 * Builds a fake broker. Invalid `options` (a bad initial topic, a partition count below 1) are a defect:
 * they are a bug in the test, not a broker's answer.
 */
export const make = (options: Options = {}): Effect.Effect<FakeKafkaShape> =>
  Effect.gen(function* () {
    const autoCreate = options.autoCreateTopics ?? defaults.autoCreateTopics
    const defaultPartitions = options.defaultPartitions ?? defaults.defaultPartitions
    const brokerMaxMessageBytes = options.maxMessageBytes ?? defaults.maxMessageBytes
    const isUnauthorized = unauthorizedPredicate(options.unauthorizedTopics)
    if (!isPositiveInteger(defaultPartitions)) {
      return yield* Effect.die(new RangeError(`FakeKafka: defaultPartitions must be >= 1, got ${defaultPartitions}`))
    }

    const topics = new Map<string, TopicState>()
    let partitioner = Partitioner.make()
    let sends = 0
    let stored = 0
    let inFlight = 0
    let sendId = 0
    let latency = Duration.zero
    const failures: Array<{ remaining: number; readonly error: InjectedError }> = []
    let lostAnswers = 0
    let lostCommitAnswers = 0
    // the transaction the current (synchronous) write belongs to
    let writingIn: Txn | undefined
    const epochs = new Map<string, number>()
    const openTxns = new Map<string, { readonly txn: Txn; readonly timeoutMillis: number }>()
    const running = yield* Latch.make(true)

    const addTopic = (name: string, topic: TopicOptions): TopicState | Fatal => {
      const problem = topicNameProblem(name)
      if (problem !== undefined) return invalidTopic(name, problem)
      if (!isPositiveInteger(topic.partitions)) {
        return new Fatal({
          reason: "InvalidConfig",
          topic: name,
          message: `Number of partitions must be larger than 0 (got ${topic.partitions})`
        })
      }
      const maxMessageBytes = topic.maxMessageBytes ?? brokerMaxMessageBytes
      const state: TopicState = {
        name,
        partitions: Array.from({ length: topic.partitions }, (_, partition) => ({
          topic: name,
          partition,
          maxMessageBytes,
          records: [],
          written: [],
          txns: [],
          batchOf: 0,
          batchCount: 0,
          batchBytes: 0,
          batchFirstTimestamp: 0
        }))
      }
      topics.set(name, state)
      return state
    }

    const addInitialTopics = (): Fatal | undefined => {
      for (const [name, topic] of Object.entries(options.topics ?? {})) {
        const added = addTopic(name, topic)
        if (added instanceof Fatal) return added
      }
      return undefined
    }
    const initialProblem = addInitialTopics()
    if (initialProblem !== undefined) return yield* Effect.die(initialProblem)

    // The topic a record goes to, as the metadata request answers it (and auto-creates it).
    const topicFor = (name: string): TopicState | Fatal => {
      if (isUnauthorized(name)) {
        return new Fatal({
          reason: "TopicAuthorizationFailed",
          topic: name,
          message: `Not authorized to access topics: [Topic authorization failed] (${name})`
        })
      }
      const existing = topics.get(name)
      if (existing !== undefined) return existing
      const problem = topicNameProblem(name)
      if (problem !== undefined) return invalidTopic(name, problem)
      if (!autoCreate) {
        return new Fatal({
          reason: "UnknownTopic",
          topic: name,
          message: `This server does not host this topic-partition (${name}; auto-creation is off)`
        })
      }
      return addTopic(name, { partitions: defaultPartitions })
    }

    /**
     * Writes one send, synchronously (so sends never interleave). Metadata errors write nothing; a partition
     * the topic does not have and a batch over its topic's limit are refused while the send's other batches
     * are appended, as kafkajs and a broker do.
     */
    const write = (
      records: ReadonlyArray<ProducerRecord>,
      createTime: number,
      heldBy: (key: string) => PublishError | undefined
    ): Array<RecordMetadata> | Refused => {
      const send = ++sendId
      // 1. metadata and partitions (a missing partition leaves its slot undefined)
      const logs: Array<PartitionLog | undefined> = new Array(records.length)
      const partitions: Array<number> = new Array(records.length)
      const batches: Array<PartitionLog> = []
      let topic: TopicState | undefined
      for (let i = 0; i < records.length; i++) {
        const record = records[i]!
        if (topic?.name !== record.topic) {
          const found = topicFor(record.topic)
          if (found instanceof Fatal) return { error: found, notWritten: new Set() }
          topic = found
        }
        const partition = record.partition ?? partitioner.partition(topic.name, record.key, topic.partitions.length)
        partitions[i] = partition
        const log = topic.partitions[partition]
        logs[i] = log
        if (log !== undefined) startBatch(log, send, record.timestamp ?? createTime, batches)
      }
      // 2. each batch's size, as kafkajs encodes it
      for (let i = 0; i < records.length; i++) {
        const log = logs[i]
        if (log === undefined) continue
        const timestampDelta = (records[i]!.timestamp ?? createTime) - log.batchFirstTimestamp
        log.batchBytes += recordBytes(records[i]!, log.batchCount++, timestampDelta)
      }
      // 3. append every accepted batch, in input order, but for the partitions an earlier failed send holds
      const outcomes: Array<RecordMetadata | "notWritten"> = new Array(records.length)
      const notWritten = new Set<string>()
      let held: { readonly earlier: PublishError; readonly index: number } | undefined
      for (let i = 0; i < records.length; i++) {
        const log = logs[i]
        const key = partitionKey(records[i]!.topic, partitions[i]!)
        const earlier = log === undefined ? undefined : heldBy(key)
        if (earlier !== undefined) held ??= { earlier, index: i }
        if (log === undefined || log.batchBytes > log.maxMessageBytes || earlier !== undefined) {
          outcomes[i] = "notWritten"
          notWritten.add(key)
        } else outcomes[i] = append(log, records[i]!, createTime)
      }
      const placements = records.map((record, i) => ({ topic: record.topic, partition: partitions[i]! }))
      const spans = spansPartitions(placements)
      const failure =
        refusal(records, partitions, logs, batches, outcomes) ??
        (held === undefined
          ? undefined
          : heldBack(held.earlier, {
              ambiguous: outcomes.some((o) => o !== "notWritten"),
              topic: records[held.index]!.topic,
              partition: spans ? undefined : partitions[held.index]
            }))
      if (failure === undefined) return outcomes as Array<RecordMetadata>
      return { error: spans ? withOutcomes(failure, outcomes) : failure, notWritten }
    }

    const startBatch = (log: PartitionLog, send: number, timestamp: number, batches: Array<PartitionLog>) => {
      // each partition's batch starts at its smallest timestamp (kafkajs)
      if (log.batchOf !== send) {
        log.batchOf = send
        log.batchCount = 0
        log.batchBytes = recordBatchOverhead
        log.batchFirstTimestamp = timestamp
        batches.push(log)
      } else if (timestamp < log.batchFirstTimestamp) {
        log.batchFirstTimestamp = timestamp
      }
    }

    const append = (log: PartitionLog, record: ProducerRecord, createTime: number): RecordMetadata => {
      const written: RecordMetadata = {
        topic: log.topic,
        partition: log.partition,
        offset: String(log.records.length),
        timestamp: record.timestamp ?? createTime
      }
      log.records.push(record)
      log.written.push(written)
      log.txns.push(writingIn)
      stored++
      return written
    }

    /** The send's error, if a part was refused: a batch too large (as the broker answers), else a missing partition. */
    const refusal = (
      records: ReadonlyArray<ProducerRecord>,
      partitions: ReadonlyArray<number>,
      logs: ReadonlyArray<PartitionLog | undefined>,
      batches: ReadonlyArray<PartitionLog>,
      outcomes: ReadonlyArray<RecordMetadata | "notWritten">
    ): PublishError | undefined => {
      const rejected = batches.find((log) => log.batchBytes > log.maxMessageBytes)
      if (rejected !== undefined) {
        return new Fatal({
          reason: "RecordTooLarge",
          topic: rejected.topic,
          partition: rejected.partition,
          message:
            "The request included a message larger than the max message size the server will accept " +
            `(${rejected.topic}-${rejected.partition}: a record batch of ${rejected.batchBytes} bytes, ` +
            `max.message.bytes ${rejected.maxMessageBytes})`
        })
      }
      const missing = logs.indexOf(undefined)
      if (missing < 0) return undefined
      const topic = records[missing]!.topic
      const partition = partitions[missing]!
      return new Retriable({
        reason: "UnknownTopicOrPartition",
        ambiguous: outcomes.some((o) => o !== "notWritten"), // the send's other partitions were written
        topic,
        partition,
        message: `This server does not host this topic-partition (${topic}-${partition})`
      })
    }

    const nextInjected = (): InjectedError | undefined => {
      const next = failures[0]
      if (next === undefined) return undefined
      if (--next.remaining <= 0) failures.shift()
      return next.error
    }

    // The ordered-failure property (`Producer`): a send answered while an earlier send that failed on one of
    // its partitions was still in flight (or not yet returned) is refused there. Only a send that waited
    // (latency, pause) can fail while a later one is in flight: those are numbered and tracked.
    const overlapping: Array<{
      readonly id: number
      doneAt: number | undefined
      readonly failed: Map<string, PublishError>
    }> = []
    let calls = 0
    const heldFor =
      (id: number) =>
      (key: string): PublishError | undefined => {
        for (const send of overlapping)
          if (send.id < id && (send.doneAt === undefined || id <= send.doneAt)) {
            const error = send.failed.get(key)
            if (error !== undefined) return error
          }
        return undefined
      }
    const failedOn = (id: number, keys: Iterable<string>, error: PublishError) => {
      const send = overlapping.find((s) => s.id === id)
      if (send !== undefined) for (const key of keys) send.failed.set(key, error)
    }
    // the partitions an injected failure hits: where the records would have gone (an unknown topic: none)
    const partitionsOf = (records: ReadonlyArray<ProducerRecord>) =>
      records.flatMap((record) => {
        const topic = topics.get(record.topic)
        if (topic === undefined) return []
        const partition = record.partition ?? partitioner.partition(topic.name, record.key, topic.partitions.length)
        return [partitionKey(record.topic, partition)]
      })

    // The broker's answer, once any pause or latency is over (`id`: a send that waited, numbered).
    const answer = (
      records: ReadonlyArray<ProducerRecord>,
      createTime: number,
      txn: Txn | undefined,
      id: number
    ): Effect.Effect<ReadonlyArray<RecordMetadata>, PublishError> => {
      const injected = nextInjected()
      if (injected !== undefined) {
        const error = typeof injected === "function" ? injected(records) : injected
        if (txn === undefined) failedOn(id, partitionsOf(records), error)
        return Effect.fail(error)
      }
      writingIn = txn
      const written = write(records, createTime, txn === undefined ? heldFor(id) : () => undefined)
      writingIn = undefined
      if (!Array.isArray(written)) {
        failedOn(id, written.notWritten, written.error)
        return Effect.fail(written.error)
      }
      if (lostAnswers > 0) {
        lostAnswers--
        return Effect.fail(
          new Retriable({
            reason: "RequestTimeout",
            ambiguous: true,
            topic: records[0]!.topic,
            message: "The request timed out (FakeKafka: the records were written, the answer was lost)"
          })
        )
      }
      return Effect.succeed(written)
    }

    const send = (
      records: ReadonlyArray<ProducerRecord>,
      txn?: Txn
    ): Effect.Effect<ReadonlyArray<RecordMetadata>, PublishError> =>
      Effect.clockWith((clock) => {
        sends++
        // kafkajs sends nothing for no records, so nothing can fail or wait
        if (records.length === 0) return Effect.succeed([])
        // CreateTime: the driver stamps records when the send starts, not when the broker answers
        const createTime = clock.currentTimeMillisUnsafe()
        const id = ++calls
        // answered at once: it returns before any later send is called, so it overlaps none
        if (running.isOpen() && Duration.isZero(latency)) return answer(records, createTime, txn, id)
        inFlight++
        const tracked = { id, doneAt: undefined as number | undefined, failed: new Map<string, PublishError>() }
        overlapping.push(tracked)
        const wait = Duration.isZero(latency) ? running.await : Effect.andThen(Effect.sleep(latency), running.await)
        return wait.pipe(
          Effect.andThen(Effect.suspend(() => answer(records, createTime, txn, id))),
          Effect.ensuring(
            Effect.sync(() => {
              inFlight--
              tracked.doneAt = calls
              // a returned send holds nothing once no send called before it returned is still waiting
              for (let i = overlapping.length - 1; i >= 0; i--) {
                const { id: from, doneAt: to, failed } = overlapping[i]!
                if (to === undefined) continue
                if (failed.size === 0 || !overlapping.some((s) => s.doneAt === undefined && s.id > from && s.id <= to))
                  overlapping.splice(i, 1)
              }
            })
          )
        )
      })

    // The coordinator aborts transactions open past their timeout and fences their producer.
    const expire = (now: number) => {
      for (const [id, open] of openTxns) {
        if (now - open.txn.startedAt > open.timeoutMillis) {
          open.txn.state = "aborted"
          openTxns.delete(id)
          epochs.set(id, (epochs.get(id) ?? 0) + 1)
        }
      }
    }

    const transactionalProducer = (config: TransactionConfig): Effect.Effect<TransactionalProducer> =>
      Effect.sync(() => {
        const id = config.transactionalId
        const timeoutMillis = Duration.toMillis(transactionTimeoutOf(config))
        // InitProducerId: a new epoch, the previous producer's open transaction aborted
        const epoch = (epochs.get(id) ?? 0) + 1
        epochs.set(id, epoch)
        const previous = openTxns.get(id)
        if (previous !== undefined) previous.txn.state = "aborted"
        openTxns.delete(id)
        const fenced = () =>
          new Fatal({
            reason: "ProducerFenced",
            message: `There is a newer producer with the same transactionalId (${id}) which fences the current one`
          })
        // every step first lets the coordinator expire transactions, then checks the epoch
        const step = <A>(f: (now: number) => Effect.Effect<A, PublishError>) =>
          Effect.clockWith((clock) => {
            const now = clock.currentTimeMillisUnsafe()
            expire(now)
            return epochs.get(id) === epoch ? f(now) : Effect.fail(fenced())
          })
        const handleFor = (txn: Txn): TransactionHandle => {
          const end = (state: "committed" | "aborted") =>
            step(() => {
              if (txn.state !== "open") return Effect.fail(fenced())
              txn.state = state
              openTxns.delete(id)
              if (state === "committed" && lostCommitAnswers > 0) {
                lostCommitAnswers--
                return Effect.fail(
                  new Retriable({
                    reason: "RequestTimeout",
                    ambiguous: true,
                    message: "The request timed out (FakeKafka: the commit was applied, the answer was lost)"
                  })
                )
              }
              return Effect.void
            })
          return {
            send: (records) => step(() => (txn.state === "open" ? send(records, txn) : Effect.fail(fenced()))),
            commit: Effect.andThen(running.await, end("committed")),
            abort: end("aborted")
          }
        }
        return TransactionalProducer.of({
          transactionalId: id,
          begin: step((now) => {
            if (openTxns.has(id)) {
              return Effect.fail(
                new Fatal({
                  reason: "TransactionAborted",
                  message: `Transaction ${id} is already open (one at a time)`
                })
              )
            }
            const txn: Txn = { state: "open", startedAt: now, transactionalId: id }
            openTxns.set(id, { txn, timeoutMillis })
            return Effect.succeed(handleFor(txn))
          })
        })
      })

    const records = (
      topic: string,
      opts?: { readonly partition?: number | undefined; readonly isolation?: Isolation | undefined }
    ) =>
      Effect.clockWith((clock) => {
        expire(clock.currentTimeMillisUnsafe())
        return readRecords(topic, opts)
      })

    const readRecords = (
      topic: string,
      opts?: { readonly partition?: number | undefined; readonly isolation?: Isolation | undefined }
    ) =>
      Effect.sync((): ReadonlyArray<StoredRecord> => {
        const committedOnly = opts?.isolation === "read_committed"
        const state = topics.get(topic)
        if (state === undefined) return []
        const logs = opts?.partition === undefined ? state.partitions : [state.partitions[opts.partition]]
        const out: Array<StoredRecord> = []
        for (const log of logs) {
          if (log === undefined) continue
          for (let i = 0; i < log.records.length; i++) {
            const txn = log.txns[i]
            if (committedOnly && txn?.state === "open") break // the last stable offset
            if (committedOnly && txn?.state === "aborted") continue
            out.push(readBack(log.records[i]!, log.written[i]!))
          }
        }
        return out
      })

    return {
      producer: Producer.of({ send, inFlight: Effect.sync(() => inFlight) }),
      createTopic: (name, topic) =>
        Effect.suspend(() => {
          if (topics.has(name)) return Effect.void
          const added = addTopic(name, topic)
          return added instanceof Fatal ? Effect.fail(added) : Effect.void
        }),
      records,
      transactionalProducer,
      loseNextCommitAnswers: (n) =>
        Effect.sync(() => {
          lostCommitAnswers += Math.max(0, n)
        }),
      topics: Effect.sync(() => [...topics.keys()]),
      sendCount: Effect.sync(() => sends),
      recordCount: Effect.sync(() => stored),
      failNext: (n, error) =>
        Effect.sync(() => {
          if (n > 0) failures.push({ remaining: n, error })
        }),
      loseNextAnswers: (n) =>
        Effect.sync(() => {
          lostAnswers += Math.max(0, n)
        }),
      pause: Effect.asVoid(running.close),
      resume: Effect.asVoid(running.open),
      setLatency: (input) =>
        Effect.sync(() => {
          latency = Duration.fromInputUnsafe(input)
        }),
      reset: Effect.suspend(() => {
        topics.clear()
        addInitialTopics()
        partitioner = Partitioner.make()
        sends = 0
        stored = 0
        failures.length = 0
        lostAnswers = 0
        lostCommitAnswers = 0
        epochs.clear()
        openTxns.clear()
        latency = Duration.zero
        for (const send of overlapping) send.failed.clear()
        return Effect.asVoid(running.open)
      })
    }
  })

/** A `TransactionalProducer` of the `FakeKafka` in context (each build fences the previous one of the same id). */
export const layerTransactional = (config: TransactionConfig): Layer.Layer<TransactionalProducer, never, FakeKafka> =>
  Layer.effect(
    TransactionalProducer,
    Effect.gen(function* () {
      const fake = yield* FakeKafka
      return yield* fake.transactionalProducer(config)
    })
  )

/** Provides both the `Producer` (the in-memory driver) and `FakeKafka` (to inspect it and inject faults). */
export const layer = (options: Options = {}): Layer.Layer<Producer | FakeKafka> =>
  Layer.effectContext(
    Effect.map(make(options), (fake) => Context.make(FakeKafka, fake).pipe(Context.add(Producer, fake.producer)))
  )

// --- topic names ---------------------------------------------------------------------------------------

const legalTopicName = /^[a-zA-Z0-9._-]+$/

/** Kafka's rules for topic names (`org.apache.kafka.common.internals.Topic.validate`). */
const topicNameProblem = (name: string): string | undefined => {
  if (name.length === 0) return "the topic name is empty"
  if (name === "." || name === "..") return `"${name}" is not a legal topic name`
  if (name.length > 249) return `the topic name is ${name.length} characters long, the maximum is 249`
  if (!legalTopicName.test(name)) return `"${name}" has characters other than ASCII letters, digits, '.', '_' and '-'`
  return undefined
}

const invalidTopic = (name: string, problem: string) =>
  new Fatal({
    reason: "InvalidTopic",
    topic: name,
    message: `The request attempted to perform an operation on an invalid topic (${problem})`
  })

const unauthorizedPredicate = (topics: Options["unauthorizedTopics"]): ((topic: string) => boolean) => {
  if (topics === undefined) return () => false
  if (typeof topics === "function") return topics
  const names = new Set(topics)
  return (topic) => names.has(topic)
}

const isPositiveInteger = (n: number) => Number.isInteger(n) && n >= 1

// --- record batch size (Kafka record format v2, as kafkajs 2.2.4 encodes it, uncompressed) -----------

/** Base offset, length, leader epoch, magic, CRC, attributes, last offset delta, timestamps, producer. */
const recordBatchOverhead = 61

/** Bytes of a zig-zag varint / varlong (exact below 2^52). */
const varintSize = (n: number): number => {
  let zigzag = n >= 0 ? n * 2 : -n * 2 - 1
  let size = 1
  while (zigzag >= 128) {
    zigzag = Math.floor(zigzag / 128)
    size++
  }
  return size
}

/** A length-prefixed byte field; null is the length -1 alone. */
const bytesFieldSize = (bytes: Uint8Array | null): number =>
  bytes === null ? 1 : varintSize(bytes.byteLength) + bytes.byteLength

const headersSize = (headers: Headers): number => {
  let count = 0
  let size = 0
  for (const name in headers) {
    const value = headers[name]!
    const nameBytes = Buffer.byteLength(name)
    const valueBytes = typeof value === "string" ? Buffer.byteLength(value) : value.byteLength
    size += varintSize(nameBytes) + nameBytes + varintSize(valueBytes) + valueBytes
    count++
  }
  return varintSize(count) + size
}

/** A record's bytes inside its batch: length, attributes, deltas, key, value, headers. */
const recordBytes = (record: ProducerRecord, offsetDelta: number, timestampDelta: number): number => {
  const body =
    1 +
    varintSize(timestampDelta) +
    varintSize(offsetDelta) +
    bytesFieldSize(record.key) +
    bytesFieldSize(record.value) +
    headersSize(record.headers)
  return varintSize(body) + body
}

// --- reading back ------------------------------------------------------------------------------------

const textEncoder = new TextEncoder()

const readBack = (record: ProducerRecord, written: RecordMetadata): StoredRecord => {
  const headers: Record<string, Uint8Array> = {}
  for (const name in record.headers) {
    const value = record.headers[name]!
    headers[name] = typeof value === "string" ? textEncoder.encode(value) : value
  }
  return {
    topic: written.topic,
    partition: written.partition,
    offset: written.offset,
    key: record.key,
    value: record.value,
    headers,
    timestamp: written.timestamp
  }
}
