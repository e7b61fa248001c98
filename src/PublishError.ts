/**
 * The typed error channel of a publish.
 *
 * Every failure is either `Retriable` (trying again may succeed: the broker is unavailable, a request
 * timed out, a leader is moving) or `Fatal` (trying again cannot succeed: the event is invalid, the record
 * is too large, the topic is invalid or not authorised, authentication failed). The `reason` says which row
 * of the classification table (see `ErrorClassification`) matched; the original driver error is kept as
 * `cause`.
 *
 * `ambiguous` is true when the record may have been written although the publish failed (a request timed out
 * or the connection broke after the request was sent, or the delivery timeout expired). Resending such a
 * record can duplicate it; receipts of publishes that succeeded after an ambiguous attempt say so.
 *
 * @module
 */
import { Data, Schema } from "effect"

/** Why a failure may succeed when tried again: the rows of the classification table that retry. */
export const RetriableReason = Schema.Literals([
  "BrokerUnavailable",
  "ConnectionClosed",
  "RequestTimeout",
  "LeaderNotAvailable",
  "NotLeader",
  "NotEnoughReplicas",
  "UnknownTopicOrPartition",
  "Throttled",
  "DeliveryTimeout",
  "CoordinatorBusy",
  "Unknown"
])
/** One `RetriableReason`. */
export type RetriableReason = typeof RetriableReason.Type

/** Why a failure cannot succeed when tried again: the rows of the classification table that do not retry. */
export const FatalReason = Schema.Literals([
  "SchemaInvalid",
  "InvalidRecord",
  "RecordTooLarge",
  "RecordListTooLarge",
  "InvalidTopic",
  "UnknownTopic",
  "TopicAuthorizationFailed",
  "ClusterAuthorizationFailed",
  "AuthenticationFailed",
  "UnsupportedVersion",
  "InvalidConfig",
  "ProducerFenced",
  "TransactionAborted",
  "Unknown"
])
/** One `FatalReason`. */
export type FatalReason = typeof FatalReason.Type

/** Where a record was written (`Producer.RecordMetadata`), as a Schema. */
export const WrittenRecord = Schema.Struct({
  /** The topic written to. */
  topic: Schema.String,
  /** The partition written to. */
  partition: Schema.Number,
  /** The record's offset, a decimal string (Kafka offsets are 64-bit). */
  offset: Schema.String,
  /** The record's timestamp, ms since the epoch. */
  timestamp: Schema.Number
})

/**
 * What became of one record of a failed send, when the driver knows it record by record (Kafka answers per
 * partition): written (where), `"notWritten"` (certainly not written: the error applies to it), or
 * `"unknown"` (it may have been written).
 */
export const RecordOutcome = Schema.Union([WrittenRecord, Schema.Literals(["notWritten", "unknown"])])
export type RecordOutcome = typeof RecordOutcome.Type

const commonFields = {
  /** What went wrong, in words. */
  message: Schema.String,
  /** The topic of the failed send, when known. */
  topic: Schema.optional(Schema.String),
  /** The partition the failure is about, when known. */
  partition: Schema.optional(Schema.Number),
  /** The driver's own error. */
  cause: Schema.optional(Schema.Defect()),
  /**
   * Set by a driver when a send of records in more than one partition failed: one outcome per record, in
   * input order. Without it the error applies to every record of the send alike.
   */
  outcomes: Schema.optional(Schema.Array(RecordOutcome)),
  /**
   * The record may have been written by an earlier attempt (or, from the `Batcher`, by this request) although
   * this failure says nothing of it: set by the `Publisher` on the failure it returns after an ambiguous
   * attempt, whatever stopped the retries. Unset: no such attempt.
   */
  possiblyDelivered: Schema.optional(Schema.Boolean)
}

/** A failure that may succeed when tried again. */
export class Retriable extends Schema.TaggedError<Retriable>()("Retriable", {
  ...commonFields,
  /** Which row of the classification table matched. */
  reason: RetriableReason,
  /** The record may have been written although this attempt failed: a resend may duplicate it. */
  ambiguous: Schema.Boolean
}) {}

/** A failure that cannot succeed when tried again: retrying it would only be a retry storm. */
export class Fatal extends Schema.TaggedError<Fatal>()("Fatal", {
  ...commonFields,
  /** Which row of the classification table matched. */
  reason: FatalReason
}) {}

