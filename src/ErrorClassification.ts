/**
 * The classification table: which driver failures are `Retriable` and which are `Fatal`.
 *
 * This is the one place where the decision lives, for every driver. Rows are keyed by Kafka protocol error
 * names (the broker's own vocabulary, the same in every client: kafkajs's `error.type`, @platformatic/kafka's
 * `error.apiId`) and by each client's own failures (connection refused or closed, request timeout,
 * authentication). Clients wrap errors (kafkajs: `KafkaJSNumberOfRetriesExceeded`, `KafkaJSNonRetriableError`
 * with a `cause`; @platformatic/kafka: `MultipleErrors`, an `AggregateError` with one error per attempt or per
 * broker), so `classify` walks causes and aggregated errors and the innermost known error decides.
 *
 * `ambiguous` marks failures after which the record may have been written anyway (the request reached the
 * broker but no answer came back). See `PublishError`. A retriable failure that kafkajs reports after
 * retrying the request itself (`KafkaJSNumberOfRetriesExceeded`, retryCount > 0) is always ambiguous: only
 * the last attempt's error is kept, and an earlier attempt may have been written. @platformatic/kafka keeps
 * every attempt's error: a retriable failure is ambiguous when any of them is.
 *
 * | kind | reason | matches |
 * | --- | --- | --- |
 * | Retriable | BrokerUnavailable | connection refused / DNS / connect timeout, no broker available, metadata not loaded, KAFKA_STORAGE_ERROR, COORDINATOR_NOT_AVAILABLE |
 * | Retriable (ambiguous) | ConnectionClosed | connection closed or reset after the request was sent, NETWORK_EXCEPTION |
 * | Retriable (ambiguous) | RequestTimeout | client request timeout, REQUEST_TIMED_OUT |
 * | Retriable | LeaderNotAvailable | LEADER_NOT_AVAILABLE |
 * | Retriable | NotLeader | NOT_LEADER_FOR_PARTITION (NOT_LEADER_OR_FOLLOWER), FENCED_LEADER_EPOCH |
 * | Retriable | NotEnoughReplicas | NOT_ENOUGH_REPLICAS |
 * | Retriable (ambiguous) | NotEnoughReplicas | NOT_ENOUGH_REPLICAS_AFTER_APPEND (written, not replicated) |
 * | Retriable / Fatal | UnknownTopicOrPartition / UnknownTopic | UNKNOWN_TOPIC_OR_PARTITION (platformatic: "Unknown topic"): retriable while auto-create is on (bounded by the retry policy), fatal when it is off |
 * | Retriable | Throttled | THROTTLING_QUOTA_EXCEEDED, lock timeout inside the client (request not sent) |
 * | Fatal | RecordTooLarge | MESSAGE_TOO_LARGE |
 * | Fatal | RecordListTooLarge | RECORD_LIST_TOO_LARGE |
 * | Fatal | InvalidTopic | INVALID_TOPIC_EXCEPTION, client "Invalid topic" |
 * | Fatal | TopicAuthorizationFailed | TOPIC_AUTHORIZATION_FAILED |
 * | Fatal | ClusterAuthorizationFailed | CLUSTER_AUTHORIZATION_FAILED, TRANSACTIONAL_ID_AUTHORIZATION_FAILED |
 * | Fatal | AuthenticationFailed | SASL_AUTHENTICATION_FAILED, ILLEGAL_SASL_STATE, UNSUPPORTED_SASL_MECHANISM, the clients' SASL errors |
 * | Fatal | UnsupportedVersion | UNSUPPORTED_VERSION, API key or compression not supported by the broker or client |
 * | Fatal | InvalidConfig | INVALID_CONFIG, INVALID_REQUIRED_ACKS, POLICY_VIOLATION |
 * | Fatal | InvalidRecord | INVALID_RECORD, INVALID_TIMESTAMP, CORRUPT_MESSAGE, client-side invalid message |
 * | Fatal | ProducerFenced | INVALID_PRODUCER_EPOCH, PRODUCER_FENCED, OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID |
 * | Retriable (ambiguous) / Fatal | Unknown | anything else: retriable if the client marked it retriable (`retriable`, `canRetry`), fatal otherwise |
 *
 * `SchemaInvalid` (the event does not encode) never reaches a driver: `Topic` raises it.
 */
