/**
 * The kafkajs driver: the `Producer` service over kafkajs 2.2.4.
 *
 * Defaults follow the Java client where they mean the same thing: `acks=all`, idempotence on, request
 * timeout 30 s. The delivery timeout (120 s) bounds a whole publish and lives in `Publisher`.
 *
 * The layer is scoped: acquiring it connects (a broker that cannot be reached fails the layer with a typed
 * error); releasing it waits for the sends in flight, then disconnects.
 *
 * Receipts: kafkajs answers one base offset per partition (none at all with `acks: "none"`: every receipt
 * then has offset "-1", as the Java client reports). The driver records which partition the
 * partitioner chose for each record (kafkajs's own Java-compatible murmur2 partitioner) and derives each
 * record's offset from its place in the partition's batch. The choice is sticky per record, so a
 * kafkajs-internal retry never moves a key-less record to another partition.
 *
 * Idempotence and failures (measured, see the broker-crash test): kafkajs keeps one sequence number per
 * partition and rolls it back when a request fails, not knowing whether the broker wrote it. With several
 * sends in flight, the next send then reuses the numbers of a batch the broker did write: the broker takes
 * it for a duplicate and answers success without writing it (a record lost behind a "delivered" receipt),
 * while the first batch, retried with new numbers, is written twice. So, with idempotence on:
 * - sends run one at a time, each to its end, kafkajs's own retries (same sequence numbers, so the broker
 *   drops a copy it already has) included; throughput comes from batching (`Batcher`), not from many
 *   concurrent single-record requests;
 * - after a failed send the next send starts a new producer session (new producer id, fresh sequence
 *   numbers), so nothing can collide with a batch of unknown fate; a send whose caller gave up while that
 *   session was being set up is not sent;
 * - the sends queued behind a failed one (called before its caller had the failure) are not sent: they fail
 *   Retriable, not ambiguous, "not written, to keep the order", as the `Producer` contract's ordered-failure
 *   property asks (`SendQueue`'s keepOrder). Run on a new session, they would be written ahead of the
 *   failed send's records, which its caller sends again later.
 *
 * So `maxInFlightRequests` does not apply to idempotent sends here (one at a time); without idempotence it
 * is kafkajs's own `maxInFlightRequests`.
 *
 * A failed send of records in several partitions reports `outcomes` "unknown" for every record: kafkajs
 * fails the whole request when one partition's answer is an error, and the broker may have appended the
 * other partitions' batches. Not when the failure certainly came before anything was written (the request
 * never reached kafkajs's produce step, an unknown or invalid topic, authentication), nor when kafkajs
 * answered some partitions and dropped a partition the topic does not have (those are exact).
 *
 * @module
 */
import { type Config, Duration, Effect, Layer, Redacted, type Scope } from "effect"
import kafkajs from "kafkajs"
import { toBuffer } from "../internal/bytes.ts"
import { millis } from "../internal/duration.ts"
import { heldBack, spansPartitions, withOutcomes } from "../internal/outcomes.ts"
import { offsetsFromBase, type Placement, partitionKey } from "../internal/receipts.ts"
import * as SendQueue from "../internal/sendQueue.ts"
import { failedSend } from "../internal/transactionalSends.ts"
import { Producer, type ProducerRecord, type RecordMetadata } from "../Producer.ts"
import * as ProducerConfig from "../ProducerConfig.ts"
import { type PublishError, Retriable } from "../PublishError.ts"
import {
  TransactionalProducer,
  type TransactionConfig,
  type TransactionHandle,
  transactionTimeoutOf
} from "../TransactionalProducer.ts"
import { onEachBroker } from "./brokerHook.ts"
import { codecFor } from "./compressionCodecs.ts"
import { retryAddPartitionsQuickly } from "./concurrentTransactions.ts"
import { toPublishError, vocabulary } from "./KafkaJsErrors.ts"
import { guardProduceRetries } from "./produceRetries.ts"

export type { Acks, DriverRetry, Sasl, SaslMechanism } from "../ProducerConfig.ts"

/** The driver-neutral settings (`ProducerConfig`) and the kafkajs driver's own. */
export interface KafkaJsConfig extends ProducerConfig.ProducerConfig {
  /** After a failed reconnect, sends fail at once for this long. Default 1 s (Java: reconnect.backoff.ms). */
  readonly reconnectBackoff?: Duration.Input | undefined
  /** kafkajs's own log output (to stdout). Default "nothing": failures reach you as typed errors. */
  readonly clientLogLevel?: "nothing" | "error" | "warn" | "info" | "debug" | undefined
}

