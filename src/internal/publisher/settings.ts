/**
 * The `Publisher`'s settings, resolved from its `Options`, and the send every attempt goes through.
 *
 * @internal
 */
import type { Duration, Effect, Option } from "effect"
import type { CircuitBreaker, CircuitOpen } from "../../CircuitBreaker.ts"
import type * as DeadLetter from "../../DeadLetter.ts"
import type * as PublisherMetrics from "../../observability/PublisherMetrics.ts"
import type { Producer, ProducerRecord, RecordMetadata } from "../../Producer.ts"
import type { PublishError } from "../../PublishError.ts"
import type * as RetryPolicy from "../../RetryPolicy.ts"

/** `Publisher.Options` with every default filled in. */
export interface Settings {
  readonly policy: RetryPolicy.RetryPolicy
  readonly deadLetter: DeadLetter.Options | false
  readonly deliveryTimeout: Duration.Duration
  readonly shutdownTimeout: Duration.Duration
  readonly concurrency: number
  readonly batchSize: number
  readonly batchBytes: number
  readonly maxInFlightRequests: number
  readonly metrics: PublisherMetrics.Options
}

export type Send = (
  records: ReadonlyArray<ProducerRecord>
) => Effect.Effect<ReadonlyArray<RecordMetadata>, PublishError | CircuitOpen>

/** The producer's `send`, behind the breaker when the application provides one. */
export const guardedSend = (producer: Producer, breaker: Option.Option<CircuitBreaker>): Send =>
  breaker._tag === "Some" ? (records) => breaker.value.protect(producer.send(records)) : producer.send
