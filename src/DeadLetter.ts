/**
 * The dead-letter route: when a record fails fatally, or its retries are exhausted, its original key and
 * value bytes are written to a dead-letter topic (default `<topic>.dlt`) with headers that say what failed
 * and where the record came from (the same idea as Spring Kafka's DeadLetterPublishingRecoverer):
 *
 * | header | value |
 * | --- | --- |
 * | `errorType` | `Retriable.<reason>` or `Fatal.<reason>`, e.g. `Fatal.RecordTooLarge` |
 * | `errorMessage` | the error message |
 * | `originalTopic` | the topic the record was meant for |
 * | `originalPartition` | its partition, when it was known |
 * | `attempts` | how many sends were tried |
 * | `failedAt` | ISO-8601 time of the failure |
 * | `ambiguous` | `true` when the record may have reached the original topic as well (an attempt failed ambiguously) |
 * | `originalValueSize` | only when the dead letter is without its value: the value's size in bytes |
 *
 * These headers are always this failure's own: a record dead-lettered again (replayed from a DLT, failed
 * again) loses the ones it carried before. A record too large for the dead-letter topic as well (a
 * `RecordTooLarge` answer to the dead-letter write) is written once more without its value, with
 * `originalValueSize` instead: the key, headers and why-headers say which record it was and why; the value
 * is not kept anywhere by this library (keep it upstream if it must be recoverable). Only if that fails too
 * is the result `DeadLetterFailed`.
 *
 * The record's own headers are kept. `recover` is plain error recovery (`Effect.catchTags`), usable on its
 * own around any send: success passes through, a `Retriable` or `Fatal` failure becomes a `DeadLettered`
 * receipt, and a failing dead-letter write becomes `DeadLetterFailed` holding both causes.
 *
 * @module
 */
import { Clock, Duration, Effect, Predicate } from "effect"
import { isTooLarge } from "./internal/outcomes.ts"
import type { HeaderValue, Producer, ProducerRecord, RecordMetadata } from "./Producer.ts"
import { DeadLetterFailed, type Fatal, mayHaveWritten, Retriable } from "./PublishError.ts"
import { DeadLettered } from "./Receipt.ts"

/** Where dead letters go and how long their write may take. */
export interface Options {
  /** The dead-letter topic for a topic. Default: `<topic>.dlt`. */
  readonly topicName?: ((topic: string) => string) | undefined
  /** Bounds the dead-letter write: a broker that cannot take it must not hold the caller forever. Default 30 s. */
  readonly timeout?: Duration.Input | undefined
}

/** 30 s: the bound of one dead-letter write. */
export const defaultTimeout = Duration.seconds(30)

/** `<topic>.dlt`, the default dead-letter topic of a topic. */
export const defaultTopicName = (topic: string): string => `${topic}.dlt`

/** The names of the headers that say why a record was dead-lettered (see the table above). */
export const headerNames = {
  /** `Retriable.<reason>` or `Fatal.<reason>`. */
  errorType: "errorType",
  /** The error message, at most 4,096 UTF-16 units. */
  errorMessage: "errorMessage",
  /** The topic the record was meant for. */
  originalTopic: "originalTopic",
  /** Its partition, when known. */
  originalPartition: "originalPartition",
  /** Sends tried. */
  attempts: "attempts",
  /** ISO-8601 time of the failure. */
  failedAt: "failedAt",
  /** `true` when the record may be in the original topic as well. */
  ambiguous: "ambiguous",
  /** The value's size in bytes, when the dead letter is written without it (too large). */
  originalValueSize: "originalValueSize"
} as const

/** Kafka limits nothing here, but a multi-megabyte stack of messages helps no one reading a DLT. */
const maxMessageLength = 4096

/** At most `maxMessageLength` UTF-16 units, never ending in half a surrogate pair. */
const truncate = (message: string): string => {
  if (message.length <= maxMessageLength) return message
  const cut = message.slice(0, maxMessageLength)
  const last = cut.charCodeAt(cut.length - 1)
  return last >= 0xd800 && last <= 0xdbff ? cut.slice(0, -1) : cut
}

const whyHeaders: ReadonlySet<string> = new Set(Object.values(headerNames))

/** The record's own headers without the why-headers of an earlier dead-lettering (they would be stale). */
const ownHeaders = (headers: ProducerRecord["headers"]): Record<string, HeaderValue> => {
  const own: Record<string, HeaderValue> = {}
  for (const name in headers) if (!whyHeaders.has(name)) own[name] = headers[name]!
  return own
}

/** The `errorType` header of a failure: `Retriable.<reason>` or `Fatal.<reason>` (also the metrics' `error.type`). */
export const errorType = (error: Retriable | Fatal): string => `${error._tag}.${error.reason}`

