/**
 * Reads a topic back from a real broker, from the beginning up to the end offsets it had when the read
 * started: what tests, the `verify` command and users checking a deployment need to prove what was written.
 *
 * It asks the broker for each partition's end offset first, then consumes until every partition reached
 * it, so it never waits on an idle timeout to decide it is done.
 *
 * kafkajs is loaded when a read starts (a dynamic import), so importing this module, or
 * `effect-kafka-publisher/testing`, loads no Kafka client. Without kafkajs installed a read fails with
 * `ReadFailed` ("TopicReader needs the kafkajs package: npm install kafkajs").
 *
 * @module
 */
import { Data, Duration, Effect, Schedule } from "effect"
import type * as KafkaJs from "kafkajs"
import type { ProducerConfig } from "../ProducerConfig.ts"
import { filterAbortedRecords } from "./abortedRecords.ts"
import { partitionOffsets } from "./partitionOffsets.ts"
import type { Skipped } from "./TopicAudit.ts"

/** One record as read back: bytes as written, the last value of each header. */
export interface ReadRecord {
  /** The topic it was read from. */
  readonly topic: string
  /** The partition it was read from. */
  readonly partition: number
  /** Its offset in the partition, as a decimal string (offsets are 64-bit). */
  readonly offset: string
  /** The key bytes, null for a record without a key. */
  readonly key: Uint8Array | null
  /** The value bytes, null for a tombstone. */
  readonly value: Uint8Array | null
  /** Each header's last value, as bytes. */
  readonly headers: Readonly<Record<string, Uint8Array>>
  /** The record's timestamp, in milliseconds since the epoch. */
  readonly timestamp: number
}

/**
 * Why a read failed, so a caller (the CLI's exit codes) can tell what to do:
 * - `ClientMissing`: kafkajs (or kafkajs-snappy) is not installed;
 * - `Unreachable`: no broker of the list could be connected to (refused, unknown host, timed out, TLS);
 * - `AuthenticationFailed`: the brokers refused the SASL credentials;
 * - `NotAuthorized`: the brokers denied the topic, the consumer group or the cluster (ACLs);
 * - `UnknownTopic`: the topic does not exist;
 * - `Incomplete`: the partitions were not read to their end within the timeout;
 * - `Failed`: anything else.
 */
export type ReadFailedReason =
  | "ClientMissing"
  | "Unreachable"
  | "AuthenticationFailed"
  | "NotAuthorized"
  | "UnknownTopic"
  | "Incomplete"
  | "Failed"

/** A read (or a connection check) that failed; `message` says what and why, without secrets. */
export class ReadFailed extends Data.TaggedError("ReadFailed")<{
  /** What failed and the client's reason, in one line. */
  readonly message: string
  /** Which kind of failure (see `ReadFailedReason`). */
  readonly reason: ReadFailedReason
  /** The topic being read; absent for `checkConnection`. */
  readonly topic?: string | undefined
  /** The client's own error. */
  readonly cause?: unknown
}> {}

/**
 * How to reach the cluster: the same settings as `ProducerConfig` (so a whole `ProducerConfig` will do):
 * brokers, TLS, SASL (its password stays `Redacted` until it is handed to the client) and timeouts.
 */
export interface ConnectionOptions
  extends Pick<ProducerConfig, "brokers" | "ssl" | "sasl" | "connectionTimeout" | "requestTimeout"> {}

/** What `readAll` reads and how. */
export interface Options extends ConnectionOptions {
  /** The topic to read. */
  readonly topic: string
  /** Give up after this long. Default 60 s. */
  readonly timeout?: Duration.Input | undefined
  /**
   * Which records to read (Java: `isolation.level`): "read_committed" skips records of aborted transactions
   * and waits for open ones to commit or abort (up to the timeout); "read_uncommitted" reads everything
   * written. Both read up to the high watermark the read started with. Default "read_committed".
   */
  readonly isolation?: "read_uncommitted" | "read_committed" | undefined
  /** Called after each batch read: the records read so far and, approximately, how many the read will take. */
  readonly onProgress?: ((progress: Progress) => void) | undefined
  /**
   * Called for each run of offsets the read passed over that hold no record for it: transaction markers
   * (commit, abort) and, at read_committed, the records of aborted transactions. An offset gap that these
   * runs do not cover is a record missing (`TopicAudit` takes them as `skipped`).
   */
  readonly onSkipped?: ((skipped: Skipped) => void) | undefined
}

