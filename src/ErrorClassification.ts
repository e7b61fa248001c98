/**
 * The classification table: which driver failures are `Retriable` and which are `Fatal`.
 *
 * Split the way Effect's sql drivers split theirs (`PgClient` maps its SQLSTATEs onto the core `SqlError`):
 * this module holds what every Kafka client shares: the Kafka protocol errors by the names the protocol
 * gives them, Node's socket error codes, and the walk over wrapped and aggregated errors. Each driver
 * passes its own client's vocabulary (`ClientVocabulary`: where its errors carry the protocol name, its own
 * error classes and messages, how it reports retries it made itself) from a module in its own folder.
 *
 * Clients wrap errors (a retrier's "gave up" error with a `cause`, an `AggregateError` with one error per
 * attempt or per broker), so `classify` walks causes and aggregated errors and the innermost known error
 * decides.
 *
 * `ambiguous` marks failures after which the record may have been written anyway (the request reached the
 * broker but no answer came back). See `PublishError`. A retriable failure is ambiguous too when any error
 * of the chain is (a client that keeps every attempt's error) or when the client says it retried the
 * request itself and kept only the last attempt's error.
 *
 * | kind | reason | protocol errors and Node codes |
 * | --- | --- | --- |
 * | Retriable | BrokerUnavailable | ECONNREFUSED, ENOTFOUND, EAI_AGAIN, EHOSTUNREACH, ENETUNREACH, KAFKA_STORAGE_ERROR, COORDINATOR_NOT_AVAILABLE |
 * | Retriable (ambiguous) | ConnectionClosed | ECONNRESET, EPIPE, ECONNABORTED, NETWORK_EXCEPTION |
 * | Retriable (ambiguous) | RequestTimeout | REQUEST_TIMED_OUT |
 * | Retriable | LeaderNotAvailable | LEADER_NOT_AVAILABLE |
 * | Retriable | NotLeader | NOT_LEADER_FOR_PARTITION (NOT_LEADER_OR_FOLLOWER), FENCED_LEADER_EPOCH |
 * | Retriable | NotEnoughReplicas | NOT_ENOUGH_REPLICAS |
 * | Retriable (ambiguous) | NotEnoughReplicas | NOT_ENOUGH_REPLICAS_AFTER_APPEND (written, not replicated) |
 * | Retriable / Fatal | UnknownTopicOrPartition / UnknownTopic | UNKNOWN_TOPIC_OR_PARTITION: retriable while auto-create is on (bounded by the retry policy), fatal when it is off |
 * | Retriable | Throttled | THROTTLING_QUOTA_EXCEEDED |
 * | Retriable | Unknown | UNKNOWN_PRODUCER_ID: the broker dropped the producer's state; nothing was written, and a new producer session (which the drivers start after a failed send, as the Java client bumps its epoch) succeeds |
 * | Retriable (ambiguous) | Unknown | DUPLICATE_SEQUENCE_NUMBER: the broker already has the batch (the Java client completes it as a success without an offset); a resend may duplicate it, so it is marked |
 * | Fatal | RecordTooLarge | MESSAGE_TOO_LARGE |
 * | Fatal | RecordListTooLarge | RECORD_LIST_TOO_LARGE |
 * | Fatal | InvalidTopic | INVALID_TOPIC_EXCEPTION |
 * | Fatal | TopicAuthorizationFailed | TOPIC_AUTHORIZATION_FAILED |
 * | Fatal | ClusterAuthorizationFailed | CLUSTER_AUTHORIZATION_FAILED, TRANSACTIONAL_ID_AUTHORIZATION_FAILED |
 * | Fatal | AuthenticationFailed | SASL_AUTHENTICATION_FAILED, ILLEGAL_SASL_STATE, UNSUPPORTED_SASL_MECHANISM |
 * | Fatal | UnsupportedVersion | UNSUPPORTED_VERSION |
 * | Fatal | InvalidConfig | INVALID_CONFIG, INVALID_REQUIRED_ACKS, POLICY_VIOLATION |
 * | Fatal | InvalidRecord | INVALID_RECORD, INVALID_TIMESTAMP, CORRUPT_MESSAGE |
 * | Fatal | ProducerFenced | INVALID_PRODUCER_EPOCH, PRODUCER_FENCED, OUT_OF_ORDER_SEQUENCE_NUMBER |
 * | Retriable | CoordinatorBusy | CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR (the transaction coordinator is busy or moving) |
 * | Fatal | TransactionAborted | INVALID_TXN_STATE, TRANSACTION_ABORTABLE (the transaction cannot commit) |
 * | Retriable (ambiguous) / Fatal | Unknown | anything else: retriable if the client marked it retriable, fatal otherwise |
 *
 * `SchemaInvalid` (the event does not encode) never reaches a driver: `Topic` raises it.
 *
 * @module
 */
