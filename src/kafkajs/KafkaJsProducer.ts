/**
 * The kafkajs driver: the `Producer` service over kafkajs 2.2.4.
 *
 * Defaults follow the Java client where they mean the same thing: `acks=all`, idempotence on, request
 * timeout 30 s. The delivery timeout (120 s) bounds a whole publish and lives in `Publisher`.
 *
 * The layer is scoped: acquiring it connects (a broker that cannot be reached fails the layer with a typed
 * error); releasing it waits for the sends in flight, then disconnects.
 *
 * Receipts: kafkajs answers one base offset per partition. The driver records which partition the
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
 *   numbers), so nothing can collide with a batch of unknown fate.
 */
import { type Config, Duration, Effect, Layer, Redacted, type Scope } from "effect"
import kafkajs from "kafkajs"
import { toPublishError } from "../ErrorClassification.ts"
import * as SendQueue from "../internal/sendQueue.ts"
import { Producer, type ProducerRecord, type RecordMetadata } from "../Producer.ts"
import * as ProducerConfig from "../ProducerConfig.ts"
import { type PublishError, Retriable } from "../PublishError.ts"
import { compressionType } from "./compressionCodecs.ts"

export type { Acks, DriverRetry, Sasl, SaslMechanism } from "../ProducerConfig.ts"

/** The driver-neutral settings (`ProducerConfig`) and the kafkajs driver's own. */
export interface KafkaJsConfig extends ProducerConfig.ProducerConfig {
  /** After a failed reconnect, sends fail at once for this long. Default 1 s. */
  readonly reconnectBackoff?: Duration.Input | undefined
  /** kafkajs's own log output (to stdout). Default "nothing": failures reach you as typed errors. */
  readonly clientLogLevel?: "nothing" | "error" | "warn" | "info" | "debug" | undefined
}

export const defaults = { ...ProducerConfig.defaults, reconnectBackoff: Duration.seconds(1) } as const

const logLevels = {
  nothing: kafkajs.logLevel.NOTHING,
  error: kafkajs.logLevel.ERROR,
  warn: kafkajs.logLevel.WARN,
  info: kafkajs.logLevel.INFO,
  debug: kafkajs.logLevel.DEBUG
} as const

const millis = ProducerConfig.millis

const toBuffer = (bytes: Uint8Array | null): Buffer | null =>
  bytes === null ? null : Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/** kafkajs writes only Buffer or string header values. */
const toHeaders = (headers: ProducerRecord["headers"]): kafkajs.IHeaders => {
  const out: kafkajs.IHeaders = {}
  for (const name in headers) {
    const value = headers[name]!
    out[name] = typeof value === "string" ? value : toBuffer(value)!
  }
  return out
}

/** kafkajs options from the config. The password is unwrapped here and nowhere else. */
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

interface Session {
  readonly producer: kafkajs.Producer
  /** A send failed on it: its sequence numbers may be wrong, the next send starts a new session. */
  failed: boolean
}