/** The defaults of `KafkaJsConfig`: `ProducerConfig.defaults` and `reconnectBackoff` 1 s. */
export const defaults = {
  ...ProducerConfig.defaults,
  /** 1 s (Java: reconnect.backoff.ms is 50 ms, growing to reconnect.backoff.max.ms 1 s). */
  reconnectBackoff: Duration.seconds(1)
} as const

const logLevels = {
  nothing: kafkajs.logLevel.NOTHING,
  error: kafkajs.logLevel.ERROR,
  warn: kafkajs.logLevel.WARN,
  info: kafkajs.logLevel.INFO,
  debug: kafkajs.logLevel.DEBUG
} as const

/** kafkajs writes only Buffer or string header values. */
const toHeaders = (headers: ProducerRecord["headers"]): kafkajs.IHeaders => {
  const out: kafkajs.IHeaders = {}
  for (const name in headers) {
    const value = headers[name]!
    out[name] = typeof value === "string" ? value : toBuffer(value)!
  }
  return out
}

/** kafkajs client options from the config. The password is unwrapped here and nowhere else. */
export const kafkaOptions = (config: KafkaJsConfig): kafkajs.KafkaConfig => {
  const sasl = config.sasl
  return {
    clientId: config.clientId ?? defaults.clientId,
    brokers: [...config.brokers],
    requestTimeout: millis(config.requestTimeout ?? defaults.requestTimeout),
    connectionTimeout: millis(config.connectionTimeout ?? defaults.connectionTimeout),
    logLevel: logLevels[config.clientLogLevel ?? "nothing"],
    ...(config.ssl === undefined ? {} : { ssl: config.ssl }),
    ...(sasl === undefined
      ? {}
      : {
          sasl: {
            mechanism: sasl.mechanism,
            username: sasl.username,
            password: Redacted.value(sasl.password)
          } as kafkajs.SASLOptions
        })
  }
}

// --- 1. settings -------------------------------------------------------------------------------------

/** The settings `make` works with, defaults filled in. */
interface Settings {
  readonly idempotent: boolean
  readonly acks: ProducerConfig.Acks
  readonly autoCreateTopics: boolean
  readonly requestTimeout: number
  readonly reconnectBackoff: number
  readonly compression: kafkajs.CompressionTypes
  readonly retry: ReturnType<typeof ProducerConfig.driverRetry>
}

/** Checks the config (idempotence needs acks=all; snappy needs its package) and fills in the defaults. */
const settingsOf = (config: KafkaJsConfig): Effect.Effect<Settings, PublishError> =>
  Effect.gen(function* () {
    yield* ProducerConfig.checkIdempotence(config)
    return {
      idempotent: config.idempotent ?? defaults.idempotent,
      acks: config.acks ?? defaults.acks,
      autoCreateTopics: config.autoCreateTopics ?? defaults.autoCreateTopics,
      requestTimeout: millis(config.requestTimeout ?? defaults.requestTimeout),
      reconnectBackoff: millis(config.reconnectBackoff ?? defaults.reconnectBackoff),
      compression: yield* codecFor(config.compression ?? defaults.compression),
      retry: ProducerConfig.driverRetry(config)
    }
  })

// --- 2. partitions -----------------------------------------------------------------------------------

/** kafkajs's default partitioner, remembering its choice per message object. */
interface StickyPartitioner {
  /** The partition chosen for each message, kept so offsets can be derived and retries are sticky. */
  readonly assigned: WeakMap<object, number>
  /** Messages whose (explicit) partition the topic's metadata did not have: kafkajs drops them, unanswered. */
  readonly absent: WeakSet<object>
  readonly create: kafkajs.ICustomPartitioner
}

const stickyPartitioner = (): StickyPartitioner => {
  const assigned = new WeakMap<object, number>()
  const absent = new WeakSet<object>()
  const create: kafkajs.ICustomPartitioner = () => {
    const inner = kafkajs.Partitioners.DefaultPartitioner()
    return (args) => {
      const previous = assigned.get(args.message)
      if (previous !== undefined && previous < args.partitionMetadata.length) return previous
      const partition = inner(args)
      assigned.set(args.message, partition)
      if (args.partitionMetadata.some((p) => p.partitionId === partition)) absent.delete(args.message)
      else absent.add(args.message)
      return partition
    }
  }
  return { assigned, absent, create }
}