import { Fatal, type FatalReason, type PublishError, Retriable, type RetriableReason } from "./PublishError.ts"

export type Classification =
  | { readonly kind: "Retriable"; readonly reason: RetriableReason; readonly ambiguous: boolean }
  | { readonly kind: "Fatal"; readonly reason: FatalReason }

const retriable = (reason: RetriableReason, ambiguous = false): Classification => ({
  kind: "Retriable",
  reason,
  ambiguous
})
const fatal = (reason: FatalReason): Classification => ({ kind: "Fatal", reason })

/** Kafka protocol errors, by the name the protocol gives them (kafkajs: `error.type`). */
export const protocolErrors: Readonly<Record<string, Classification>> = {
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
  UNKNOWN_PRODUCER_ID: fatal("ProducerFenced")
}

/** Client-side failures of the kafkajs driver, by error class name. */
export const clientErrors: Readonly<Record<string, Classification>> = {
  KafkaJSConnectionClosedError: retriable("ConnectionClosed", true),
  KafkaJSRequestTimeoutError: retriable("RequestTimeout", true),
  KafkaJSNoBrokerAvailableError: retriable("BrokerUnavailable"),
  KafkaJSBrokerNotFound: retriable("BrokerUnavailable"),
  KafkaJSMetadataNotLoaded: retriable("BrokerUnavailable"),
  KafkaJSTopicMetadataNotLoaded: retriable("BrokerUnavailable"),
  KafkaJSStaleTopicMetadataAssignment: retriable("LeaderNotAvailable"),
  KafkaJSLockTimeout: retriable("Throttled"),
  KafkaJSSASLAuthenticationError: fatal("AuthenticationFailed"),
  KafkaJSServerDoesNotSupportApiKey: fatal("UnsupportedVersion")
}

/**
 * @platformatic/kafka's own failures, by `code` and message. Its `TimeoutError` carries the network code, so
 * the message tells a connect timeout (never sent) from a request timeout (maybe written).
 */
const platformaticError = (code: string, message: string): Classification | undefined => {
  switch (code) {
    case "PLT_KFK_NETWORK":
      if (/^Connection to .* (timed out|failed)/.test(message)) return retriable("BrokerUnavailable")
      if (/^Cannot get a connection/.test(message)) return retriable("BrokerUnavailable")
      if (/^Request timed out/.test(message)) return retriable("RequestTimeout", true)
      if (/^Connection (closed|error)/.test(message)) return retriable("ConnectionClosed", true)
      return undefined
    case "PLT_KFK_AUTHENTICATION":
      return fatal("AuthenticationFailed")
    case "PLT_KFK_UNSUPPORTED_API":
    case "PLT_KFK_UNSUPPORTED_COMPRESSION":
      return fatal("UnsupportedVersion")
    default:
      return undefined
  }
}

/** Connection errors that mean the request never left: the broker is down or unreachable. */
const connectFailure = /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|Connection timeout/

/** Node's socket errors once a connection was up: a request on it may have been written. */
const connectionLost = /^(ECONNRESET|EPIPE|ECONNABORTED)$/

export interface ClassifyContext {
  readonly topic?: string | undefined
  /** Whether an unknown topic may still appear (auto-creation on): decides UNKNOWN_TOPIC_OR_PARTITION. */
  readonly autoCreateTopics: boolean
}

interface ErrorLike {
  readonly name?: unknown
  readonly type?: unknown
  readonly apiId?: unknown
  readonly message?: unknown
  readonly retriable?: unknown
  readonly canRetry?: unknown
  readonly code?: unknown
  readonly cause?: unknown
  readonly errors?: unknown
}

/**
 * The error, its causes and the errors it aggregates, outermost first, depth first (bounded, cycle-safe):
 * the innermost error is last.
 */
export const causeChain = (error: unknown): ReadonlyArray<ErrorLike> => {
  const chain: Array<ErrorLike> = []
  const visit = (current: unknown): void => {
    if (typeof current !== "object" || current === null || chain.length >= 64 || chain.includes(current)) return
    const e = current as ErrorLike
    chain.push(e)
    if (Array.isArray(e.errors)) for (const inner of e.errors) visit(inner)
    visit(e.cause)
  }
  visit(error)
  return chain
}