/** How far a read is. */
export interface Progress {
  /** Records read so far. */
  readonly read: number
  /** The records between the start and end offsets (approximate: compaction, transaction markers). */
  readonly total: number
}

const missingPackage = /Cannot find (?:package|module) '(kafkajs(?:-snappy)?)'/

/** kafkajs and its codecs (snappy, zstd: compressed batches must be readable), loaded now. */
const loadKafkaJs = (topic: string | undefined) =>
  Effect.tryPromise({
    try: async () => {
      const [kafkajs, codecs, driver] = await Promise.all([
        import("kafkajs"),
        import("../kafkajs/compressionCodecs.ts"),
        import("../kafkajs/KafkaJsProducer.ts")
      ])
      codecs.compressionType("none") // registers the codecs
      return { kafkajs: kafkajs.default, kafkaOptions: driver.kafkaOptions }
    },
    catch: (cause) => {
      const name = missingPackage.exec(String((cause as { message?: unknown }).message))?.[1]
      return name === undefined
        ? new ReadFailed({ message: `cannot load kafkajs: ${String(cause)}`, reason: "Failed", topic, cause })
        : new ReadFailed({
            message: `TopicReader needs the ${name} package: npm install ${name}`,
            reason: "ClientMissing",
            topic,
            cause
          })
    }
  })

/**
 * A kafkajs client for the options: the driver's own mapping (the one place the password is unwrapped).
 * `retry` is kafkajs's, for the cluster connection: the admin client's own option does not reach it.
 */
const makeClient = (options: ConnectionOptions, topic: string | undefined, retry?: KafkaJs.RetryOptions) =>
  Effect.map(
    loadKafkaJs(topic),
    ({ kafkajs, kafkaOptions }) =>
      new kafkajs.Kafka({
        ...kafkaOptions({ ...options, clientId: "effect-kafka-publisher-reader", clientLogLevel: "nothing" }),
        ...(retry === undefined ? {} : { retry })
      })
  )

interface ErrorLike {
  readonly name?: unknown
  readonly type?: unknown
  readonly message?: unknown
  readonly cause?: unknown
}

/** The error and its causes, outermost first (bounded). */
const causes = (error: unknown): Array<ErrorLike> => {
  const chain: Array<ErrorLike> = []
  for (let e = error; typeof e === "object" && e !== null && chain.length < 16; e = (e as ErrorLike).cause) {
    chain.push(e as ErrorLike)
  }
  return chain
}

const isAuthentication = (e: ErrorLike) =>
  e.name === "KafkaJSSASLAuthenticationError" ||
  e.type === "SASL_AUTHENTICATION_FAILED" ||
  e.type === "ILLEGAL_SASL_STATE" ||
  e.type === "UNSUPPORTED_SASL_MECHANISM"

const isAuthorization = (e: ErrorLike) => typeof e.type === "string" && e.type.endsWith("_AUTHORIZATION_FAILED")

/** Protocol names first: an authentication or ACL failure says so whichever step met it. */
const reasonOf = (cause: unknown, connecting: boolean): ReadFailedReason => {
  const chain = causes(cause)
  if (chain.some(isAuthentication)) return "AuthenticationFailed"
  if (chain.some(isAuthorization)) return "NotAuthorized"
  if (chain.some((e) => e.type === "UNKNOWN_TOPIC_OR_PARTITION")) return "UnknownTopic"
  return connecting ? "Unreachable" : "Failed"
}

/** The innermost message: kafkajs repeats it in each wrapper. */
const detail = (cause: unknown): string =>
  causes(cause)
    .map((e) => (typeof e.message === "string" ? e.message : ""))
    .findLast((m) => m !== "") ?? String(cause)

const failure =
  (what: string, topic: string | undefined, connecting = false) =>
  (cause: unknown): ReadFailed => {
    const reason = reasonOf(cause, connecting)
    const message = reason === "UnknownTopic" ? `topic '${topic}' does not exist` : `${what}: ${detail(cause)}`
    return new ReadFailed({ message, reason, topic, cause })
  }