/**
 * kafkajs answered a send in a way that hides what was written, seen in the cluster-faults suite (a leader
 * killed under sends spanning partitions on several brokers; traced produce request by request). A send to
 * several brokers is one request per broker under `Promise.all`, retried as a whole, each broker's answer
 * kept across the retries. A retry may send a partition again under the next sequence numbers although an
 * earlier request with it was written (seen: partition 2 written at sequence 552, offset 1246, then 6 s
 * later, in the same send, again at sequence 553, offset 1251; the answer listed it once, 1251): the broker
 * takes it for a new batch. It may also leave a partition out of the retry (its leader moved, or it had
 * none for a moment) and answer without it, its sequence number rolled back although the failed attempt may
 * have written it. The driver watches the produce requests of each idempotent send (`twice`: a partition
 * sent under more than one first sequence number) and the answer (listed twice, or `unanswered`): those
 * partitions' records are "unknown" (maybe written, maybe twice), and the session is retired (its sequence
 * numbers may be off the broker's). A resend under the same sequence number (kafkajs took it back after a
 * failure) is safe: the broker drops a copy it has.
 */
export class KafkaJsAnswerMismatch extends Error {
  /** "KafkaJsAnswerMismatch". */
  override readonly name = "KafkaJsAnswerMismatch"
  /** What kafkajs answered. */
  readonly response: ReadonlyArray<kafkajs.RecordMetadata>
  /** The partitions (topic NUL partition) kafkajs sent twice under new sequence numbers, or answered twice. */
  readonly twice: ReadonlySet<string>
  /** The partitions of the send kafkajs did not answer. */
  readonly unanswered: ReadonlySet<string>
  constructor(
    response: ReadonlyArray<kafkajs.RecordMetadata>,
    twice: ReadonlySet<string>,
    unanswered: ReadonlySet<string>
  ) {
    super(
      `kafkajs ${twice.size > 0 ? "sent a partition's batch twice" : "left a partition unanswered"} in a retry after a broker failure: its records may be written (twice)`
    )
    this.response = response
    this.twice = twice
    this.unanswered = unanswered
  }
}

/** What kafkajs did wrong in a send, if anything (see `KafkaJsAnswerMismatch`); `resent`: partitions sent twice. */
const mismatchOf = (
  request: kafkajs.ProducerBatch,
  response: ReadonlyArray<kafkajs.RecordMetadata>,
  p: StickyPartitioner,
  resent: ReadonlySet<string>
): KafkaJsAnswerMismatch | undefined => {
  const answered = new Set<string>()
  const twice = new Set<string>(resent)
  for (const r of response) {
    const key = partitionKey(r.topicName, r.partition)
    if (answered.has(key)) twice.add(key)
    answered.add(key)
  }
  const unanswered = new Set<string>()
  for (const { topic, messages } of request.topicMessages ?? [])
    for (const message of messages) {
      const partition = p.assigned.get(message)
      if (partition === undefined || p.absent.has(message)) continue
      const key = partitionKey(topic, partition)
      if (!answered.has(key)) unanswered.add(key)
    }
  return twice.size > 0 || unanswered.size > 0 ? new KafkaJsAnswerMismatch(response, twice, unanswered) : undefined
}

// --- 3. sessions -------------------------------------------------------------------------------------

interface Session {
  readonly producer: kafkajs.Producer
  /** A send failed on it: its sequence numbers may be wrong, the next send starts a new session. */
  failed: boolean
}

/** A produce request as kafkajs hands it to a broker (the fields the driver reads). */
interface ProduceRequest {
  readonly topicData: ReadonlyArray<{
    readonly topic: string
    readonly partitions: ReadonlyArray<{ readonly partition: number; readonly firstSequence?: number }>
  }>
}

/** One send's place in line (taken when the send is called) and its end. */
interface SessionTurn {
  readonly send: (request: kafkajs.ProducerBatch, signal: AbortSignal) => Promise<Array<kafkajs.RecordMetadata>>
  /** The caller has the send's answer (see `SendQueue`'s keepOrder). */
  readonly done: () => void
}

