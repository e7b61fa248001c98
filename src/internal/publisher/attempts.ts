/**
 * The attempts of one record: a send, and the retries the `RetryPolicy` allows after a `Retriable` failure,
 * each logged and counted; what the attempts showed (`Tally`), and the receipt or the failure that ends them,
 * marked when an earlier attempt may have written the record.
 *
 * @internal
 */
import { Duration, Effect, Schedule } from "effect"
import { CircuitOpen } from "../../CircuitBreaker.ts"
import * as DeadLetter from "../../DeadLetter.ts"
import type * as PublisherMetrics from "../../observability/PublisherMetrics.ts"
import type { Producer, ProducerRecord, RecordMetadata } from "../../Producer.ts"
import { markPossiblyDelivered, mayHaveWritten, type PublishError, Retriable } from "../../PublishError.ts"
import { Delivered } from "../../Receipt.ts"
import type * as Deadlines from "../deadlines.ts"
import { keyForLogs } from "./observation.ts"
import type { Send, Settings } from "./settings.ts"

export interface DeliverDeps {
  readonly settings: Settings
  readonly producer: Producer
  readonly send: Send
  readonly deadlines: Deadlines.Deadlines
  readonly metrics: PublisherMetrics.Recorder
}

/** What the attempts of one publish have shown so far. */
export interface Tally {
  attempts: number
  /** An attempt failed ambiguously (or was marked so): the record may be in the topic. */
  possiblyDelivered: boolean
}

/**
 * The attempts. Most publishes succeed at the first one, so the retry schedule (and the state it builds for
 * each run) is only set up once an attempt failed. It starts from that failure, replayed once, then
 * resends: the same decisions, delays and logs as `Effect.retry(attempt, logRetry(record))`.
 */
export const sendRetried = (
  deps: Pick<DeliverDeps, "send" | "settings" | "metrics">,
  record: ProducerRecord,
  tally: Tally
) => Effect.catch(attemptOf(deps, record, tally), (first) => retryAfter(deps, record, tally, first))

const attemptOf = (deps: Pick<DeliverDeps, "send">, record: ProducerRecord, tally: Tally) =>
  Effect.suspend(() => {
    tally.attempts++
    return deps.send([record])
  })

export const noteFailure = (tally: Tally, error: PublishError | CircuitOpen) => {
  if (error._tag !== "CircuitOpen" && mayHaveWritten(error)) tally.possiblyDelivered = true
}

/** The retries after a failed attempt (`first`, counted in `tally` already): the policy decides. */
export const retryAfter = (
  deps: Pick<DeliverDeps, "send" | "settings" | "metrics">,
  record: ProducerRecord,
  tally: Tally,
  first: PublishError | CircuitOpen
) => {
  noteFailure(tally, first)
  const resend = Effect.tapError(attemptOf(deps, record, tally), (error) =>
    Effect.sync(() => noteFailure(tally, error))
  )
  let replayed = false
  const again = Effect.suspend(() => {
    if (replayed) return resend
    replayed = true
    return Effect.fail(first)
  })
  return Effect.retry(again, logRetry(deps, record))
}

/** The retry policy, logging each retry of `record` and counting it. */
const logRetry = (deps: Pick<DeliverDeps, "settings" | "metrics">, record: ProducerRecord) =>
  Schedule.tap(deps.settings.policy, ({ input, duration, attempt: retry }) => {
    const error = input as Retriable // the policy lets nothing else through
    return Effect.logWarning("publish failed, retrying").pipe(
      Effect.andThen(deps.metrics.retry(record.topic, DeadLetter.errorType(error))),
      Effect.annotateLogs({
        topic: record.topic,
        key: keyForLogs(record),
        attempt: retry,
        delayMs: Duration.toMillis(duration),
        errorType: DeadLetter.errorType(error),
        error: error.message
      })
    )
  })

/** The delivery timeout passed; `ambiguous` unless the record was certainly never sent. */
export const deliveryTimedOut = (topic: string, deliveryTimeout: Duration.Duration, ambiguous = true) =>
  new Retriable({
    reason: "DeliveryTimeout",
    ambiguous,
    topic,
    message: `delivery timeout: not delivered within ${Duration.format(deliveryTimeout)}`
  })

export const deliveredReceipt = (metadata: RecordMetadata, tally: Tally) =>
  new Delivered({
    topic: metadata.topic,
    partition: metadata.partition,
    offset: metadata.offset,
    timestamp: metadata.timestamp,
    attempts: tally.attempts,
    possibleDuplicate: (tally.possiblyDelivered && tally.attempts > 1) || metadata.possibleDuplicate === true
  })

/** The failure, saying that the record may have been written. */
export const markFailure = <E extends PublishError | CircuitOpen>(error: E): E =>
  error._tag === "CircuitOpen"
    ? (new CircuitOpen({
        message: `${error.message} (an earlier attempt may have written the record)`,
        openedAt: error.openedAt,
        retryAfterMs: error.retryAfterMs,
        possiblyDelivered: true
      }) as E)
    : (markPossiblyDelivered(error as PublishError) as E)
