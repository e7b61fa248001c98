/**
 * The @platformatic/kafka driver: the `Producer` service over @platformatic/kafka 2.x, a pure TypeScript
 * client that encodes and sends faster than kafkajs (see the benchmark in the README). Same settings
 * (`ProducerConfig`), same contract, same error classification as `KafkaJsProducer`; kafkajs stays the
 * default driver.
 *
 * The layer is scoped: acquiring it reaches the cluster (for an idempotent producer it also asks for a
 * producer id, which proves the IDEMPOTENT_WRITE right), so an unreachable broker or a bad password fails
 * the layer with a typed error; releasing it waits for the send in flight, then closes. One difference from
 * kafkajs: when a password stops working later (rotated credentials), the client retries the refused
 * connection with its backoff (about 3 s with the default `retry`) before the send fails, Fatal
 * `AuthenticationFailed`.
 *
 * Partitions: the driver places every record itself, on the Java client's partitioner (murmur2 of the key,
 * `toPositive(hash) % partitions`; round-robin without a key), from the client's cached topic metadata. So
 * keys land where kafkajs and the Java client put them (the client's own default partitioner uses another
 * mask and would move them), an explicit partition the topic does not have fails instead of being wrapped
 * around by the client's `partition % count`, each receipt knows its partition, and a retry inside the
 * client never moves a record.
 *
 * Requests in flight, idempotence and failures: sends go through the driver's own `PipelinedSender`, not
 * the client's `send` (which clears its sequence numbers while other sends are in flight and resends a
 * batch under new numbers: see that module). Up to `maxInFlightRequests` (default 5) produce requests are in
 * flight per broker, one batch per partition in each; sequence numbers follow the order `send` was called.
 * A partition has more than one batch in flight only once the broker acknowledged a write of the session on
 * it, and never without idempotence (nothing on the broker would keep the order then).
 * A failed batch is sent again (after the others in flight settled, the retry backoff and fresh metadata)
 * with the same producer id and sequence numbers, so the broker drops a copy it already wrote; when its
 * retries (`retry`) are spent, or the failure cannot be retried, it fails, the later batches of its
 * partition fail with it (never written ahead of it), and a new producer session starts before anything
 * new is sent. A send that fails partly is ambiguous when another partition of it was written or may have
 * been, and when it spans partitions its `outcomes` say record by record what the sender knows: written
 * (with the offset), "notWritten", or "unknown" (an attempt may have written it).
 *
 * @module
 */
import {
  Producer as Client,
  findErrorBy,
  type MessageToProduce,
  ProduceAcks,
  type ProduceResult
} from "@platformatic/kafka"
import { type Config, Duration, Effect, Exit, Layer, Option, Redacted, type Scope } from "effect"
import type { ErrorLike } from "../ErrorClassification.ts"
import { toBuffer } from "../internal/bytes.ts"
import { errorName, retryDelayMillis } from "../internal/concurrentTransactions.ts"
import { millis } from "../internal/duration.ts"
import { heldBack, spansPartitions, withOutcomes } from "../internal/outcomes.ts"
import * as Partitioner from "../internal/partitioner.ts"
import { offsetsFromBase, partitionKey } from "../internal/receipts.ts"
import * as SendQueue from "../internal/sendQueue.ts"
import { failedSend } from "../internal/transactionalSends.ts"
import { Producer, type ProducerRecord, type RecordMetadata } from "../Producer.ts"
import * as ProducerConfig from "../ProducerConfig.ts"
import { Fatal, type PublishError, Retriable } from "../PublishError.ts"
import * as RetryPolicy from "../RetryPolicy.ts"
import {
  TransactionalProducer,
  type TransactionConfig,
  type TransactionHandle,
  transactionTimeoutOf
} from "../TransactionalProducer.ts"
import type { Failure, RecordFate, Session, Settled } from "./PipelinedSender.ts"
import * as PipelinedSender from "./PipelinedSender.ts"
import { classify, toPublishError, vocabulary } from "./PlatformaticErrors.ts"