/** The kafkajs producers a driver sends on: one at a time, a new one after a failed idempotent send. */
interface Sessions {
  /** Takes a send's place in line, now. */
  readonly turn: () => SessionTurn
  /**
   * Failures of requests kafkajs was given (not of a reconnect before them). kafkajs reconnects inside its
   * send loop after losing a request in flight and, when that reconnect is refused, reports only the
   * refusal (KafkaJSNonRetriableError > KafkaJSConnectionError ECONNREFUSED): measured in the broker-crash
   * test, where the lost request had been written. Such a "connection refused" is ambiguous.
   */
  readonly sentThenFailed: WeakSet<object>
  readonly inFlight: () => number
  /** Waits for the sends in flight (bounded), then disconnects. */
  readonly close: Effect.Effect<void>
}

const makeSessions = (
  kafka: kafkajs.Kafka,
  settings: Settings,
  partitioner: StickyPartitioner,
  maxInFlight: number
): Effect.Effect<Sessions, PublishError> =>
  Effect.gen(function* () {
    const { idempotent, autoCreateTopics, retry } = settings
    const newSession = async (): Promise<Session> => {
      const producer = kafka.producer({
        idempotent,
        allowAutoTopicCreation: autoCreateTopics,
        createPartitioner: partitioner.create,
        retry,
        maxInFlightRequests: idempotent ? 1 : maxInFlight
      })
      await producer.connect()
      return { producer, failed: false }
    }
    // the first sequence numbers each partition was produced under during the current send, to see kafkajs
    // send a partition again under new numbers (KafkaJsAnswerMismatch). Idempotent sends only: they run one at
    // a time, so every produce request belongs to the send in flight (without idempotence kafkajs has no
    // numbers to compare, and any retry of its own may duplicate, as with the Java client)
    const produced = new Map<string, Set<number>>()
    if (idempotent)
      onEachBroker(kafka, (broker) => {
        const produce = (broker.produce as (request: ProduceRequest) => Promise<unknown>).bind(broker)
        broker.produce = (request: ProduceRequest) => {
          for (const t of request.topicData)
            for (const p of t.partitions) {
              const key = partitionKey(t.topic, p.partition)
              produced.set(key, (produced.get(key) ?? new Set()).add(p.firstSequence ?? 0))
            }
          return produce(request)
        }
      })
    /** Partitions written twice at worst: sent under two first sequence numbers in this send. */
    const resent = (): Set<string> =>
      new Set([...produced].filter(([, sequences]) => sequences.size > 1).map(([key]) => key))
    let session = yield* Effect.tryPromise({
      try: newSession,
      catch: (cause) => toPublishError(cause, { autoCreateTopics })
    })
    // Idempotent sends run one at a time, each to its end (kafkajs's own retries included), and a failed
    // send retires its session; the sends queued behind it are not sent (keepOrder): see the module comment.
    const queue = SendQueue.make(idempotent, { keepOrder: idempotent })
    const sentThenFailed = new WeakSet<object>()
    // After a failed reconnect, sends waiting in the queue fail at once for `reconnectBackoff` instead of
    // each spending a connection timeout on a broker that just refused (Java: reconnect.backoff.ms).
    let reconnectBlockedUntil = 0
    let reconnectError: unknown

    const renew = async () => {
      if (Date.now() < reconnectBlockedUntil) throw reconnectError
      const old = session
      try {
        session = await newSession()
      } catch (error) {
        reconnectBlockedUntil = Date.now() + settings.reconnectBackoff
        reconnectError = error
        throw error
      }
      void old.producer.disconnect().catch(() => undefined)
    }

    const sendOnSession = async (request: kafkajs.ProducerBatch, signal: AbortSignal) => {
      if (session.failed) {
        await renew()
        // the caller may have given up while the new session connected: then nothing may go out
        if (signal.aborted) throw new SendQueue.SendCancelled()
      }
      const current = session
      produced.clear()
      try {
        const response = await current.producer.sendBatch(request)
        // acks=0 answers nothing at all
        const mismatch = settings.acks === "none" ? undefined : mismatchOf(request, response, partitioner, resent())
        if (mismatch !== undefined) throw mismatch
        return response
      } catch (error) {
        if (idempotent) current.failed = true
        sentThenFailed.add(error as object)
        throw error
      }
    }

    return {
      turn: () => {
        const turn = queue.turn()
        return { send: (request, signal) => turn.run(() => sendOnSession(request, signal), signal), done: turn.done }
      },
      sentThenFailed,
      inFlight: queue.inFlight,
      close: Effect.gen(function* () {
        // Publisher drains first; this waits for sends made directly on the Producer (bounded).
        yield* queue.drain(Duration.seconds(30))
        yield* Effect.promise(() => session.producer.disconnect().catch(() => undefined))
      })
    }
  })