/** A scoped kafkajs `Producer`: connects now, drains and disconnects when the scope closes. */
export const make = (config: KafkaJsConfig): Effect.Effect<Producer, PublishError, Scope.Scope> =>
  Effect.gen(function* () {
    const kafka = new kafkajs.Kafka(kafkaOptions(config))
    const idempotent = config.idempotent ?? defaults.idempotent
    const acks = config.acks ?? defaults.acks
    const autoCreateTopics = config.autoCreateTopics ?? defaults.autoCreateTopics
    const requestTimeout = millis(config.requestTimeout ?? defaults.requestTimeout)
    const reconnectBackoff = millis(config.reconnectBackoff ?? defaults.reconnectBackoff)
    const compression = compressionType(config.compression ?? defaults.compression)
    const retry = ProducerConfig.driverRetry(config)
    if (idempotent && acks !== "all") {
      return yield* Effect.die(new Error("KafkaJsProducer: idempotence needs acks=all"))
    }

    // The partition chosen for each message object, kept so offsets can be derived and retries are sticky.
    const assigned = new WeakMap<object, number>()
    const createPartitioner: kafkajs.ICustomPartitioner = () => {
      const inner = kafkajs.Partitioners.DefaultPartitioner()
      return (args) => {
        const previous = assigned.get(args.message)
        if (previous !== undefined && previous < args.partitionMetadata.length) return previous
        const partition = inner(args)
        assigned.set(args.message, partition)
        return partition
      }
    }

    const newSession = async (): Promise<Session> => {
      const producer = kafka.producer({
        idempotent,
        allowAutoTopicCreation: autoCreateTopics,
        createPartitioner,
        retry,
        ...(idempotent ? { maxInFlightRequests: 1 } : {})
      })
      await producer.connect()
      return { producer, failed: false }
    }

    let session = yield* Effect.tryPromise({
      try: newSession,
      catch: (cause) => toPublishError(cause, { autoCreateTopics })
    })

    // Idempotent sends run one at a time, each to its end (kafkajs's own retries included), and a failed
    // send retires its session: see the module comment.
    const sends = SendQueue.make(idempotent)

    // After a failed reconnect, sends waiting in the queue fail at once for `reconnectBackoff` instead of
    // each spending a connection timeout on a broker that just refused (Java: reconnect.backoff.ms).
    let reconnectBlockedUntil = 0
    let reconnectError: unknown

    // Failures of requests kafkajs was given (not of a reconnect before them). kafkajs reconnects inside its
    // send loop after losing a request in flight and, when that reconnect is refused, reports only the
    // refusal (KafkaJSNonRetriableError > KafkaJSConnectionError ECONNREFUSED): measured in the broker-crash
    // test, where the lost request had been written. Such a "connection refused" is ambiguous.
    const sentThenFailed = new WeakSet<object>()

    const sendOnSession = async (request: kafkajs.ProducerBatch) => {
      if (session.failed) {
        if (Date.now() < reconnectBlockedUntil) throw reconnectError
        const old = session
        try {
          session = await newSession()
        } catch (error) {
          reconnectBlockedUntil = Date.now() + reconnectBackoff
          reconnectError = error
          throw error
        }
        void old.producer.disconnect().catch(() => undefined)
      }
      const current = session
      try {
        return await current.producer.sendBatch(request)
      } catch (error) {
        current.failed = true
        sentThenFailed.add(error as object)
        throw error
      }
    }

    const sendBatch = (request: kafkajs.ProducerBatch, signal: AbortSignal): Promise<Array<kafkajs.RecordMetadata>> =>
      sends.run(
        idempotent
          ? () => sendOnSession(request)
          : () =>
              session.producer.sendBatch(request).catch((error) => {
                sentThenFailed.add(error as object)
                throw error
              }),
        signal
      )

    const send = (records: ReadonlyArray<ProducerRecord>): Effect.Effect<ReadonlyArray<RecordMetadata>, PublishError> =>
      Effect.gen(function* () {
        if (records.length === 0) return []
        const now = Date.now()
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
        const response = yield* Effect.tryPromise({
          try: (signal) =>
            sendBatch(
              {
                acks: ProducerConfig.acksValue[acks],
                timeout: requestTimeout,
                compression,
                topicMessages: [...byTopic].map(([topic, list]) => ({ topic, messages: list }))
              },
              signal
            ),
          catch: (cause) =>
            toPublishError(cause, {
              autoCreateTopics,
              topic: records[0]!.topic,
              partition: byTopic.size === 1 && messages.length === 1 ? assigned.get(messages[0]!) : undefined,
              requestSent: typeof cause === "object" && cause !== null && sentThenFailed.has(cause)
            })
        })
        // One base offset per topic-partition; each record's offset is its place in that partition's batch.
        const base = new Map<string, { offset: bigint; appendTime: number }>()
        for (const r of response) {
          const appendTime = Number(r.logAppendTime ?? "-1")
          base.set(`${r.topicName}\u0000${r.partition}`, { offset: BigInt(r.baseOffset ?? "0"), appendTime })
        }
        // kafkajs drops a record sent to a partition the topic does not have and answers nothing for it:
        // that must not pass for a delivery
        const unanswered = records.findIndex(
          (record, i) => !base.has(`${record.topic}\u0000${assigned.get(messages[i]!) ?? record.partition ?? 0}`)
        )
        if (unanswered >= 0) {
          const record = records[unanswered]!
          const partition = assigned.get(messages[unanswered]!) ?? record.partition
          return yield* new Retriable({
            reason: "UnknownTopicOrPartition",
            ambiguous: base.size > 0, // other partitions of this send were written
            topic: record.topic,
            partition,
            message: `the broker did not acknowledge ${record.topic}-${partition}: no such partition`
          })
        }
        const seen = new Map<string, bigint>()
        return records.map((record, i): RecordMetadata => {
          const message = messages[i]!
          const partition = assigned.get(message) ?? record.partition ?? 0
          const slot = `${record.topic}\u0000${partition}`
          const index = seen.get(slot) ?? 0n
          seen.set(slot, index + 1n)
          const b = base.get(slot) // present: checked above
          return {
            topic: record.topic,
            partition,
            offset: String(b!.offset + index),
            timestamp: b!.appendTime >= 0 ? b!.appendTime : message.timestampMs
          }
        })
      })

    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        // Publisher drains first; this waits for sends made directly on the Producer (bounded).
        yield* sends.drain(Duration.seconds(30))
        yield* Effect.promise(() => session.producer.disconnect().catch(() => undefined))
      })
    )

    return Producer.of({ send, inFlight: Effect.sync(sends.inFlight) })
  })

/** The kafkajs `Producer` layer. */
export const layer = (config: KafkaJsConfig): Layer.Layer<Producer, PublishError> =>
  Layer.effect(Producer, make(config))

/** The settings from the environment: see `ProducerConfig.config` for the variables. */
export const config: Config.Config<KafkaJsConfig> = ProducerConfig.config

/** The kafkajs `Producer` layer, configured from the environment (see `config`). */
export const layerConfig = (
  overrides: Partial<KafkaJsConfig> = {}
): Layer.Layer<Producer, PublishError | Config.ConfigError> => ProducerConfig.layerConfig(make, overrides)