/** The driver-neutral settings (`ProducerConfig`) and this driver's own. */
export interface PlatformaticConfig extends ProducerConfig.ProducerConfig {
  /**
   * How long cached topic metadata (partition counts, leaders) is used before it is fetched again. Default
   * 5 minutes (Java: metadata.max.age.ms); a leader change refreshes it sooner. The client's own 5 s put a
   * metadata round trip in front of a send every 5 s: the p99 of a steady 1,000 events/s.
   */
  readonly metadataMaxAge?: Duration.Input | undefined
}

/** The defaults of `PlatformaticConfig`: `ProducerConfig.defaults` and `metadataMaxAge` 5 minutes. */
export const defaults = {
  ...ProducerConfig.defaults,
  /** 5 minutes (Java: metadata.max.age.ms). */
  metadataMaxAge: Duration.minutes(5)
} as const

const saslMechanisms = { plain: "PLAIN", "scram-sha-256": "SCRAM-SHA-256", "scram-sha-512": "SCRAM-SHA-512" } as const

const acksValue = { all: ProduceAcks.ALL, leader: ProduceAcks.LEADER, none: ProduceAcks.NO_RESPONSE } as const

/** The client writes header names and values as given: both must be bytes. No headers: no Map. */
const toHeaders = (headers: ProducerRecord["headers"]): Map<Buffer, Buffer> | undefined => {
  let out: Map<Buffer, Buffer> | undefined
  for (const name in headers) {
    const value = headers[name]!
    out ??= new Map()
    out.set(Buffer.from(name), typeof value === "string" ? Buffer.from(value) : toBuffer(value)!)
  }
  return out
}

/**
 * Client options from the config. The password is handed over as a function, so it sits in no options object.
 *
 * @internal
 */
export const clientOptions = (config: PlatformaticConfig) => {
  const idempotent = config.idempotent ?? defaults.idempotent
  const requestTimeout = millis(config.requestTimeout ?? defaults.requestTimeout)
  const retry = ProducerConfig.driverRetry(config)
  const sasl = config.sasl
  return {
    clientId: config.clientId ?? defaults.clientId,
    bootstrapBrokers: [...config.brokers],
    idempotent,
    acks: acksValue[config.acks ?? defaults.acks],
    // the broker waits this long for the replicas (the produce request's timeout), the client as long for the answer
    timeout: requestTimeout,
    requestTimeout,
    connectTimeout: millis(config.connectionTimeout ?? defaults.connectionTimeout),
    retries: retry.retries,
    // exponential with kafkajs's 20 % jitter, capped after the jitter so the cap is the longest wait
    retryDelay: (_client: unknown, _operation: string, attempt: number) =>
      Math.min(retry.maxRetryTime, retry.initialRetryTime * 2 ** (attempt - 1) * (0.8 + Math.random() * 0.4)),
    autocreateTopics: config.autoCreateTopics ?? defaults.autoCreateTopics,
    compression: config.compression ?? defaults.compression,
    metadataMaxAge: millis(config.metadataMaxAge ?? defaults.metadataMaxAge),
    ...(config.ssl === true ? { tls: {} } : {}),
    ...(sasl === undefined
      ? {}
      : {
          sasl: {
            mechanism: saslMechanisms[sasl.mechanism],
            username: sasl.username,
            password: () => Redacted.value(sasl.password)
          }
        })
  }
}

// --- 1. the client -----------------------------------------------------------------------------------

/**
 * A client that has reached the cluster, closed with the scope. The client retries a failed connection
 * whatever the reason, a refused password too (it reads `canRetry` on the connection error only, not on
 * the authentication error inside it), so this first contact makes no retries of its own and only a
 * Retriable failure is tried again. An idempotent producer also asks for its producer id now, which proves
 * the IDEMPOTENT_WRITE right: the session the sender starts with.
 *
 * The driver sends through its own `PipelinedSender`, not the client's `send`, so the client is made
 * without its idempotence (which would allow one request per connection) and with room for
 * `maxInFlight` requests per connection; producer id and sequence numbers are the sender's.
 */