// --- 4. one send -------------------------------------------------------------------------------------

/** The records of one send as kafkajs messages, and the request grouping them by topic. */
interface Batch {
  readonly records: ReadonlyArray<ProducerRecord>
  readonly messages: ReadonlyArray<kafkajs.Message & { readonly timestampMs: number }>
  readonly topicMessages: Array<kafkajs.TopicMessages>
}

const toBatch = (records: ReadonlyArray<ProducerRecord>, now: number): Batch => {
  const messages: Array<kafkajs.Message & { readonly timestampMs: number }> = []
  const byTopic = new Map<string, Array<kafkajs.Message>>()
  for (const record of records) {
    const timestampMs = record.timestamp ?? now
    const message = {
      key: toBuffer(record.key),
      value: toBuffer(record.value),
      headers: toHeaders(record.headers),
      timestamp: String(timestampMs),
      timestampMs,
      ...(record.partition === undefined ? {} : { partition: record.partition })
    }
    messages.push(message)
    const list = byTopic.get(record.topic)
    if (list) list.push(message)
    else byTopic.set(record.topic, [message])
  }
  return { records, messages, topicMessages: [...byTopic].map(([topic, list]) => ({ topic, messages: list })) }
}

/** Where each record went, or undefined when kafkajs never partitioned it (nothing was produced). */
const placementsOf = (batch: Batch, assigned: WeakMap<object, number>): Array<Placement> | undefined => {
  const placements: Array<Placement> = []
  for (let i = 0; i < batch.records.length; i++) {
    const partition = assigned.get(batch.messages[i]!) ?? batch.records[i]!.partition
    if (partition === undefined) return undefined
    placements.push({ topic: batch.records[i]!.topic, partition })
  }
  return placements
}

/** Failures that certainly came before anything was written (metadata, connection set-up). */
const beforeAnyWrite = new Set(["UnknownTopic", "InvalidTopic", "AuthenticationFailed", "UnsupportedVersion"])

/** The typed error of a failed send; a sent, multi-partition one says every record's fate is unknown. */
const failure = (
  cause: unknown,
  batch: Batch,
  settings: Settings,
  sessions: Sessions,
  p: StickyPartitioner
): PublishError => {
  if (cause instanceof KafkaJsAnswerMismatch) return mismatched(cause, batch, p)
  if (cause instanceof SendQueue.NotSentAfterFailure) {
    // queued behind a send that failed: not sent, certainly not written
    let earlier = cause.earlier
    while (earlier instanceof SendQueue.NotSentAfterFailure) earlier = earlier.earlier
    const topic = batch.records[0]!.topic
    return heldBack(toPublishError(earlier, { autoCreateTopics: settings.autoCreateTopics, topic }), {
      ambiguous: false,
      topic
    })
  }
  const sent = typeof cause === "object" && cause !== null && sessions.sentThenFailed.has(cause)
  const placements = placementsOf(batch, p.assigned)
  const error = toPublishError(cause, {
    autoCreateTopics: settings.autoCreateTopics,
    topic: batch.records[0]!.topic,
    partition: batch.records.length === 1 ? placements?.[0]?.partition : undefined,
    requestSent: sent
  })
  if (!sent || placements === undefined || !spansPartitions(placements) || beforeAnyWrite.has(error.reason)) {
    return error
  }
  return withOutcomes(
    error,
    placements.map(() => "unknown" as const)
  )
}

/**
 * The error of a send kafkajs answered wrongly (`KafkaJsAnswerMismatch`): Retriable, ambiguous; per record,
 * "unknown" on the partitions it answered twice or not at all, where the answer says on the others.
 */
