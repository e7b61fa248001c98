/**
 * The service users call: `publish(topic, event)` validates and encodes the event, sends it, retries
 * `Retriable` failures on the `RetryPolicy`, bounds the whole publish by the delivery timeout, and routes
 * `Fatal` failures and exhausted retries to the dead-letter topic. It answers a `Receipt`
 * (`Delivered` / `DeadLettered`) or a typed error.
 *
 * Lifecycle: a `Publisher` is a scoped resource. Once a publish is accepted (the event encoded and the
 * publisher open) it runs to its end in a fiber owned by the publisher, not by the caller: interrupting the
 * caller does not abandon a record half-way. Closing the scope (SIGINT/SIGTERM under `NodeRuntime.runMain`)
 * stops new publishes with `PublisherClosed`, waits up to `shutdownTimeout` for the accepted ones, and only
 * then lets the `Producer` layer below disconnect.
 *
 * ## Which layer retries what (the idempotence decision)
 *
 * With idempotence on (the default), the driver retries an in-flight produce request itself with the same
 * producer id and sequence numbers, so the broker drops a copy it already wrote. A broker pause, a leader
 * change or a lost connection is absorbed there, without duplicates, as long as the driver's own retries
 * last (kafkajs: `retry` in the driver config; a request waits up to `requestTimeout`, 30 s, for a paused
 * broker). Only when the driver gives up does the failure reach this layer.
 *
 * This layer's retries resend the record, as a new request with new sequence numbers. That is safe when
 * the broker certainly did not write it (connection refused, not leader, not enough replicas, unknown topic
 * while it is being created): the error has `ambiguous: false`. After an ambiguous failure (request
 * timeout, connection closed mid-request, `NOT_ENOUGH_REPLICAS_AFTER_APPEND`, delivery timeout) a resend
 * may duplicate the record: the resulting receipt says `possibleDuplicate: true`, and a dead-lettered one
 * carries the header `ambiguous: true`. Nothing ambiguous is silent.
 */
import {
  Context,
  Duration,
  Effect,
  type Exit,
  Fiber,
  FiberSet,
  Layer,
  Result,
  Schedule,
  type Scope,
  Tracer
} from "effect"
import { CircuitBreaker, type CircuitOpen } from "./CircuitBreaker.ts"
import * as DeadLetter from "./DeadLetter.ts"
import { Health, type Outcome } from "./Health.ts"
import * as Deadlines from "./internal/deadlines.ts"
import * as PublisherMetrics from "./observability/PublisherMetrics.ts"
import * as TraceContext from "./observability/TraceContext.ts"
import { Producer, type ProducerRecord } from "./Producer.ts"
import { type DeadLetterFailed, type Fatal, PublishAllFailed, PublisherClosed, Retriable } from "./PublishError.ts"
import { type DeadLettered, Delivered, type Receipt } from "./Receipt.ts"
import * as RetryPolicy from "./RetryPolicy.ts"
import * as Topic from "./Topic.ts"

/** Everything a publish can fail with. `CircuitOpen` only when a `CircuitBreaker` is provided. */
export type PublishFailure = Retriable | Fatal | PublisherClosed | DeadLetterFailed | CircuitOpen

export interface Options {
  /** Application-level retries. Default `RetryPolicy.defaultPolicy`. */
  readonly retry?: RetryPolicy.RetryPolicy | undefined
  /** Dead-letter options, or `false` to fail with the error instead. Default: on, `<topic>.dlt`. */
  readonly deadLetter?: DeadLetter.Options | false | undefined
  /** Bounds one whole publish, retries included (Java: `delivery.timeout.ms`). Default 120 s. */
  readonly deliveryTimeout?: Duration.Input | undefined
  /** How long closing waits for accepted publishes. Default 30 s. */
  readonly shutdownTimeout?: Duration.Input | undefined
  /** Default concurrency of `publishAll`. Default 16. */
  readonly concurrency?: number | undefined
}

export interface Publisher {
  /** Validates, encodes and publishes one event. */
  readonly publish: <A, I>(topic: Topic.Topic<A, I>, event: A) => Effect.Effect<Receipt, PublishFailure>
  /**
   * Publishes every event, at most `concurrency` at a time. Every event is settled (none is abandoned
   * because another failed); if any failed, `PublishAllFailed` holds the failures and the other receipts.
   */
  readonly publishAll: <A, I>(
    topic: Topic.Topic<A, I>,
    events: Iterable<A>,
    options?: { readonly concurrency?: number | undefined }
  ) => Effect.Effect<ReadonlyArray<Receipt>, PublishAllFailed>
  /** Publishes an already serialized record (no Schema): the same retries, dead-letter and lifecycle. */
  readonly publishRecord: (record: ProducerRecord) => Effect.Effect<Receipt, PublishFailure>
  /** Publishes accepted and not finished yet. */
  readonly inFlight: Effect.Effect<number>
}