const connect = (
  config: PlatformaticConfig,
  maxInFlight: number
): Effect.Effect<{ readonly client: Client; readonly session: Session | undefined }, PublishError, Scope.Scope> =>
  Effect.gen(function* () {
    const classifyContext = { autoCreateTopics: config.autoCreateTopics ?? defaults.autoCreateTopics }
    const client = yield* Effect.acquireRelease(
      Effect.sync(() => new Client({ ...clientOptions(config), idempotent: false, maxInflights: maxInFlight })),
      (client) => Effect.promise(() => client.close(true).catch(() => undefined))
    )
    const retry = ProducerConfig.driverRetry(config)
    yield* Effect.tryPromise({
      try: () => client.metadata({ topics: [], retries: 0 }),
      catch: (cause) => toPublishError(cause, classifyContext)
    }).pipe(
      Effect.retry(
        RetryPolicy.make({
          initialDelay: retry.initialRetryTime,
          maxDelay: retry.maxRetryTime,
          maxAttempts: retry.retries + 1
        })
      )
    )
    if (!(config.idempotent ?? defaults.idempotent)) return { client, session: undefined }
    const info = yield* Effect.tryPromise({
      try: () => client.initIdempotentProducer({}),
      catch: (cause) => toPublishError(cause, classifyContext)
    })
    return { client, session: { producerId: info.producerId, producerEpoch: info.producerEpoch } }
  })

// --- 2. placing records ------------------------------------------------------------------------------

type Message = {
  topic: string
  partition: number
  key: Buffer | undefined
  value: Buffer | undefined
  headers: Map<Buffer, Buffer> | undefined
  timestamp: bigint
}

/** The records of one send, each on its partition, and the timestamps receipts report. */
interface Placed {
  readonly messages: Array<Message>
  readonly timestamps: ReadonlyArray<number>
}

/** Partition counts of the topics, from the client's metadata cache (fetched again when older than metadataMaxAge). */
const partitionCounts = (
  client: Client,
  topics: ReadonlyArray<string>,
  autoCreateTopics: boolean,
  forceUpdate: boolean
): Effect.Effect<ReadonlyMap<string, number>, PublishError> =>
  Effect.tryPromise({
    // a copy: the client sorts the list it is given
    try: () => client.metadata({ topics: [...topics], autocreateTopics: autoCreateTopics, forceUpdate }),
    catch: (cause) => toPublishError(cause, { autoCreateTopics, topic: topics[0] })
  }).pipe(
    Effect.map((metadata) => new Map(topics.map((topic) => [topic, metadata.topics.get(topic)?.partitionsCount ?? 0])))
  )

/** Places every record on a partition (the Java client's partitioner); or the first record whose partition the topic does not have. */
const place = (
  records: ReadonlyArray<ProducerRecord>,
  counts: ReadonlyMap<string, number>,
  partitioner: Partitioner.Partitioner
): Placed | ProducerRecord => {
  const now = Date.now()
  const messages: Array<Message> = []
  const timestamps: Array<number> = []
  for (const record of records) {
    const count = counts.get(record.topic) ?? 0
    const partition = record.partition ?? partitioner.partition(record.topic, record.key, count)
    if (!(partition >= 0 && partition < count)) return record
    const timestamp = record.timestamp ?? now
    timestamps.push(timestamp)
    messages.push({
      topic: record.topic,
      partition,
      key: toBuffer(record.key) ?? undefined,
      value: toBuffer(record.value) ?? undefined,
      headers: toHeaders(record.headers),
      timestamp: BigInt(timestamp)
    })
  }
  return { messages, timestamps }
}