/** The dead-letter record for a failed one: the original bytes, the original headers, and why it failed. */
export const toRecord = (
  original: ProducerRecord,
  error: Retriable | Fatal,
  info: {
    readonly deadLetterTopic: string
    readonly attempts: number
    readonly failedAt: number
    /** An attempt failed ambiguously, so the original topic may hold the record too. */
    readonly possiblyDelivered?: boolean | undefined
  }
): ProducerRecord => {
  const partition = original.partition ?? error.partition
  return {
    topic: info.deadLetterTopic,
    key: original.key,
    value: original.value,
    headers: {
      ...ownHeaders(original.headers),
      [headerNames.errorType]: errorType(error),
      [headerNames.errorMessage]: truncate(error.message),
      [headerNames.originalTopic]: original.topic,
      ...(partition === undefined ? {} : { [headerNames.originalPartition]: String(partition) }),
      [headerNames.attempts]: String(info.attempts),
      [headerNames.failedAt]: new Date(info.failedAt).toISOString(),
      ...(info.possiblyDelivered || mayHaveWritten(error) ? { [headerNames.ambiguous]: "true" } : {})
    }
  }
}

/** Writes one failed record to its dead-letter topic. */
export const send = (
  producer: Producer,
  original: ProducerRecord,
  error: Retriable | Fatal,
  attempt: { readonly attempts: number; readonly possiblyDelivered?: boolean | undefined },
  options: Options = {}
): Effect.Effect<DeadLettered, DeadLetterFailed> =>
  Effect.gen(function* () {
    const deadLetterTopic = (options.topicName ?? defaultTopicName)(original.topic)
    const failedAt = yield* Clock.currentTimeMillis
    const possiblyDelivered = attempt.possiblyDelivered === true || mayHaveWritten(error)
    const record = toRecord(original, error, {
      deadLetterTopic,
      attempts: attempt.attempts,
      failedAt,
      possiblyDelivered
    })
    const write = writeBounded(producer, Duration.fromInputUnsafe(options.timeout ?? defaultTimeout))
    const [metadata] = yield* write(record).pipe(
      // too large for the dead-letter topic as well: keep what says which record it was, drop the value
      Effect.catch((deadLetterError) =>
        isTooLarge(deadLetterError) && record.value !== null
          ? write(withoutValue(record))
          : Effect.fail(deadLetterError)
      ),
      Effect.mapError(
        (deadLetterError) =>
          new DeadLetterFailed({
            message: `dead-letter write to ${deadLetterTopic} failed (${errorType(deadLetterError)}) after ${errorType(error)} on ${original.topic}`,
            topic: original.topic,
            deadLetterTopic,
            original: error,
            deadLetterError,
            possiblyDelivered
          })
      )
    )
    return new DeadLettered({
      topic: original.topic,
      deadLetterTopic,
      partition: metadata!.partition,
      offset: metadata!.offset,
      timestamp: metadata!.timestamp,
      attempts: attempt.attempts,
      possiblyDelivered,
      error
    })
  }).pipe(
    Effect.withSpan("dead-letter", {
      kind: "producer",
      attributes: { "messaging.system": "kafka", "messaging.operation.name": "send", "error.type": errorType(error) }
    })
  )

/** One dead-letter write, bounded by `timeout` (a `Retriable` `DeliveryTimeout`, ambiguous, when it passes). */
const writeBounded =
  (producer: Producer, timeout: Duration.Duration) =>
  (record: ProducerRecord): Effect.Effect<ReadonlyArray<RecordMetadata>, Retriable | Fatal> =>
    producer.send([record]).pipe(
      Effect.timeoutOrElse({
        duration: timeout,
        orElse: () =>
          Effect.fail(
            new Retriable({
              reason: "DeliveryTimeout",
              ambiguous: true,
              topic: record.topic,
              message: `dead-letter write not acknowledged within ${Duration.format(timeout)}`
            })
          )
      })
    )

/** The dead letter without the value, and the value's size in its place (header `originalValueSize`). */
const withoutValue = (record: ProducerRecord): ProducerRecord => ({
  ...record,
  value: null,
  headers: { ...record.headers, [headerNames.originalValueSize]: String(record.value?.byteLength ?? 0) }
})

/**
 * Error recovery: a `Retriable` (retries exhausted) or `Fatal` failure of `self` dead-letters `record`.
 * `attempt` is read when the failure arrives, so counters kept by a retry loop can be passed in.
 */
export const recover =
  (
    producer: Producer,
    record: ProducerRecord,
    attempt: () => { readonly attempts: number; readonly possiblyDelivered?: boolean | undefined },
    options: Options = {}
  ) =>
  <A, E, R>(
    self: Effect.Effect<A, E | Retriable | Fatal, R>
  ): Effect.Effect<A | DeadLettered, Exclude<E, Retriable | Fatal> | DeadLetterFailed, R> =>
    // one `catch` rather than `catchTags`: it runs around every publish, and `catchTags` builds several closures
    Effect.catch(
      self,
      (error): Effect.Effect<DeadLettered, E | DeadLetterFailed> =>
        isDeadLetterable(error) ? send(producer, record, error, attempt(), options) : Effect.fail(error)
    ) as never

const isDeadLetterable = (error: unknown): error is Retriable | Fatal =>
  Predicate.hasProperty(error, "_tag") && (error._tag === "Retriable" || error._tag === "Fatal")