const mismatched = (cause: KafkaJsAnswerMismatch, batch: Batch, p: StickyPartitioner): PublishError => {
  const placements = batch.records.map(
    (record, i): Placement => ({
      topic: record.topic,
      partition: p.assigned.get(batch.messages[i]!) ?? record.partition ?? 0
    })
  )
  const base = new Map<string, bigint>()
  for (const r of cause.response) base.set(partitionKey(r.topicName, r.partition), BigInt(r.baseOffset ?? "0"))
  const offsets = offsetsFromBase(placements, base)
  const error = new Retriable({
    reason: "Unknown",
    ambiguous: true,
    topic: placements[0]!.topic,
    message: cause.message,
    cause
  })
  if (!spansPartitions(placements)) return error
  return withOutcomes(
    error,
    placements.map((at, i) => {
      const key = partitionKey(at.topic, at.partition)
      const offset = offsets[i]
      return cause.twice.has(key) || cause.unanswered.has(key) || offset === undefined
        ? ("unknown" as const)
        : { ...at, offset, timestamp: batch.messages[i]!.timestampMs }
    })
  )
}

/**
 * One receipt per record from kafkajs's answer (a base offset per partition; nothing for acks=0). A record
 * whose partition kafkajs answered nothing for was dropped (the topic has no such partition): that must
 * not pass for a delivery.
 */
const receipts = (
  batch: Batch,
  response: ReadonlyArray<kafkajs.RecordMetadata>,
  settings: Settings,
  p: StickyPartitioner
): Effect.Effect<ReadonlyArray<RecordMetadata>, PublishError> => {
  const placements = batch.records.map(
    (record, i): Placement => ({
      topic: record.topic,
      partition: p.assigned.get(batch.messages[i]!) ?? record.partition ?? 0
    })
  )
  if (settings.acks === "none") {
    // no answer from the broker, so no offsets: "-1", as the Java client reports
    return Effect.succeed(
      placements.map((at, i) => ({ ...at, offset: "-1", timestamp: batch.messages[i]!.timestampMs }))
    )
  }
  const base = new Map<string, bigint>()
  const appendTimes = new Map<string, number>()
  for (const r of response) {
    base.set(partitionKey(r.topicName, r.partition), BigInt(r.baseOffset ?? "0"))
    appendTimes.set(partitionKey(r.topicName, r.partition), Number(r.logAppendTime ?? "-1"))
  }
  const offsets = offsetsFromBase(placements, base)
  const written = placements.map((at, i): RecordMetadata | undefined => {
    const offset = offsets[i]
    if (offset === undefined) return undefined
    const appendTime = appendTimes.get(partitionKey(at.topic, at.partition)) ?? -1
    return { ...at, offset, timestamp: appendTime >= 0 ? appendTime : batch.messages[i]!.timestampMs }
  })
  const unanswered = written.indexOf(undefined)
  if (unanswered < 0) return Effect.succeed(written as Array<RecordMetadata>)
  const at = placements[unanswered]!
  return Effect.fail(
    new Retriable({
      reason: "UnknownTopicOrPartition",
      ambiguous: base.size > 0, // other partitions of this send were written
      topic: at.topic,
      partition: at.partition,
      message: `the broker did not acknowledge ${at.topic}-${at.partition}: no such partition`,
      ...(spansPartitions(placements) ? { outcomes: written.map((m) => m ?? ("notWritten" as const)) } : {})
    })
  )
}

// --- the driver --------------------------------------------------------------------------------------

/** A scoped kafkajs `Producer`: connects now, drains and disconnects when the scope closes. */
export const make = (config: KafkaJsConfig): Effect.Effect<Producer, PublishError, Scope.Scope> =>
  Effect.gen(function* () {
    const settings = yield* settingsOf(config)
    const maxInFlight = yield* ProducerConfig.maxInFlightOf(config)
    const partitioner = stickyPartitioner()
    const kafka = new kafkajs.Kafka(kafkaOptions(config))
    // kafkajs would resend records whose first Produce is still in flight when another broker's fails, under new
    // sequence numbers: written twice (see produceRetries.ts); the session's watch below catches what is left
    if (settings.idempotent) guardProduceRetries(kafka)
    const sessions = yield* makeSessions(kafka, settings, partitioner, maxInFlight)
    yield* Effect.addFinalizer(() => sessions.close)

    const send = (records: ReadonlyArray<ProducerRecord>): Effect.Effect<ReadonlyArray<RecordMetadata>, PublishError> =>
      Effect.suspend(() => {
        if (records.length === 0) return Effect.succeed([])
        const batch = toBatch(records, Date.now())
        const request = {
          acks: ProducerConfig.acksValue[settings.acks],
          timeout: settings.requestTimeout,
          compression: settings.compression,
          topicMessages: batch.topicMessages
        }
        const turn = sessions.turn()
        return Effect.tryPromise({
          try: (signal) => turn.send(request, signal),
          catch: (cause) => failure(cause, batch, settings, sessions, partitioner)
        }).pipe(
          Effect.flatMap((response) => receipts(batch, response, settings, partitioner)),
          Effect.ensuring(Effect.sync(turn.done))
        )
      })

    return Producer.of({ send, inFlight: Effect.sync(sessions.inFlight) })
  })