/** Places the records, looking at fresh metadata once when a partition is beyond the cached count. */
const placeAll = (
  client: Client,
  records: ReadonlyArray<ProducerRecord>,
  autoCreateTopics: boolean,
  partitioner: Partitioner.Partitioner
): Effect.Effect<Placed, PublishError> =>
  Effect.gen(function* () {
    const topics = [...new Set(records.map((record) => record.topic))]
    let placed = place(records, yield* partitionCounts(client, topics, autoCreateTopics, false), partitioner)
    // a partition beyond the cached count: the topic may have grown since, look once more
    if (!("messages" in placed))
      placed = place(records, yield* partitionCounts(client, topics, autoCreateTopics, true), partitioner)
    if ("messages" in placed) return placed
    return yield* new Retriable({
      reason: "UnknownTopicOrPartition",
      ambiguous: false,
      topic: placed.topic,
      partition: placed.partition,
      message: `${placed.topic} has no partition ${placed.partition}: nothing was sent`
    })
  })

// --- 3. answers --------------------------------------------------------------------------------------

/** Base offsets by topic-partition from the client's result. */
const baseOffsets = (result: ProduceResult | undefined): Map<string, bigint> => {
  const base = new Map<string, bigint>()
  for (const o of result?.offsets ?? []) base.set(partitionKey(o.topic, o.partition), o.offset)
  return base
}

/** One receipt per record: offsets from the base offsets; "-1" with acks=0, as the Java client reports. */
const receipts = (
  placed: Placed,
  result: ProduceResult,
  acks: ProducerConfig.Acks
): Effect.Effect<ReadonlyArray<RecordMetadata>, PublishError> => {
  const at = (m: Message, i: number, offset: string): RecordMetadata => ({
    topic: m.topic,
    partition: m.partition,
    offset,
    timestamp: placed.timestamps[i]!
  })
  if (acks === "none") return Effect.succeed(placed.messages.map((m, i) => at(m, i, "-1")))
  const offsets = offsetsFromBase(placed.messages, baseOffsets(result))
  const missing = offsets.indexOf(undefined)
  if (missing >= 0) {
    const m = placed.messages[missing]!
    return Effect.fail(
      new Retriable({
        reason: "Unknown",
        ambiguous: true,
        topic: m.topic,
        partition: m.partition,
        message: `the broker answered no offset for ${m.topic}-${m.partition}: the records may have been written`
      })
    )
  }
  return Effect.succeed(placed.messages.map((m, i) => at(m, i, offsets[i]!)))
}

/**
 * The typed error of a failed send. `error.produced` lists the partitions some broker wrote: the send is
 * then ambiguous, and a send spanning partitions says per record what is known.
 */
const failure = (cause: unknown, placed: Placed, autoCreateTopics: boolean): PublishError => {
  const produced = (cause as { produced?: ProduceResult } | undefined)?.produced
  const base = baseOffsets(produced)
  const error = toPublishError(cause, {
    autoCreateTopics,
    topic: placed.messages[0]!.topic,
    partition: placed.messages.length === 1 ? placed.messages[0]!.partition : undefined,
    // another broker wrote its part of this send: resending all of it may duplicate that part
    partlyWritten: base.size > 0
  })
  // no `produced`: the client failed before it sent (metadata), the error applies to every record
  if (produced === undefined || !spansPartitions(placed.messages)) return error
  const offsets = offsetsFromBase(placed.messages, base)
  return withOutcomes(
    error,
    placed.messages.map((m, i) => {
      const offset = offsets[i]
      return offset === undefined
        ? ("unknown" as const)
        : { topic: m.topic, partition: m.partition, offset, timestamp: placed.timestamps[i]! }
    })
  )
}

// --- the driver --------------------------------------------------------------------------------------

/** One receipt per record from the sender's answer (offset "-1" with acks=0, as the Java client reports). */
const receiptsOf = (placed: Placed, fates: ReadonlyArray<RecordFate>): Array<RecordMetadata> =>
  placed.messages.map((m, i) => ({
    topic: m.topic,
    partition: m.partition,
    offset: String(fates[i] as bigint),
    timestamp: placed.timestamps[i]!
  }))

/**
 * The typed error of a send some of whose records failed (`Settled.failures`, by first record): the first
 * batch that failed on its own decides (classified from all its attempts' errors, `toPublishError`), or,
 * when every failed batch was held back behind an earlier send's failure, a `heldBack` error. Ambiguous
 * exactly when a record's fate is unknown or another partition of the send was written. A send spanning
 * partitions says per record what became of it (`outcomes`).
 */