/** A connected admin client, disconnected when the scope closes. */
const connectedAdmin = (admin: KafkaJs.Admin, brokers: ReadonlyArray<string>, topic: string | undefined) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => admin.connect().then(() => admin),
      catch: failure(`cannot connect to ${brokers.join(",")}`, topic, true)
    }),
    (connected) => Effect.promise(() => connected.disconnect())
  )

/**
 * Connects to the cluster, trying each broker of the list once (no client retries), and disconnects: a fast
 * first contact that tells an unreachable cluster or refused credentials at once. The CLI runs it before every
 * command; `readAll` itself is patient (kafkajs retries the first connection for about 7 s).
 */
export const checkConnection = (options: ConnectionOptions): Effect.Effect<void, ReadFailed> =>
  Effect.scoped(
    Effect.gen(function* () {
      // kafkajs moves to the next broker of the list on each retry: n - 1 retries try each one once
      const once = { retries: Math.max(0, options.brokers.length - 1), initialRetryTime: 50, maxRetryTime: 100 }
      const kafka = yield* makeClient(options, undefined, once)
      yield* connectedAdmin(kafka.admin(), options.brokers, undefined)
    })
  )

/** Every record of the topic, ordered by partition then offset. */
export const readAll = (options: Options): Effect.Effect<ReadonlyArray<ReadRecord>, ReadFailed> =>
  Effect.scoped(
    Effect.gen(function* () {
      const kafka = yield* makeClient(options, options.topic)
      const admin = yield* connectedAdmin(kafka.admin(), options.brokers, options.topic)
      const { remaining, total } = yield* endOffsets(kafka, admin, options.topic)
      if (remaining.size === 0) return []
      const consumer = yield* subscribed(kafka, options)
      const records = yield* consumeUntil(consumer, remaining, total, options)
      return records.sort((a, b) =>
        a.partition !== b.partition ? a.partition - b.partition : Number(BigInt(a.offset) - BigInt(b.offset))
      )
    })
  )

/**
 * The next offset to reach in each partition that holds records: its high watermark, at either isolation
 * level. A read_committed read reaches it once every transaction before it is decided (the consumer then
 * fetches the commit or abort markers), so a transaction that just committed is read in full, and an open
 * one holds the read back until it commits, aborts or times out. Right after a topic is created or a leader
 * moves, a broker can answer NOT_LEADER or UNKNOWN_TOPIC for a moment: retried for up to 5 s, an unknown
 * topic only for 1 s (it most likely does not exist: say so soon).
 */
const endOffsets = (kafka: KafkaJs.Kafka, admin: KafkaJs.Admin, topic: string) => {
  let unknownTopicRetries = 0
  const worthRetrying = (error: ReadFailed) =>
    (error.cause as { retriable?: unknown } | undefined)?.retriable === true &&
    (error.reason !== "UnknownTopic" || ++unknownTopicRetries <= 5)
  return Effect.tryPromise({
    // the metadata answers an unknown topic at once, before the offsets are asked for
    try: () => admin.fetchTopicMetadata({ topics: [topic] }).then(() => partitionOffsets(kafka, topic)),
    catch: failure("cannot fetch the end offsets", topic)
  }).pipe(
    Effect.retry({ schedule: Schedule.spaced("200 millis"), times: 25, while: worthRetrying }),
    Effect.map((offsets) => {
      const held = offsets.filter((o) => o.high > o.low)
      return {
        remaining: new Map(held.map((o) => [o.partition, o.high] as const)),
        total: held.reduce((n, o) => n + Number(o.high - o.low), 0)
      }
    })
  )
}

/** A consumer of a group of its own, subscribed from the beginning, disconnected when the scope closes. */
const subscribed = (kafka: KafkaJs.Kafka, options: Options) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        // kafkajs' own read_committed filter lets aborted records through (see abortedRecords.ts)
        if (options.isolation !== "read_uncommitted") filterAbortedRecords(kafka)
        const consumer = kafka.consumer({
          groupId: `reader-${options.topic}-${Date.now()}-${Math.random().toString(36).slice(2)}`,
          readUncommitted: options.isolation === "read_uncommitted"
        })
        await consumer.connect()
        await consumer.subscribe({ topic: options.topic, fromBeginning: true })
        return consumer
      },
      catch: failure("cannot start the consumer", options.topic)
    }),
    (consumer) => Effect.promise(() => consumer.disconnect())
  )