/** The kafkajs `Producer` layer (see `make`). */
export const layer = (config: KafkaJsConfig): Layer.Layer<Producer, PublishError> =>
  Layer.effect(Producer, make(config))

/** The settings from the environment: see `ProducerConfig.config` for the variables. */
export const config: Config.Config<KafkaJsConfig> = ProducerConfig.config

/** The kafkajs `Producer` layer, configured from the environment (see `config`); `overrides` win. */
export const layerConfig = (
  overrides: Partial<KafkaJsConfig> = {}
): Layer.Layer<Producer, PublishError | Config.ConfigError> => ProducerConfig.layerConfig(make, overrides)

// --- transactions ------------------------------------------------------------------------------------

/** The settings of a transactional kafkajs producer: the driver's, plus the transaction's. */
export interface KafkaJsTransactionalConfig extends KafkaJsConfig, TransactionConfig {}

/**
 * A scoped kafkajs `TransactionalProducer` (kafkajs `producer.transaction()`): connects now and initialises
 * its producer id with an empty transaction (InitProducerId, which fences every earlier producer of the same
 * `transactionalId`), disconnects when the scope closes. Idempotent, acks=all and one request in flight, as kafkajs requires for transactions. Its
 * errors are classified as the driver's sends are (`KafkaJsErrors`): PRODUCER_FENCED / INVALID_PRODUCER_EPOCH
 * Fatal ProducerFenced, CONCURRENT_TRANSACTIONS / COORDINATOR_LOAD_IN_PROGRESS Retriable CoordinatorBusy.
 * An AddPartitionsToTxn answered CONCURRENT_TRANSACTIONS (the previous transaction's markers still being
 * written) is retried after 20 ms first, as the Java client does (`concurrentTransactions.ts`).
 *
 * kafkajs leaves a producer whose commit or abort failed in its COMMITTING / ABORTING state for good: it
 * allows neither a second try nor a new transaction ("Cannot call beginTransaction in state COMMITTING").
 * The next `begin` therefore replaces such a producer with a new one, whose InitProducerId makes the
 * coordinator end the old transaction first (a commit it had begun completes, an open transaction aborts),
 * as the Java client's answer to such an error is to close the producer and make a new one. The same after a
 * send inside the transaction failed: kafkajs's sequence numbers may no longer match the broker's
 * (`internal/transactionalSends.ts`), and a Produce of the failed send can still be on its way (kafkajs retries a
 * send while parts of the previous attempt wait for a broker lock); the new producer's epoch starts the numbering
 * again, and the broker refuses whatever the old one still sends. (kafkajs's InitProducerId, v1, cannot name the
 * epoch it held, so the new producer fences any other of the id, as a restarted process would.) A fenced
 * producer is not replaced: the new one would fence the producer that fenced it.
 */