const sendFailure = (placed: Placed, settled: Settled, autoCreateTopics: boolean): PublishError => {
  const { failures, fates } = settled
  const spans = spansPartitions(placed.messages)
  const partlyWritten = fates.some((fate) => typeof fate === "bigint")
  const ambiguous = partlyWritten || fates.includes("unknown")
  const failure = failures.find((f) => f.behind === undefined) ?? failures[0]!
  const fields = { topic: failure.topic, partition: spans ? undefined : failure.partition }
  const error =
    failure.behind === undefined
      ? exactly(toPublishError(attempts(failure), { autoCreateTopics, ...fields, partlyWritten }), ambiguous)
      : heldBack(rootError(failure.behind, autoCreateTopics), { ambiguous, ...fields })
  // every record alike (nothing written, all certainly not or all maybe): the error says it without outcomes
  if (!spans || fates.every((fate) => fate === fates[0])) return error
  return withOutcomes(
    error,
    placed.messages.map((m, i) => {
      const fate = fates[i]!
      return typeof fate === "bigint"
        ? { topic: m.topic, partition: m.partition, offset: String(fate), timestamp: placed.timestamps[i]! }
        : fate
    })
  )
}

/** A batch's failed attempts as one cause (the classification reads them all: any ambiguous one counts). */
const attempts = (failure: Failure): unknown =>
  failure.errors.length === 1 ? failure.errors[0] : new AggregateError(failure.errors, "produce failed")

/** The error of the batch whose failure held the others back. */
const rootError = (failure: Failure, autoCreateTopics: boolean): PublishError => {
  let root = failure
  while (root.behind !== undefined) root = root.behind
  return toPublishError(attempts(root), { autoCreateTopics, topic: root.topic, partition: root.partition })
}

/** A retriable error ambiguous exactly as the sender knows the records' fate (not as its errors guess it). */
const exactly = (error: PublishError, ambiguous: boolean): PublishError =>
  error._tag === "Retriable" && error.ambiguous !== ambiguous
    ? new Retriable({
        reason: error.reason,
        ambiguous,
        message: error.message,
        cause: error.cause,
        ...(error.topic === undefined ? {} : { topic: error.topic }),
        ...(error.partition === undefined ? {} : { partition: error.partition })
      })
    : error

/**
 * A scoped @platformatic/kafka `Producer`: reaches the cluster now, drains and closes when the scope closes.
 * Sends go through a `PipelinedSender`: up to `maxInFlightRequests` produce requests in flight per broker.
 */
export const make = (config: PlatformaticConfig): Effect.Effect<Producer, PublishError, Scope.Scope> =>
  Effect.gen(function* () {
    yield* ProducerConfig.checkIdempotence(config)
    const maxInFlight = yield* ProducerConfig.maxInFlightOf(config)
    const acks = config.acks ?? defaults.acks
    const autoCreateTopics = config.autoCreateTopics ?? defaults.autoCreateTopics
    const idempotent = config.idempotent ?? defaults.idempotent
    const { client, session } = yield* connect(config, maxInFlight)
    const partitioner = Partitioner.make()
    const options = clientOptions(config)
    const context = { autoCreateTopics }
    const sender = PipelinedSender.make<Message>(
      PipelinedSender.clientWire(client, {
        acks: acksValue[acks],
        timeout: options.timeout,
        compression: options.compression,
        autoCreateTopics
      }),
      {
        idempotent,
        maxInFlight,
        retries: options.retries,
        retryDelay: (attempt) => options.retryDelay(client, "produce", attempt),
        classify: (error) => classify(error, context),
        protocolName: (error) =>
          typeof error === "object" && error !== null ? vocabulary.protocolName(error as ErrorLike) : undefined,
        session
      }
    )
    // Publisher drains first; this waits for sends made directly on the Producer (bounded), then the client
    // is closed by its own finalizer
    yield* Effect.addFinalizer(() =>
      SendQueue.idle(sender.inFlight).pipe(
        Effect.timeoutOption(Duration.seconds(30)),
        Effect.andThen(Effect.sync(sender.close))
      )
    )

    const send = (records: ReadonlyArray<ProducerRecord>): Effect.Effect<ReadonlyArray<RecordMetadata>, PublishError> =>
      Effect.suspend(() => {
        if (records.length === 0) return Effect.succeed([])
        // the send's place in line is taken now, before its records are placed (an async metadata look-up)
        const turn = sender.turn()
        return placeAll(client, records, autoCreateTopics, partitioner).pipe(
          Effect.flatMap((placed) =>
            Effect.flatMap(
              Effect.promise(() => turn.send(placed.messages)),
              (settled): Effect.Effect<ReadonlyArray<RecordMetadata>, PublishError> =>
                settled.failures.length === 0
                  ? Effect.succeed(receiptsOf(placed, settled.fates))
                  : Effect.fail(sendFailure(placed, settled, autoCreateTopics))
            )
          ),
          Effect.ensuring(Effect.sync(turn.done))
        )
      })

    return Producer.of({ send, inFlight: Effect.sync(sender.inFlight) })
  })