import { Fatal, type FatalReason, type PublishError, Retriable, type RetriableReason } from "./PublishError.ts"

/** One row of the table: the kind, the reason, and (retriable only) whether the record may have been written. */
export type Classification =
  | {
      /** Trying again may succeed. */
      readonly kind: "Retriable"
      /** The row's reason. */
      readonly reason: RetriableReason
      /** The record may have been written although the request failed. */
      readonly ambiguous: boolean
    }
  | {
      /** Trying again cannot succeed. */
      readonly kind: "Fatal"
      /** The row's reason. */
      readonly reason: FatalReason
    }

/** A `Retriable` row; `ambiguous` defaults to false (the request certainly did not write the record). */
export const retriable = (reason: RetriableReason, ambiguous = false): Classification => ({
  kind: "Retriable",
  reason,
  ambiguous
})

/** A `Fatal` row. */
export const fatal = (reason: FatalReason): Classification => ({ kind: "Fatal", reason })

/**
 * A table keyed by name, with no prototype: a look-up of "constructor" or "toString" finds nothing.
 * Read it with `lookup`.
 */
export const table = <A>(rows: Readonly<Record<string, A>>): Readonly<Record<string, A>> =>
  Object.freeze(Object.assign(Object.create(null) as Record<string, A>, rows))

/** The row for `name`, own properties only (never one inherited from `Object.prototype`). */
export const lookup = <A>(rows: Readonly<Record<string, A>>, name: string): A | undefined =>
  Object.hasOwn(rows, name) ? rows[name] : undefined

/** Kafka protocol errors, by the name the protocol gives them (`org.apache.kafka.common.protocol.Errors`). */
export const protocolErrors: Readonly<Record<string, Classification>> = table({
  LEADER_NOT_AVAILABLE: retriable("LeaderNotAvailable"),
  NOT_LEADER_FOR_PARTITION: retriable("NotLeader"),
  NOT_LEADER_OR_FOLLOWER: retriable("NotLeader"),
  FENCED_LEADER_EPOCH: retriable("NotLeader"),
  REQUEST_TIMED_OUT: retriable("RequestTimeout", true),
  NETWORK_EXCEPTION: retriable("ConnectionClosed", true),
  NOT_ENOUGH_REPLICAS: retriable("NotEnoughReplicas"),
  NOT_ENOUGH_REPLICAS_AFTER_APPEND: retriable("NotEnoughReplicas", true),
  KAFKA_STORAGE_ERROR: retriable("BrokerUnavailable"),
  COORDINATOR_NOT_AVAILABLE: retriable("BrokerUnavailable"),
  THROTTLING_QUOTA_EXCEEDED: retriable("Throttled"),
  UNKNOWN_PRODUCER_ID: retriable("Unknown"),
  DUPLICATE_SEQUENCE_NUMBER: retriable("Unknown", true),
  MESSAGE_TOO_LARGE: fatal("RecordTooLarge"),
  RECORD_LIST_TOO_LARGE: fatal("RecordListTooLarge"),
  INVALID_TOPIC_EXCEPTION: fatal("InvalidTopic"),
  TOPIC_AUTHORIZATION_FAILED: fatal("TopicAuthorizationFailed"),
  CLUSTER_AUTHORIZATION_FAILED: fatal("ClusterAuthorizationFailed"),
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: fatal("ClusterAuthorizationFailed"),
  SASL_AUTHENTICATION_FAILED: fatal("AuthenticationFailed"),
  ILLEGAL_SASL_STATE: fatal("AuthenticationFailed"),
  UNSUPPORTED_SASL_MECHANISM: fatal("AuthenticationFailed"),
  UNSUPPORTED_VERSION: fatal("UnsupportedVersion"),
  INVALID_CONFIG: fatal("InvalidConfig"),
  INVALID_REQUIRED_ACKS: fatal("InvalidConfig"),
  POLICY_VIOLATION: fatal("InvalidConfig"),
  INVALID_RECORD: fatal("InvalidRecord"),
  INVALID_TIMESTAMP: fatal("InvalidRecord"),
  CORRUPT_MESSAGE: fatal("InvalidRecord"),
  INVALID_PRODUCER_EPOCH: fatal("ProducerFenced"),
  PRODUCER_FENCED: fatal("ProducerFenced"),
  OUT_OF_ORDER_SEQUENCE_NUMBER: fatal("ProducerFenced"),
  CONCURRENT_TRANSACTIONS: retriable("CoordinatorBusy"),
  COORDINATOR_LOAD_IN_PROGRESS: retriable("CoordinatorBusy"),
  NOT_COORDINATOR: retriable("CoordinatorBusy"),
  INVALID_TXN_STATE: fatal("TransactionAborted"),
  TRANSACTION_ABORTABLE: fatal("TransactionAborted")
})