export const makeTransactional = (
  config: KafkaJsTransactionalConfig
): Effect.Effect<TransactionalProducer, PublishError, Scope.Scope> =>
  Effect.gen(function* () {
    const settings = yield* settingsOf({ ...config, idempotent: true, acks: "all" })
    const partitioner = stickyPartitioner()
    const context = { autoCreateTopics: settings.autoCreateTopics }
    const kafka = new kafkajs.Kafka(kafkaOptions(config))
    retryAddPartitionsQuickly(kafka)
    // kafkajs would resend records whose first Produce is still in flight when another broker's fails, with new
    // sequence numbers: written twice inside the transaction (see produceRetries.ts)
    guardProduceRetries(kafka)
    const newProducer = () =>
      kafka.producer({
        transactionalId: config.transactionalId,
        transactionTimeout: Duration.toMillis(transactionTimeoutOf(config)),
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: settings.autoCreateTopics,
        createPartitioner: partitioner.create,
        retry: settings.retry
      })
    const connect = (producer: kafkajs.Producer) =>
      Effect.tryPromise({ try: () => producer.connect(), catch: (cause) => toPublishError(cause, context) })
    // kafkajs asks for its producer id at its first transaction, not on connect: an empty transaction now
    // (its abort sends nothing) makes the coordinator fence every earlier producer of the id at once
    const initialise = (producer: kafkajs.Producer) =>
      Effect.tryPromise({
        try: async () => (await producer.transaction()).abort(),
        catch: (cause) => toPublishError(cause, context)
      })
    const disconnect = (producer: kafkajs.Producer) =>
      Effect.promise(() => producer.disconnect().catch(() => undefined))
    let producer = newProducer()
    // set when a commit, an abort or a send failed (not fenced): kafkajs cannot go on with this producer
    let stuck = false
    // a fencing: every later begin fails with it (kafkajs cannot ask the coordinator whether to go on)
    let fenced: PublishError | undefined
    yield* Effect.acquireRelease(connect(producer), () => disconnect(producer))
    yield* initialise(producer)
    const replaceIfStuck = Effect.suspend(() => {
      if (!stuck) return Effect.void
      const old = producer
      producer = newProducer()
      // the transaction begun right after asks for the new producer's id
      return Effect.andThen(disconnect(old), connect(producer)).pipe(
        Effect.tap(() =>
          Effect.sync(() => {
            stuck = false
          })
        )
      )
    })
    const step = (run: () => Promise<unknown>, requestSent: boolean) =>
      Effect.asVoid(
        Effect.tryPromise({ try: run, catch: (cause) => toPublishError(cause, { ...context, requestSent }) })
      )
    // kafkajs sends EndTxn once, after it found the coordinator: a failure before (coordinator not found,
    // connection refused) sent nothing, and a lost EndTxn is a timeout or a closed connection, ambiguous by
    // their own rows. A failed commit or abort leaves kafkajs in COMMITTING / ABORTING (see above).
    const end = (run: () => Promise<unknown>) =>
      step(run, false).pipe(
        Effect.tapError((error) =>
          Effect.sync(() => {
            if (error.reason === "ProducerFenced") fenced ??= error
            else stuck = true
          })
        )
      )
    // One send at a time, each to its end, as for the idempotent producer: kafkajs locks per broker, not per
    // partition, and takes back a failed request's sequence numbers, so two sends in flight across a leader
    // change (the Publisher's sends inside a transaction run concurrently) could reuse or skip numbers. (The
    // records written twice inside a transaction had another cause: kafkajs's retry within one send, which
    // guardProduceRetries answers.)
    const sends = SendQueue.make(true)
    const handleFor = (transaction: kafkajs.Transaction): TransactionHandle => ({
      send: (records) =>
        Effect.suspend(() => {
          if (records.length === 0) return Effect.succeed([])
          const batch = toBatch(records, Date.now())
          return Effect.tryPromise({
            try: (signal) =>
              sends.run(
                () =>
                  transaction.sendBatch({
                    acks: -1,
                    timeout: settings.requestTimeout,
                    compression: settings.compression,
                    topicMessages: batch.topicMessages
                  }),
                signal
              ),
            catch: (cause) => toPublishError(cause, { ...context, topic: records[0]!.topic, requestSent: true })
          }).pipe(
            Effect.flatMap((response) => receipts(batch, response, settings, partitioner)),
            // a partition kafkajs left unanswered fails here too (its retry regrouped the partitions)
            Effect.mapError((error) => {
              const read = failedSend(error, vocabulary)
              if (read.fenced) fenced ??= read.error
              else stuck = true
              return read.error
            })
          )
        }),
      commit: end(() => transaction.commit()),
      abort: end(() => transaction.abort())
    })
    return TransactionalProducer.of({
      transactionalId: config.transactionalId,
      begin: Effect.suspend(() => (fenced === undefined ? replaceIfStuck : Effect.fail(fenced))).pipe(
        Effect.andThen(
          Effect.tryPromise({ try: () => producer.transaction(), catch: (cause) => toPublishError(cause, context) })
        ),
        Effect.map(handleFor)
      )
    })
  })

/** The transactional kafkajs layer (see `makeTransactional`). */
export const layerTransactional = (
  config: KafkaJsTransactionalConfig
): Layer.Layer<TransactionalProducer, PublishError> => Layer.effect(TransactionalProducer, makeTransactional(config))