/** The @platformatic/kafka `Producer` layer (see `make`). */
export const layer = (config: PlatformaticConfig): Layer.Layer<Producer, PublishError> =>
  Layer.effect(Producer, make(config))

/** The settings from the environment: see `ProducerConfig.config` for the variables. */
export const config: Config.Config<PlatformaticConfig> = ProducerConfig.config

/** The @platformatic/kafka `Producer` layer, configured from the environment (see `ProducerConfig.config`); `overrides` win. */
export const layerConfig = (
  overrides: Partial<PlatformaticConfig> = {}
): Layer.Layer<Producer, PublishError | Config.ConfigError> => ProducerConfig.layerConfig(make, overrides)

// --- transactions ------------------------------------------------------------------------------------

/** The settings of a transactional @platformatic/kafka producer: the driver's, plus the transaction's. */
export interface PlatformaticTransactionalConfig extends PlatformaticConfig, TransactionConfig {}

/** The first retries of AddPartitionsToTxn on CONCURRENT_TRANSACTIONS that wait only 20 ms. */
const quickRetries = 2

/**
 * The transactional client's retry wait: AddPartitionsToTxn answered CONCURRENT_TRANSACTIONS is retried
 * after 20 ms twice, as the Java client does (`internal/concurrentTransactions.ts`), then with the usual
 * backoff from its first step (the client counts these retries in `retries`, so the quick ones shorten the
 * longest wait for a busy coordinator by about the last step). Every other error waits as before.
 *
 * @internal
 */
export const quickAddPartitionsRetry =
  (usual: (client: unknown, operation: string, attempt: number) => number) =>
  (client: unknown, operation: string, attempt: number, _retries: number, error: Error): number => {
    if (operation !== "addPartitionsToTransaction" || findErrorBy(error, "apiId", errorName) === null) {
      return usual(client, operation, attempt)
    }
    return attempt <= quickRetries ? retryDelayMillis : usual(client, operation, attempt - quickRetries)
  }

