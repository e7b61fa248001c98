/**
 * @platformatic/kafka's error vocabulary for the core classification (`ErrorClassification`): its errors
 * carry the protocol error name as `apiId` and its own failures as `PLT_KFK_` codes.
 *
 * | kind | reason | @platformatic/kafka errors |
 * | --- | --- | --- |
 * | Retriable | BrokerUnavailable | PLT_KFK_NETWORK "Connection to ... timed out / failed", "Cannot get a connection ..." |
 * | Retriable (ambiguous) | RequestTimeout | PLT_KFK_NETWORK "Request timed out" |
 * | Retriable (ambiguous) | ConnectionClosed | PLT_KFK_NETWORK "Connection closed" / "Connection error" |
 * | Retriable / Fatal | UnknownTopicOrPartition / UnknownTopic | PLT_KFK_USER "Unknown topic ...": follows auto-creation |
 * | Fatal | AuthenticationFailed | PLT_KFK_AUTHENTICATION |
 * | Fatal | UnsupportedVersion | PLT_KFK_UNSUPPORTED_API, PLT_KFK_UNSUPPORTED_COMPRESSION |
 *
 * The client keeps every attempt's error (`MultipleErrors`, an `AggregateError`), so the core's rule "a
 * retriable failure is ambiguous when any attempt's error is" covers its retries. An error it marked
 * `canRetry` that no row explains is Retriable Unknown, ambiguous.
 *
 * This module names the client's codes by string and imports no client code.
 */
import {
  type Classification,
  type ClassifyContext,
  type ClientVocabulary,
  classify as classifyWith,
  type ErrorLike,
  type FailureContext,
  fatal,
  retriable,
  stringField,
  toPublishError as toPublishErrorWith,
  unknownTopic
} from "../ErrorClassification.ts"
import type { PublishError } from "../PublishError.ts"

/**
 * The client's own failures, by `code` and message. Its `TimeoutError` carries the network code, so the
 * message tells a connect timeout (never sent) from a request timeout (maybe written).
 */
const clientError = (error: ErrorLike, context: ClassifyContext): Classification | undefined => {
  const message = stringField(error, "message")
  switch (stringField(error, "code")) {
    case "PLT_KFK_NETWORK":
      if (/^Connection to .* (timed out|failed)/.test(message)) return retriable("BrokerUnavailable")
      if (/^Cannot get a connection/.test(message)) return retriable("BrokerUnavailable")
      if (/^Request timed out/.test(message)) return retriable("RequestTimeout", true)
      if (/^Connection (closed|error)/.test(message)) return retriable("ConnectionClosed", true)
      return undefined
    case "PLT_KFK_USER":
      return /^Unknown topic /.test(message) ? unknownTopic(context) : undefined
    case "PLT_KFK_AUTHENTICATION":
      return fatal("AuthenticationFailed")
    case "PLT_KFK_UNSUPPORTED_API":
    case "PLT_KFK_UNSUPPORTED_COMPRESSION":
      return fatal("UnsupportedVersion")
    default:
      return undefined
  }
}

/** @platformatic/kafka's vocabulary: `apiId` is the protocol error name; `canRetry` its own flag. */
export const vocabulary: ClientVocabulary = {
  protocolName: (error) => (typeof error.apiId === "string" ? error.apiId : undefined),
  clientError,
  // it keeps every attempt's error: the core's "any ambiguous attempt" rule covers its retries
  retriedInside: () => false,
  markedRetriable: (error) => error.canRetry === true
}

/** Classifies a @platformatic/kafka failure (see the table above and `ErrorClassification`). */
export const classify = (error: unknown, context: ClassifyContext): Classification =>
  classifyWith(error, context, vocabulary)

/** Classifies a @platformatic/kafka failure and wraps it into `Retriable` / `Fatal`. */
export const toPublishError = (error: unknown, context: FailureContext): PublishError =>
  toPublishErrorWith(error, context, vocabulary)