/** What a `Producer` (any driver) fails with. */
export type PublishError = Retriable | Fatal

/** The publisher's scope is closing or closed: the event was not accepted, nothing was sent. */
export class PublisherClosed extends Schema.TaggedError<PublisherClosed>()("PublisherClosed", {
  /** Says the publisher is shutting down. */
  message: Schema.String,
  /** The topic of the refused publish. */
  topic: Schema.String
}) {}

/**
 * The record could not be delivered and the dead-letter write failed too. Both causes are kept:
 * nothing is swallowed.
 */
export class DeadLetterFailed extends Schema.TaggedError<DeadLetterFailed>()("DeadLetterFailed", {
  /** Both failures, in words. */
  message: Schema.String,
  /** The topic the record was meant for. */
  topic: Schema.String,
  /** The dead-letter topic the write failed on. */
  deadLetterTopic: Schema.String,
  /** Why the record was not delivered. */
  original: Schema.Union([Retriable, Fatal]),
  /** Why the dead-letter write failed. */
  deadLetterError: Schema.Union([Retriable, Fatal]),
  /** An attempt failed ambiguously: the original topic may hold the record. */
  possiblyDelivered: Schema.Boolean
}) {}

/** True when the record may have been written: an ambiguous `Retriable`, or a failure marked `possiblyDelivered`. */
export const mayHaveWritten = (error: PublishError): boolean =>
  error.possiblyDelivered === true || (error._tag === "Retriable" && error.ambiguous)

/** What `amend` may change of a failure. */
export interface Amendment {
  /** The new `outcomes`; `undefined` removes them. */
  readonly outcomes?: ReadonlyArray<RecordOutcome> | undefined
  /** The new `possiblyDelivered`; `undefined` removes it. */
  readonly possiblyDelivered?: boolean | undefined
  /** The new `ambiguous` of a `Retriable` (a `Fatal` has none). */
  readonly ambiguous?: boolean | undefined
}

/** The same failure with `outcomes`, `possiblyDelivered` and/or a Retriable's `ambiguous` replaced (a new instance). */
export const amend = <E extends PublishError>(error: E, amendment: Amendment): E => {
  // the fields are own enumerable properties, but for `message` (an Error's own, non-enumerable)
  const { _tag, ...fields } = error as PublishError
  const amended: Record<string, unknown> = { ...fields, message: error.message }
  for (const key of ["outcomes", "possiblyDelivered"] as const) {
    if (key in amendment) {
      if (amendment[key] === undefined) delete amended[key]
      else amended[key] = amendment[key]
    }
  }
  if (_tag === "Retriable" && amendment.ambiguous !== undefined) amended.ambiguous = amendment.ambiguous
  return (_tag === "Retriable" ? new Retriable(amended as never) : new Fatal(amended as never)) as E
}

/** The same failure, marked `possiblyDelivered: true` (a new instance; the original is left as it is). */
export const markPossiblyDelivered = <E extends PublishError>(error: E): E =>
  error.possiblyDelivered === true ? error : amend(error, { possiblyDelivered: true })

/** Whether a value is a `Retriable` failure (by its `_tag`, so a copy from another realm counts too). */
export const isRetriable = (error: unknown): error is Retriable =>
  typeof error === "object" && error !== null && (error as { _tag?: unknown })._tag === "Retriable"

/** Whether a value is a `Fatal` failure (by its `_tag`). */
export const isFatal = (error: unknown): error is Fatal =>
  typeof error === "object" && error !== null && (error as { _tag?: unknown })._tag === "Fatal"

/** `publishAll` settled every event and some failed: the receipts of the others are kept, by index. */
export class PublishAllFailed extends Data.TaggedError("PublishAllFailed")<{
  /** How many of how many failed. */
  readonly message: string
  /** The topic of the `publishAll`. */
  readonly topic: string
  /** One per event, by index: its receipt, or `undefined` where it failed. */
  readonly receipts: ReadonlyArray<unknown>
  /** The failures, each with its event's index. */
  readonly failures: ReadonlyArray<{
    /** The event's index in the input. */
    readonly index: number
    /** What its publish failed with (a `PublishFailure`). */
    readonly error: unknown
  }>
}> {}