const headerBytes = (headers: KafkaJs.IHeaders | undefined): Record<string, Uint8Array> => {
  const out: Record<string, Uint8Array> = {}
  for (const [name, value] of Object.entries(headers ?? {})) {
    const last = Array.isArray(value) ? value[value.length - 1] : value
    if (last !== undefined) out[name] = typeof last === "string" ? Buffer.from(last) : last
  }
  return out
}

const toRecord = (topic: string, partition: number, m: KafkaJs.KafkaMessage): ReadRecord => ({
  topic,
  partition,
  offset: m.offset,
  key: m.key,
  value: m.value,
  headers: headerBytes(m.headers),
  timestamp: Number(m.timestamp)
})

/**
 * The offsets of a batch that were fetched but not handed over: markers and aborted records. kafkajs keeps
 * them in the batch's `messagesWithinOffset` (not in its typings), beside the records in `messages`.
 */
const reportSkipped = (batch: KafkaJs.Batch, onSkipped: (skipped: Skipped) => void) => {
  const fetched = (batch as unknown as { messagesWithinOffset?: ReadonlyArray<{ offset: string }> })
    .messagesWithinOffset
  if (fetched === undefined || fetched.length === batch.messages.length) return
  const kept = new Set(batch.messages.map((m) => m.offset))
  let run: { from: string; to: string } | undefined
  for (const { offset } of fetched) {
    if (!kept.has(offset)) {
      if (run !== undefined && BigInt(run.to) + 1n === BigInt(offset)) run.to = offset
      else {
        if (run !== undefined) onSkipped({ partition: batch.partition, ...run })
        run = { from: offset, to: offset }
      }
    }
  }
  if (run !== undefined) onSkipped({ partition: batch.partition, ...run })
}

/** Consumes until each partition of `remaining` reached its end offset, or the timeout. */
const consumeUntil = (consumer: KafkaJs.Consumer, remaining: Map<number, bigint>, total: number, options: Options) => {
  const timeout = Duration.fromInputUnsafe(options.timeout ?? Duration.seconds(60))
  const records: Array<ReadRecord> = []
  return Effect.callback<void, ReadFailed>((resume) => {
    // the client reports every batch it fetched here, also one it filtered out entirely (only control records
    // or aborted transactions), which never reaches eachBatch: the end of a transactional partition
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      // a batch of markers or aborted records only: all of its offsets were passed over
      if (payload.batchSize === 0 && payload.firstOffset != null) {
        options.onSkipped?.({ partition: payload.partition, from: payload.firstOffset, to: payload.lastOffset })
      }
      const end = remaining.get(payload.partition)
      if (end !== undefined && BigInt(payload.lastOffset) + 1n >= end) {
        remaining.delete(payload.partition)
        if (remaining.size === 0) resume(Effect.void)
      }
    })
    consumer
      .run({
        eachBatchAutoResolve: true,
        eachBatch: async ({ batch }) => {
          const end = remaining.get(batch.partition) ?? -1n
          for (const m of batch.messages) {
            if (BigInt(m.offset) < end) records.push(toRecord(batch.topic, batch.partition, m))
          }
          if (options.onSkipped !== undefined) reportSkipped(batch, options.onSkipped)
          options.onProgress?.({ read: records.length, total })
        }
      })
      .catch((cause) => resume(Effect.fail(failure("consumer failed", options.topic)(cause))))
  }).pipe(
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () =>
        Effect.fail(
          new ReadFailed({
            topic: options.topic,
            reason: "Incomplete",
            message: `read ${records.length} records, partitions ${[...remaining.keys()].join(",")} not read to the end within ${Duration.format(timeout)}${options.isolation === "read_uncommitted" ? "" : " (read_committed waits for open transactions to commit or abort)"}`
          })
        )
    }),
    Effect.as(records)
  )
}