/** Node's errors for a connection that never came up: the request never left. */
export const connectFailureCodes = /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH/

/** Node's socket errors once a connection was up: a request on it may have been written. */
export const connectionLostCodes = /^(ECONNRESET|EPIPE|ECONNABORTED)$/

/** What the classification needs to know about the send. */
export interface ClassifyContext {
  /** The send's (first) topic, for the error's `topic` field. */
  readonly topic?: string | undefined
  /** Whether an unknown topic may still appear (auto-creation on): decides UNKNOWN_TOPIC_OR_PARTITION. */
  readonly autoCreateTopics: boolean
}

/** One error of a cause chain, read field by field (a client's errors are objects of its own classes). */
export type ErrorLike = Readonly<Record<string, unknown>>

/** A string field of an error, or "" (so a missing or non-string field matches no rule). */
export const stringField = (error: ErrorLike, field: string): string => {
  const value = error[field]
  return typeof value === "string" ? value : ""
}

/** A Kafka client's own error vocabulary, which a driver passes to `classify` from a module in its own folder. */
export interface ClientVocabulary {
  /** The protocol error name an error of this client carries, if it is a broker's answer. */
  readonly protocolName: (error: ErrorLike) => string | undefined
  /** The client's own failures (connection, timeout, authentication ...): a row, or undefined if unknown. */
  readonly clientError: (error: ErrorLike, context: ClassifyContext) => Classification | undefined
  /**
   * The client says it retried the request itself and kept only the last attempt's error: an earlier
   * attempt may have been written, so a retriable failure is ambiguous whatever the last error says.
   */
  readonly retriedInside: (chain: ReadonlyArray<ErrorLike>) => boolean
  /** The client marked an error it did not otherwise explain as retriable (its own flag). */
  readonly markedRetriable: (error: ErrorLike) => boolean
}

/** A vocabulary that knows no client: only Node's socket codes and the cause walk apply. */
export const noClient: ClientVocabulary = {
  protocolName: () => undefined,
  clientError: () => undefined,
  retriedInside: () => false,
  markedRetriable: () => false
}

/**
 * The error, its causes and the errors it aggregates, outermost first, depth first (bounded, cycle-safe):
 * the innermost error is last.
 */