export const Publisher = Context.Service<Publisher>("effect-kafka-publisher/Publisher")

export const defaults = {
  deliveryTimeout: Duration.seconds(120),
  shutdownTimeout: Duration.seconds(30),
  concurrency: 16
} as const

const keyForLogs = (record: ProducerRecord): string | undefined =>
  record.key === null
    ? undefined
    : Buffer.from(record.key.buffer, record.key.byteOffset, record.key.byteLength).toString("utf8") // a view, no copy

export const make = (options: Options = {}): Effect.Effect<Publisher, never, Producer | Scope.Scope> =>
  Effect.gen(function* () {
    const producer = yield* Producer
    // optional collaborators: used when the application provides them
    const breaker = yield* Effect.serviceOption(CircuitBreaker)
    const health = yield* Effect.serviceOption(Health)
    const guarded =
      breaker._tag === "Some"
        ? (records: ReadonlyArray<ProducerRecord>) => breaker.value.protect(producer.send(records))
        : producer.send
    const policy = options.retry ?? RetryPolicy.defaultPolicy
    const deadLetter = options.deadLetter ?? {}
    const deliveryTimeout = Duration.fromInputUnsafe(options.deliveryTimeout ?? defaults.deliveryTimeout)
    const shutdownTimeout = Duration.fromInputUnsafe(options.shutdownTimeout ?? defaults.shutdownTimeout)
    const defaultConcurrency = options.concurrency ?? defaults.concurrency

    // Accepted publishes run here, owned by the publisher: the caller's interruption does not cut them off.
    const accepted = yield* FiberSet.make<Receipt, PublishFailure>()
    // The delivery timeout of every publish, on one timer (it outlives the drain below: finalizers run LIFO).
    const deadlines = yield* Deadlines.make(deliveryTimeout)
    let closed = false
    // counted here, not read off the FiberSet: a publish that completes at once is never seen in the set
    let inFlight = 0
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        closed = true
        const pending = yield* FiberSet.size(accepted)
        if (pending === 0) return
        yield* Effect.logInfo("publisher closing: waiting for accepted publishes").pipe(
          Effect.annotateLogs({ inFlight: pending })
        )
        const drained = yield* FiberSet.awaitEmpty(accepted).pipe(Effect.timeoutOption(shutdownTimeout))
        if (drained._tag === "None") {
          yield* Effect.logError("publisher shutdown timeout: interrupting publishes still in flight").pipe(
            Effect.annotateLogs({ inFlight: yield* FiberSet.size(accepted) })
          )
        }
      })
    )

    /** The retry policy, logging each retry of `record` and counting it. */
    const logRetry = (record: ProducerRecord) =>
      Schedule.tap(policy, ({ input, duration, attempt: retry }) => {
        const error = input as Retriable // the policy lets nothing else through
        return Effect.logWarning("publish failed, retrying").pipe(
          Effect.andThen(PublisherMetrics.recordRetry(record.topic, DeadLetter.errorType(error))),
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

    /** Sends `record`, retries and dead-letters it. Built when its publish starts (inside `observed`). */
    const deliver = (record: ProducerRecord): Effect.Effect<Receipt, PublishFailure> => {
      let attempts = 0
      let ambiguousBefore = false
      const noteFailure = (error: PublishFailure) => {
        if (error._tag === "Retriable" && error.ambiguous) ambiguousBefore = true
      }
      const attempt = Effect.suspend(() => {
        attempts++
        return guarded([record])
      })
      // Most publishes succeed at the first attempt, so the retry schedule (and the state it builds for
      // each run) is only set up once an attempt failed. It starts from that failure, replayed once, then
      // resends: the same decisions, delays and logs as `Effect.retry(attempt, logRetry(record))`.
      const retried = Effect.catch(attempt, (first) => {
        noteFailure(first)
        const resend = Effect.tapError(attempt, (error) => Effect.sync(() => noteFailure(error)))
        let replayed = false
        const again = Effect.suspend(() => {
          if (replayed) return resend
          replayed = true
          return Effect.fail(first)
        })
        return Effect.retry(again, logRetry(record))
      })
      const delivered = deadlines
        .bound(retried, () =>
          Effect.fail(
            new Retriable({
              reason: "DeliveryTimeout",
              ambiguous: true,
              topic: record.topic,
              message: `delivery timeout: not delivered within ${Duration.format(deliveryTimeout)}`
            })
          )
        )
        .pipe(
          Effect.map(
            ([metadata]) =>
              new Delivered({
                topic: metadata!.topic,
                partition: metadata!.partition,
                offset: metadata!.offset,
                timestamp: metadata!.timestamp,
                attempts,
                possibleDuplicate: ambiguousBefore && attempts > 1
              })
          )
        )
      if (deadLetter === false) return delivered
      return DeadLetter.recover(
        producer,
        record,
        () => ({ attempts, possiblyDelivered: ambiguousBefore }),
        deadLetter
      )(delivered)
    }

    const publishRecord = (record: ProducerRecord): Effect.Effect<Receipt, PublishFailure> =>
      Effect.suspend(() => {
        if (closed) {
          return Effect.fail(
            new PublisherClosed({ topic: record.topic, message: "the publisher is shutting down: not accepted" })
          )
        }
        return FiberSet.run(accepted, observed(record)).pipe(Effect.flatMap(Fiber.join))
      })

    /**
     * One PRODUCER span per publish ("send <topic>", OpenTelemetry messaging conventions) whose context is
     * injected into the record headers, plus the metrics. Retries show as span events (their log lines).
     *
     * `useSpan` and `ParentSpan` rather than `Effect.withSpan`: the span is the current one all the same
     * (log lines, the dead-letter span and the driver's spans hang under it), but `withSpan` also captures a
     * stack trace (an `Error`) on every call and pushes a stack frame that only points into this file: more
     * CPU time than the rest of the span, and about 1 KB of the memory each waiting publish holds.
     */
    const observed = (record: ProducerRecord): Effect.Effect<Receipt, PublishFailure> =>
      Effect.useSpan(`send ${record.topic}`, spanOptions(record), (span) =>
        Effect.provideService(sendTraced(record, span), Tracer.ParentSpan, span)
      )

    const sendTraced = (record: ProducerRecord, span: Tracer.Span): Effect.Effect<Receipt, PublishFailure> =>
      Effect.clockWith((clock) => {
        const started = clock.currentTimeMillisUnsafe()
        const traced = { ...record, headers: { ...record.headers, ...TraceContext.inject(span) } }
        inFlight++
        return Effect.andThen(
          PublisherMetrics.setInFlight(inFlight),
          Effect.onExit(deliver(traced), (exit) => {
            inFlight--
            return finished(record, span, exit, (clock.currentTimeMillisUnsafe() - started) / 1000)
          })
        )
      })

    /**
     * What a publish leaves behind when it ends: health, metrics, span attributes and, on failure, logs.
     * Also when it was interrupted (the shutdown timeout): it counts as failed ("Interrupted"), and the
     * in-flight gauge goes down again.
     */
    const finished = (
      record: ProducerRecord,
      span: Tracer.Span,
      exit: Exit.Exit<Receipt, PublishFailure>,
      seconds: number
    ): Effect.Effect<void> => {
      const outcome = health._tag === "Some" ? healthOutcome(exit) : undefined
      const recorded =
        health._tag === "Some" && outcome !== undefined
          ? Effect.andThen(health.value.record(outcome), PublisherMetrics.setInFlight(inFlight))
          : PublisherMetrics.setInFlight(inFlight)
      if (exit._tag === "Success") {
        const receipt = exit.value
        if (receipt._tag === "Delivered") {
          annotate(span, {
            "messaging.destination.partition.id": String(receipt.partition),
            "messaging.kafka.offset": receipt.offset,
            "messaging.kafka.attempts": receipt.attempts
          })
          return Effect.andThen(recorded, PublisherMetrics.recordDelivered(record.topic, seconds))
        }
        const errorType = DeadLetter.errorType(receipt.error)
        annotate(span, {
          "error.type": errorType,
          "messaging.kafka.dead_letter.topic": receipt.deadLetterTopic,
          "messaging.kafka.attempts": receipt.attempts
        })
        return recorded.pipe(
          Effect.andThen(logDeadLettered(record, receipt)),
          Effect.andThen(PublisherMetrics.recordDeadLettered(record.topic, errorType, seconds))
        )
      }
      const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error
      const errorType = error === undefined ? "Interrupted" : failureType(error)
      annotate(span, { "error.type": errorType })
      return recorded.pipe(
        Effect.andThen(error?._tag === "DeadLetterFailed" ? logDeadLetterFailed(record, error) : Effect.void),
        Effect.andThen(PublisherMetrics.recordFailed(record.topic, errorType, seconds))
      )
    }

    const publish = <A, I>(topic: Topic.Topic<A, I>, event: A): Effect.Effect<Receipt, PublishFailure> =>
      Effect.suspend(() =>
        closed
          ? Effect.fail(
              new PublisherClosed({ topic: topic.name, message: "the publisher is shutting down: not accepted" })
            )
          : Topic.encode(topic, event).pipe(Effect.flatMap(publishRecord))
      )

    const publishAll = <A, I>(
      topic: Topic.Topic<A, I>,
      events: Iterable<A>,
      opts?: { readonly concurrency?: number | undefined }
    ): Effect.Effect<ReadonlyArray<Receipt>, PublishAllFailed> =>
      Effect.forEach(events, (event) => Effect.result(publish(topic, event)), {
        concurrency: opts?.concurrency ?? defaultConcurrency
      }).pipe(
        Effect.flatMap((results) => {
          const failures: Array<{ index: number; error: PublishFailure }> = []
          const receipts = results.map((result, index) => {
            if (Result.isSuccess(result)) return result.success
            failures.push({ index, error: result.failure })
            return undefined
          })
          if (failures.length === 0) return Effect.succeed(receipts as ReadonlyArray<Receipt>)
          return Effect.fail(
            new PublishAllFailed({
              message: `${failures.length} of ${results.length} events to ${topic.name} failed`,
              topic: topic.name,
              receipts,
              failures
            })
          )
        })
      )

    return Publisher.of({ publish, publishAll, publishRecord, inFlight: Effect.sync(() => inFlight) })
  })

/** What a publish tells the health window; a CircuitOpen rejection tells nothing new (the breaker says it). */
const healthOutcome = (exit: Exit.Exit<Receipt, PublishFailure>): Outcome | undefined => {
  if (exit._tag === "Success") return exit.value._tag === "Delivered" ? "success" : "deadLettered"
  const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error
  return error?._tag === "CircuitOpen" ? undefined : "failure"
}

const failureType = (error: PublishFailure): string =>
  error._tag === "Retriable" || error._tag === "Fatal" ? DeadLetter.errorType(error) : error._tag

const spanOptions = (record: ProducerRecord): Tracer.SpanOptionsNoTrace => ({
  kind: "producer",
  attributes: {
    "messaging.system": "kafka",
    "messaging.operation.name": "send",
    "messaging.operation.type": "send",
    "messaging.destination.name": record.topic,
    ...(record.key === null ? {} : { "messaging.kafka.message.key": keyForLogs(record) })
  }
})

/** As `Effect.annotateCurrentSpan` does, on the span at hand (still open: it ends after `finished`). */
const annotate = (span: Tracer.Span, attributes: Record<string, unknown>): void => {
  if (span.status._tag === "Ended") return
  for (const key in attributes) span.attribute(key, attributes[key])
}

/** An error line about `record`: its topic and key, and what went wrong. */
const logFailure = (message: string, record: ProducerRecord, annotations: Record<string, unknown>) =>
  Effect.logError(message).pipe(Effect.annotateLogs({ topic: record.topic, key: keyForLogs(record), ...annotations }))

const logDeadLettered = (record: ProducerRecord, receipt: DeadLettered) =>
  logFailure("publish failed: record dead-lettered", record, {
    deadLetterTopic: receipt.deadLetterTopic,
    attempts: receipt.attempts,
    errorType: DeadLetter.errorType(receipt.error),
    error: receipt.error.message
  })

const logDeadLetterFailed = (record: ProducerRecord, error: DeadLetterFailed) =>
  logFailure("publish failed and the dead-letter write failed too", record, {
    deadLetterTopic: error.deadLetterTopic,
    errorType: DeadLetter.errorType(error.original),
    deadLetterErrorType: DeadLetter.errorType(error.deadLetterError)
  })

/** The Publisher over whichever `Producer` layer is provided (kafkajs, FakeKafka, ...). */
export const layer = (options: Options = {}): Layer.Layer<Publisher, never, Producer> =>
  Layer.effect(Publisher, make(options))