/** The protocol error name: kafkajs's `type`, @platformatic/kafka's `apiId`. */
const protocolName = (error: ErrorLike): string | undefined =>
  typeof error.type === "string" ? error.type : typeof error.apiId === "string" ? error.apiId : undefined

const unknownTopic = (context: ClassifyContext): Classification =>
  context.autoCreateTopics ? retriable("UnknownTopicOrPartition") : fatal("UnknownTopic")

const classifyOne = (error: ErrorLike, context: ClassifyContext): Classification | undefined => {
  const protocol = protocolName(error)
  if (protocol !== undefined) {
    if (protocol === "UNKNOWN_TOPIC_OR_PARTITION") return unknownTopic(context)
    const row = protocolErrors[protocol]
    if (row) return row
  }
  const name = typeof error.name === "string" ? error.name : ""
  const message = typeof error.message === "string" ? error.message : ""
  const code = typeof error.code === "string" ? error.code : ""
  const row = clientErrors[name]
  if (row) return row
  if (code.startsWith("PLT_KFK_")) {
    if (code === "PLT_KFK_USER" && /^Unknown topic /.test(message)) return unknownTopic(context)
    return platformaticError(code, message)
  }
  if (connectFailure.test(code)) return retriable("BrokerUnavailable")
  if (connectionLost.test(code)) return retriable("ConnectionClosed", true)
  if (name === "KafkaJSConnectionError") {
    return connectFailure.test(message) || connectFailure.test(String(error.code))
      ? retriable("BrokerUnavailable")
      : retriable("ConnectionClosed", true)
  }
  if (name === "KafkaJSNonRetriableError" && /^Invalid topic/.test(message)) return fatal("InvalidTopic")
  if (name === "KafkaJSNonRetriableError" && /^Invalid message/.test(message)) return fatal("InvalidRecord")
  return undefined
}

/**
 * An earlier attempt inside the client may have reached the broker (a connection closed mid-request, then
 * refused while the broker restarts), so the failure is ambiguous whatever the last error says. kafkajs
 * keeps only the last attempt's error: any retry counts. @platformatic/kafka keeps them all (`rows`): an
 * ambiguous one counts.
 */
const earlierAttemptMayHaveLanded = (
  chain: ReadonlyArray<ErrorLike>,
  rows: ReadonlyArray<Classification | undefined>
): boolean =>
  rows.some((row) => row?.kind === "Retriable" && row.ambiguous) ||
  chain.some(
    (e) =>
      e.name === "KafkaJSNumberOfRetriesExceeded" &&
      typeof (e as { retryCount?: unknown }).retryCount === "number" &&
      (e as { retryCount: number }).retryCount > 0
  )

/** Classifies one driver failure: the innermost error of the cause chain that a row matches decides. */
export const classify = (error: unknown, context: ClassifyContext): Classification => {
  const chain = causeChain(error)
  const rows = chain.map((e) => classifyOne(e, context))
  const found = rows.findLast((row) => row !== undefined)
  if (found) {
    return found.kind === "Retriable" && !found.ambiguous && earlierAttemptMayHaveLanded(chain, rows)
      ? { ...found, ambiguous: true }
      : found
  }
  // Unknown: trust the client's own retriable flag where it set one, and assume the worst (may be written).
  return chain.some((e) => e.retriable === true || e.canRetry === true) ? retriable("Unknown", true) : fatal("Unknown")
}

const describe = (error: unknown): string => {
  const chain = causeChain(error)
  const messages = chain.map((e) => (typeof e.message === "string" ? e.message : "")).filter((m) => m.length > 0)
  return messages.length > 0 ? [...new Set(messages)].join(": ") : String(error)
}

/** Classifies and wraps a driver failure into the typed error channel. */
export const toPublishError = (
  error: unknown,
  context: ClassifyContext & {
    readonly partition?: number | undefined
    /** The client reports that part of the request was written: a retriable failure is then ambiguous. */
    readonly partlyWritten?: boolean | undefined
    /**
     * The client was given the request and may have lost it in flight before the error it reports (kafkajs
     * reports a failed reconnect in place of the lost request): a broker found unavailable is then ambiguous.
     */
    readonly requestSent?: boolean | undefined
  }
): PublishError => {
  const classified = classify(error, context)
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
