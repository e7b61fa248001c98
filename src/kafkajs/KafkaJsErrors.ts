/**
 * kafkajs's error vocabulary for the core classification (`ErrorClassification`): where its errors carry
 * the protocol error name (`error.type`), its own error classes, and how it reports retries it made itself.
 *
 * | kind | reason | kafkajs errors |
 * | --- | --- | --- |
 * | Retriable | BrokerUnavailable | KafkaJSConnectionError "connect ECONNREFUSED ..." / "Connection timeout", KafkaJSNoBrokerAvailableError, KafkaJSBrokerNotFound, KafkaJSMetadataNotLoaded, KafkaJSTopicMetadataNotLoaded, KafkaJSGroupCoordinatorNotFound (no broker answered FindCoordinator: nothing was sent to the coordinator) |
 * | Retriable (ambiguous) | ConnectionClosed | KafkaJSConnectionClosedError, any other KafkaJSConnectionError (the connection broke mid-request) |
 * | Retriable (ambiguous) | RequestTimeout | KafkaJSRequestTimeoutError |
 * | Retriable | LeaderNotAvailable | KafkaJSStaleTopicMetadataAssignment |
 * | Retriable | Throttled | KafkaJSLockTimeout (request not sent) |
 * | Retriable (ambiguous) | NotLeader | KafkaJSWouldWriteAgain (the transactional driver refused kafkajs's resend of records already written, `produceRetries.ts`) |
 * | Fatal | AuthenticationFailed | KafkaJSSASLAuthenticationError |
 * | Fatal | UnsupportedVersion | KafkaJSServerDoesNotSupportApiKey |
 * | Fatal | InvalidTopic | KafkaJSNonRetriableError "Invalid topic" |
 * | Fatal | InvalidRecord | KafkaJSNonRetriableError "Invalid message ..." |
 *
 * kafkajs keeps only the last attempt's error when its retrier gives up (`KafkaJSNumberOfRetriesExceeded`):
 * with `retryCount > 0` an earlier attempt may have been written, so a retriable failure is ambiguous.
 * An error kafkajs marked `retriable` that no row explains is Retriable Unknown, ambiguous.
 *
 * This module names kafkajs's classes by string and imports no kafkajs code.
 */
import {
  type Classification,
  type ClassifyContext,
  type ClientVocabulary,
  classify as classifyWith,
  type ErrorLike,
  type FailureContext,
  fatal,
  lookup,
  retriable,
  stringField,
  table,
  toPublishError as toPublishErrorWith
} from "../ErrorClassification.ts"
import type { PublishError } from "../PublishError.ts"

/** kafkajs's own failures, by error class name (`error.name`). */
export const clientErrors: Readonly<Record<string, Classification>> = table({
  KafkaJSConnectionClosedError: retriable("ConnectionClosed", true),
  KafkaJSRequestTimeoutError: retriable("RequestTimeout", true),
  KafkaJSNoBrokerAvailableError: retriable("BrokerUnavailable"),
  KafkaJSBrokerNotFound: retriable("BrokerUnavailable"),
  KafkaJSMetadataNotLoaded: retriable("BrokerUnavailable"),
  KafkaJSTopicMetadataNotLoaded: retriable("BrokerUnavailable"),
  // kafkajs gives up finding the (transaction) coordinator: a broker paused or down; nothing was sent to it
  KafkaJSGroupCoordinatorNotFound: retriable("BrokerUnavailable"),
  KafkaJSStaleTopicMetadataAssignment: retriable("LeaderNotAvailable"),
  KafkaJSLockTimeout: retriable("Throttled"),
  // the driver's own guard (produceRetries.ts): a retry would have written records again after a leader change
  KafkaJSWouldWriteAgain: retriable("NotLeader", true),
  KafkaJSSASLAuthenticationError: fatal("AuthenticationFailed"),
  KafkaJSServerDoesNotSupportApiKey: fatal("UnsupportedVersion")
})

/** A KafkaJSConnectionError of a connection that never came up (message or Node code). */
const neverConnected = /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|Connection timeout/

const clientError = (error: ErrorLike, _context: ClassifyContext): Classification | undefined => {
  const name = stringField(error, "name")
  const row = lookup(clientErrors, name)
  if (row !== undefined) return row
  const message = stringField(error, "message")
  if (name === "KafkaJSConnectionError") {
    return neverConnected.test(message) || neverConnected.test(stringField(error, "code"))
      ? retriable("BrokerUnavailable")
      : retriable("ConnectionClosed", true)
  }
  if (name === "KafkaJSNonRetriableError" && /^Invalid topic/.test(message)) return fatal("InvalidTopic")
  if (name === "KafkaJSNonRetriableError" && /^Invalid message/.test(message)) return fatal("InvalidRecord")
  return undefined
}

/** kafkajs's vocabulary: `type` is the protocol error name; `retriable` its own flag. */
export const vocabulary: ClientVocabulary = {
  protocolName: (error) => (typeof error.type === "string" ? error.type : undefined),
  clientError,
  retriedInside: (chain) =>
    chain.some(
      (e) => e.name === "KafkaJSNumberOfRetriesExceeded" && typeof e.retryCount === "number" && e.retryCount > 0
    ),
  markedRetriable: (error) => error.retriable === true
}

/** Classifies a kafkajs failure (see the table above and `ErrorClassification`). */
export const classify = (error: unknown, context: ClassifyContext): Classification =>
  classifyWith(error, context, vocabulary)

/** Classifies a kafkajs failure and wraps it into `Retriable` / `Fatal`. */
export const toPublishError = (error: unknown, context: FailureContext): PublishError =>
  toPublishErrorWith(error, context, vocabulary)