/**
 * A scoped @platformatic/kafka `TransactionalProducer` (`producer.beginTransaction()`). Building it begins
 * and cancels an empty transaction, so the producer id is initialised (InitProducerId, which fences every
 * earlier producer of the same `transactionalId`) now rather than at the first transaction. The client
 * sends its `timeout` as the transaction timeout, so `transactionTimeout` is passed as that `timeout`
 * (it bounds the broker's wait for replicas too). Errors are classified as the driver's sends are.
 *
 * Some failures leave this client unable to go on as it is, and the next `begin` replaces it with a new one
 * (a new producer epoch: every partition's sequence numbers start again at 0):
 * - A send inside the transaction failed: the client's sequence numbers may no longer match the broker's
 *   (`internal/transactionalSends.ts`). The new client's InitProducerId names the producer id and epoch the
 *   failed transaction used (KIP-360, as the Java client's epoch bump after an abortable error), so the
 *   coordinator bumps the epoch only if no other producer took the id meanwhile.
 * - A commit or abort failed: the client holds that transaction (it refuses every later begin with "There is
 *   already an active transaction."), and forgetting it locally would let the next transaction continue it at
 *   the coordinator. The new client initialises as a new producer (-1 / -1): the coordinator aborts (or
 *   completes, for an ambiguous commit) whatever was open for the id first.
 * - PRODUCER_FENCED / INVALID_PRODUCER_EPOCH: either a newer producer took the id, or the coordinator aborted
 *   the transaction on its timeout and bumped the epoch itself. The driver asks the coordinator which, with an
 *   InitProducerId naming the epoch it held: a coordinator at `transaction.version` 2 (Kafka 4) accepts that
 *   after its own timeout bump (`TransactionMetadata.prepareAbortOrCommit` keeps the old epoch as the last
 *   one) and refuses it once another producer initialised. Accepted: the commit fails Fatal
 *   `TransactionAborted` (nothing of it is visible) and the producer goes on. Refused (a newer producer, or a
 *   Kafka 3.x coordinator, whose timeout abort forgets the old epoch, `endTransactionWithTV1`, so it cannot
 *   tell either), or no answer within 10 s: Fatal `ProducerFenced` from then on, and no new producer is started
 *   (it would fence the newer one).
 */