export const causeChain = (error: unknown): ReadonlyArray<ErrorLike> => {
  const chain: Array<ErrorLike> = []
  const visit = (current: unknown): void => {
    if (typeof current !== "object" || current === null || chain.length >= 64 || chain.includes(current as ErrorLike))
      return
    const e = current as ErrorLike
    chain.push(e)
    if (Array.isArray(e.errors)) for (const inner of e.errors) visit(inner)
    visit(e.cause)
  }
  visit(error)
  return chain
}

/** UNKNOWN_TOPIC_OR_PARTITION, or a client's "unknown topic": retriable only while topics are auto-created. */
export const unknownTopic = (context: ClassifyContext): Classification =>
  context.autoCreateTopics ? retriable("UnknownTopicOrPartition") : fatal("UnknownTopic")

/** The row of a protocol error name; undefined for a name the table does not have. */
export const protocolError = (name: string, context: ClassifyContext): Classification | undefined =>
  name === "UNKNOWN_TOPIC_OR_PARTITION" ? unknownTopic(context) : lookup(protocolErrors, name)

const classifyOne = (error: ErrorLike, context: ClassifyContext, client: ClientVocabulary) => {
  const protocol = client.protocolName(error)
  const row = protocol === undefined ? undefined : protocolError(protocol, context)
  if (row !== undefined) return row
  const own = client.clientError(error, context)
  if (own !== undefined) return own
  const code = stringField(error, "code")
  if (connectFailureCodes.test(code)) return retriable("BrokerUnavailable")
  if (connectionLostCodes.test(code)) return retriable("ConnectionClosed", true)
  return undefined
}

/**
 * Classifies one driver failure with the client's vocabulary: the innermost error of the cause chain that a
 * row matches decides.
 */
export const classify = (error: unknown, context: ClassifyContext, client: ClientVocabulary): Classification => {
  const chain = causeChain(error)
  const rows = chain.map((e) => classifyOne(e, context, client))
  const found = rows.findLast((row) => row !== undefined)
  if (found) {
    const earlierMayHaveLanded =
      rows.some((row) => row?.kind === "Retriable" && row.ambiguous) || client.retriedInside(chain)
    return found.kind === "Retriable" && !found.ambiguous && earlierMayHaveLanded
      ? { ...found, ambiguous: true }
      : found
  }
  // Unknown: trust the client's own retriable flag where it set one, and assume the worst (may be written).
  return chain.some(client.markedRetriable) ? retriable("Unknown", true) : fatal("Unknown")
}

const describe = (error: unknown): string => {
  const chain = causeChain(error)
  const messages = chain.map((e) => stringField(e, "message")).filter((m) => m.length > 0)
  return messages.length > 0 ? [...new Set(messages)].join(": ") : String(error)
}

/** What a driver knows about a failed send beyond the error itself (`toPublishError`). */
export interface FailureContext extends ClassifyContext {
  /** The partition, when the send was to one partition. */
  readonly partition?: number | undefined
  /** The client reports that part of the request was written: a retriable failure is then ambiguous. */
  readonly partlyWritten?: boolean | undefined
  /**
   * The client was given the request and may have lost it in flight before the error it reports (a client
   * that reports a failed reconnect in place of the lost request): a broker found unavailable is then ambiguous.
   */
  readonly requestSent?: boolean | undefined
}

/** Classifies a driver failure with the client's vocabulary and wraps it into the typed error channel. */
export const toPublishError = (error: unknown, context: FailureContext, client: ClientVocabulary): PublishError => {
  const classified = classify(error, context, client)
  const found =
    classified.kind === "Retriable" &&
    !classified.ambiguous &&
    (context.partlyWritten === true || (context.requestSent === true && classified.reason === "BrokerUnavailable"))
      ? { ...classified, ambiguous: true }
      : classified
  const fields = {
    message: describe(error),
    cause: error,
    ...(context.topic === undefined ? {} : { topic: context.topic }),
    ...(context.partition === undefined ? {} : { partition: context.partition })
  }
  return found.kind === "Retriable"
    ? new Retriable({ ...fields, reason: found.reason, ambiguous: found.ambiguous })
    : new Fatal({ ...fields, reason: found.reason })
}