export const makeTransactional = (
  config: PlatformaticTransactionalConfig
): Effect.Effect<TransactionalProducer, PublishError, Scope.Scope> =>
  Effect.gen(function* () {
    const autoCreateTopics = config.autoCreateTopics ?? defaults.autoCreateTopics
    const context = { autoCreateTopics }
    const options = clientOptions({ ...config, idempotent: true, acks: "all" })
    // InitProducerId sends the client's configured id / epoch: -1 / -1 is "a new producer" (as the Java client's
    // initTransactions), which fences every other; the id and epoch this producer held is "the same producer,
    // going on" (KIP-360). The client's default, 0 / 0, is answered PRODUCER_FENCED for an id the coordinator knows.
    const open = (expected: Epoch | undefined) =>
      new Client({
        ...options,
        retryDelay: quickAddPartitionsRetry(options.retryDelay),
        transactionalId: config.transactionalId,
        timeout: millis(transactionTimeoutOf(config)),
        producerId: expected?.producerId ?? -1n,
        producerEpoch: expected?.producerEpoch ?? -1
      })
    // bounded: a connection's close waits for its socket's 'close' event (`destroySoon`), and a replaced client
    // is closed inside the commit that found the coordinator had aborted its transaction
    const close = (client: Client) =>
      Effect.promise(() => client.close(true).catch(() => undefined)).pipe(
        Effect.timeoutOption(closeTimeout),
        Effect.asVoid
      )
    let client = open(undefined)
    yield* Effect.addFinalizer(() => close(client))
    // what the next begin does first: nothing, or replace the client, whose InitProducerId names `expected`
    // (the epoch this producer held) or, without it, starts a new producer (see the notes above)
    let renewal: { readonly expected: Epoch | undefined } | undefined
    let fenced: PublishError | undefined
    const partitioner = Partitioner.make()
    const beginOn = (owner: Client) =>
      Effect.tryPromise({ try: () => owner.beginTransaction(), catch: (cause) => toPublishError(cause, context) })
    const step = (run: () => Promise<unknown>) =>
      Effect.asVoid(Effect.tryPromise({ try: run, catch: (cause) => toPublishError(cause, context) }))
    const initialise = (owner: Client) => Effect.flatMap(beginOn(owner), (first) => step(() => first.cancel()))
    const renew = (expected: Epoch | undefined) =>
      Effect.gen(function* () {
        const old = client
        client = open(expected)
        yield* close(old)
        yield* initialise(client).pipe(
          Effect.tapError((error) =>
            Effect.sync(() => {
              if (isFenced(error)) fenced = error
            })
          )
        )
        renewal = undefined
      })
    yield* initialise(client)
    const handleFor = (
      owner: Client,
      transaction: Awaited<ReturnType<Client["beginTransaction"]>>
    ): TransactionHandle => {
      // the epoch this transaction runs in, for the InitProducerId that replaces the client after a failure
      const held: Epoch | undefined =
        owner.producerId === undefined || owner.producerEpoch === undefined
          ? undefined
          : { producerId: owner.producerId, producerEpoch: owner.producerEpoch }
      // a failed commit or abort: see the notes above
      const ending = (run: () => Promise<unknown>) =>
        step(run).pipe(
          Effect.tapError((error) =>
            Effect.sync(() => {
              renewal = isFenced(error) ? { expected: held } : { expected: undefined }
            })
          )
        )
      return {
        send: (records) =>
          Effect.gen(function* () {
            if (records.length === 0) return []
            const placed = yield* placeAll(owner, records, autoCreateTopics, partitioner)
            const result = yield* Effect.tryPromise({
              try: () => transaction.send({ messages: placed.messages as Array<MessageToProduce> }),
              catch: (cause) => failure(cause, placed, autoCreateTopics)
            })
            return yield* receipts(placed, result, "all")
          }).pipe(
            Effect.mapError((error) => {
              // a later failed commit or abort asks for a new producer instead
              renewal ??= { expected: held }
              return failedSend(error, vocabulary).error
            })
          ),
        commit: ending(() => transaction.commit()).pipe(
          // fenced or the coordinator's own epoch bump: ask now, so the commit says which. Unless the coordinator
          // lets the producer go on within `recoveryTimeout`, it is fenced from now on, as with the Java client
          // (a new client can spin on FindCoordinator for good right after a broker's pause: seen on 4.1.2)
          Effect.catchIf(isFenced, (error) =>
            renew(held).pipe(
              Effect.timeoutOption(recoveryTimeout),
              Effect.exit,
              Effect.flatMap((renewed) => {
                if (Exit.isSuccess(renewed) && Option.isSome(renewed.value)) {
                  return Effect.fail(abortedByCoordinator(config.transactionalId, error))
                }
                fenced ??= error
                renewal = undefined
                return Effect.andThen(close(client), Effect.fail(error))
              })
            )
          )
        ),
        // after the commit found the coordinator had aborted the transaction, the client is a new one already
        abort: Effect.suspend(() => (owner === client ? ending(() => transaction.abort()) : Effect.void))
      }
    }
    const begin = Effect.suspend(() => {
      if (fenced !== undefined) return Effect.fail(fenced)
      const ready = renewal === undefined ? Effect.void : renew(renewal.expected)
      return ready.pipe(
        Effect.andThen(() => {
          const owner = client
          return Effect.map(beginOn(owner), (transaction) => handleFor(owner, transaction))
        })
      )
    })
    return TransactionalProducer.of({ transactionalId: config.transactionalId, begin })
  })

/** How long closing a replaced transactional client may take before the driver goes on without waiting. */
const closeTimeout = Duration.seconds(5)

/** How long a commit refused as fenced waits for the coordinator to say whether the producer may go on. */
const recoveryTimeout = Duration.seconds(10)

/** A producer id and epoch, as InitProducerId names them. */
interface Epoch {
  readonly producerId: bigint
  readonly producerEpoch: number
}

const isFenced = (error: PublishError): boolean => error._tag === "Fatal" && error.reason === "ProducerFenced"

/** The commit's answer when the coordinator had aborted the transaction on its timeout (see `makeTransactional`). */
const abortedByCoordinator = (transactionalId: string, fencing: PublishError) =>
  new Fatal({
    reason: "TransactionAborted",
    message:
      `Transaction ${transactionalId} was aborted by the coordinator, on its transaction timeout, before the ` +
      "commit (nothing of it is visible). Not fenced: the coordinator let this producer go on with a new epoch",
    cause: fencing
  })

/** The transactional @platformatic/kafka layer (see `makeTransactional`). */
export const layerTransactional = (
  config: PlatformaticTransactionalConfig
): Layer.Layer<TransactionalProducer, PublishError> => Layer.effect(TransactionalProducer, makeTransactional(config))
