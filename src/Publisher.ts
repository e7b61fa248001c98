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
 *
 * Whatever stops the retries (exhausted, a `Fatal` answer, the breaker's `CircuitOpen`), a failure that
 * follows an ambiguous attempt says so: a dead letter has `ambiguous: true` and `possiblyDelivered`, and an
 * error returned to the caller (`Retriable`, `Fatal`, `CircuitOpen`) has `possiblyDelivered: true`. A
 * caller that resends after such an error may duplicate the record.
 *
 * @module
 */
import {
  Context,
  Duration,
  Effect,
  type Exit,
  Fiber,
  FiberSet,
  Layer,
  type Option,
  Result,
  Schedule,
  type Scope,
  Tracer
} from "effect"
import { CircuitBreaker, CircuitOpen } from "./CircuitBreaker.ts"
import * as DeadLetter from "./DeadLetter.ts"
import { Health, type Outcome } from "./Health.ts"
import * as Deadlines from "./internal/deadlines.ts"
import { monotonicMillis } from "./internal/deadlines.ts"
import * as PublisherMetrics from "./observability/PublisherMetrics.ts"
import * as TraceContext from "./observability/TraceContext.ts"
import { Producer, type ProducerRecord, type RecordMetadata } from "./Producer.ts"
import {
  type DeadLetterFailed,
  type Fatal,
  markPossiblyDelivered,
  mayHaveWritten,
  PublishAllFailed,
  type PublishError,
  PublisherClosed,
  Retriable
} from "./PublishError.ts"
import { type DeadLettered, Delivered, type Receipt } from "./Receipt.ts"
import * as RetryPolicy from "./RetryPolicy.ts"
import * as Topic from "./Topic.ts"

/**
 * Everything a publish can fail with. `CircuitOpen` only when a `CircuitBreaker` is provided;
 * `PublisherClosed` once the publisher's scope is closing.
 */
export type PublishFailure = Retriable | Fatal | PublisherClosed | DeadLetterFailed | CircuitOpen

/** How a publisher retries, dead-letters, bounds and closes; every field has a default (`defaults`). */
export interface Options {
  /** Application-level retries (each resends the record). Default `RetryPolicy.defaultPolicy`. */
  readonly retry?: RetryPolicy.RetryPolicy | undefined
  /** Dead-letter options, or `false` to fail with the error instead. Default: on, `<topic>.dlt`. */
  readonly deadLetter?: DeadLetter.Options | false | undefined
  /** Bounds one whole publish, retries included (Java: `delivery.timeout.ms`). Default 120 s. */
  readonly deliveryTimeout?: Duration.Input | undefined
  /** How long closing waits for accepted publishes. Default 30 s. */
  readonly shutdownTimeout?: Duration.Input | undefined
  /** Default concurrency of `publishAll`. Default 16. */
  readonly concurrency?: number | undefined
  /** Metric series of this publisher (cap on per-topic series). Default `PublisherMetrics.defaults`. */
  readonly metrics?: PublisherMetrics.Options | undefined
}

/** The publishing service. */
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

/** The `Publisher` service tag. */
export const Publisher = Context.Service<Publisher>("effect-kafka-publisher/Publisher")

/** The defaults of `Options` (Java: `delivery.timeout.ms` 120 s). */
export const defaults = {
  /** 120 s, Java's `delivery.timeout.ms`. */
  deliveryTimeout: Duration.seconds(120),
  /** 30 s. */
  shutdownTimeout: Duration.seconds(30),
  /** 16 events of one `publishAll` at a time. */
  concurrency: 16
} as const

/**
 * A scoped `Publisher` over the `Producer` in context (and the `CircuitBreaker` and `Health` services when
 * provided). Closing the scope refuses new publishes and waits for the accepted ones (`shutdownTimeout`).
 */
export const make = (options: Options = {}): Effect.Effect<Publisher, never, Producer | Scope.Scope> =>
  Effect.gen(function* () {
    const settings = resolve(options)
    const producer = yield* Producer
    const breaker = yield* Effect.serviceOption(CircuitBreaker)
    const health = yield* Effect.serviceOption(Health)
    const metrics = yield* PublisherMetrics.make(settings.metrics)
    // Made before the lifecycle: finalizers run in reverse, so the deadlines still fire during the drain.
    const deadlines = yield* Deadlines.make(settings.deliveryTimeout)
    const lifecycle = yield* makeLifecycle(settings.shutdownTimeout)
    const deliver = makeDeliver({ settings, producer, send: guardedSend(producer, breaker), deadlines, metrics })
    const observed = makeObserved({ deliver, metrics, health })
    const publishRecord = (record: ProducerRecord): Effect.Effect<Receipt, PublishFailure> =>
      lifecycle.accept(record.topic, observed(record))
    const publish = <A, I>(topic: Topic.Topic<A, I>, event: A): Effect.Effect<Receipt, PublishFailure> =>
      Effect.flatMap(Topic.encode(topic, event), publishRecord)
    return Publisher.of({
      publish,
      publishAll: (topic, events, opts) => publishAllWith(publish, settings.concurrency, topic, events, opts),
      publishRecord,
      inFlight: observed.inFlight
    })
  })

/** The Publisher over whichever `Producer` layer is provided (kafkajs, FakeKafka, ...). */
export const layer = (options: Options = {}): Layer.Layer<Publisher, never, Producer> =>
  Layer.effect(Publisher, make(options))

// --- settings ------------------------------------------------------------------------------------------

interface Settings {
  readonly policy: RetryPolicy.RetryPolicy
  readonly deadLetter: DeadLetter.Options | false
  readonly deliveryTimeout: Duration.Duration
  readonly shutdownTimeout: Duration.Duration
  readonly concurrency: number
  readonly metrics: PublisherMetrics.Options
}

const resolve = (options: Options): Settings => ({
  policy: options.retry ?? RetryPolicy.defaultPolicy,
  deadLetter: options.deadLetter ?? {},
  deliveryTimeout: Duration.fromInputUnsafe(options.deliveryTimeout ?? defaults.deliveryTimeout),
  shutdownTimeout: Duration.fromInputUnsafe(options.shutdownTimeout ?? defaults.shutdownTimeout),
  concurrency: options.concurrency ?? defaults.concurrency,
  metrics: options.metrics ?? {}
})

type Send = (
  records: ReadonlyArray<ProducerRecord>
) => Effect.Effect<ReadonlyArray<RecordMetadata>, PublishError | CircuitOpen>

/** The producer's `send`, behind the breaker when the application provides one. */
const guardedSend = (producer: Producer, breaker: Option.Option<CircuitBreaker>): Send =>
  breaker._tag === "Some" ? (records) => breaker.value.protect(producer.send(records)) : producer.send

// --- lifecycle: accepting publishes, and closing ----------------------------------------------------------

interface Lifecycle {
  /** Runs an accepted publish in a fiber the publisher owns, or refuses it once closing has begun. */
  readonly accept: (
    topic: string,
    publish: Effect.Effect<Receipt, PublishFailure>
  ) => Effect.Effect<Receipt, PublishFailure>
}

/**
 * Accepted publishes run in a `FiberSet` owned by the publisher: the caller's interruption does not cut
 * them off. Closing sets `closed` (the one check of the publisher), then waits up to `shutdownTimeout` for
 * them; the `FiberSet`'s own finalizer then interrupts what is left.
 */
const makeLifecycle = (shutdownTimeout: Duration.Duration): Effect.Effect<Lifecycle, never, Scope.Scope> =>
  Effect.gen(function* () {
    const accepted = yield* FiberSet.make<Receipt, PublishFailure>()
    let closed = false
    yield* Effect.addFinalizer(() => {
      closed = true
      return drain(accepted, shutdownTimeout)
    })
    // The check and the fork are one synchronous step: no publish can pass the check and then find the set
    // closed (interrupted, not refused), or join it after the drain looked.
    const accept = (topic: string, publish: Effect.Effect<Receipt, PublishFailure>) =>
      Effect.withFiber((caller) => {
        if (closed) {
          return Effect.fail(new PublisherClosed({ topic, message: "the publisher is shutting down: not accepted" }))
        }
        const fiber = Effect.runForkWith(caller.context)(publish) // starts at once, as FiberSet.run does
        FiberSet.addUnsafe(accepted, fiber)
        return Fiber.join(fiber)
      })
    return { accept }
  })

/** Waits for accepted publishes, at most `timeout`; logs what it waits for and what it gives up on. */
const drain = (accepted: FiberSet.FiberSet<Receipt, PublishFailure>, timeout: Duration.Duration) =>
  Effect.gen(function* () {
    const pending = yield* FiberSet.size(accepted)
    if (pending === 0) return
    yield* Effect.logInfo("publisher closing: waiting for accepted publishes").pipe(
      Effect.annotateLogs({ inFlight: pending })
    )
    const drained = yield* FiberSet.awaitEmpty(accepted).pipe(Effect.timeoutOption(timeout))
    if (drained._tag === "None") {
      yield* Effect.logError("publisher shutdown timeout: interrupting publishes still in flight").pipe(
        Effect.annotateLogs({ inFlight: yield* FiberSet.size(accepted) })
      )
    }
  })

// --- delivery: send, retry, bound, dead-letter -------------------------------------------------------------

interface DeliverDeps {
  readonly settings: Settings
  readonly producer: Producer
  readonly send: Send
  readonly deadlines: Deadlines.Deadlines
  readonly metrics: PublisherMetrics.Recorder
}

/** What the attempts of one publish have shown so far. */
interface Tally {
  attempts: number
  /** An attempt failed ambiguously (or was marked so): the record may be in the topic. */
  possiblyDelivered: boolean
}

/** Sends a record, retries it, bounds it by the delivery timeout, and dead-letters what fails. */
const makeDeliver =
  (deps: DeliverDeps) =>
  (record: ProducerRecord): Effect.Effect<Receipt, PublishFailure> => {
    const tally: Tally = { attempts: 0, possiblyDelivered: false }
    const { deliveryTimeout, deadLetter } = deps.settings
    const bounded = deps.deadlines.bound(sendRetried(deps, record, tally), () =>
      Effect.fail(deliveryTimedOut(record.topic, deliveryTimeout))
    )
    const delivered = Effect.map(bounded, ([metadata]) => deliveredReceipt(metadata!, tally))
    // whatever stopped the retries, the failure says when an earlier attempt may have written the record
    const marked = Effect.mapError(delivered, (error) => (tally.possiblyDelivered ? markFailure(error) : error))
    if (deadLetter === false) return marked
    return DeadLetter.recover(deps.producer, record, () => tally, deadLetter)(marked)
  }

/**
 * The attempts. Most publishes succeed at the first one, so the retry schedule (and the state it builds for
 * each run) is only set up once an attempt failed. It starts from that failure, replayed once, then
 * resends: the same decisions, delays and logs as `Effect.retry(attempt, logRetry(record))`.
 */
const sendRetried = (deps: DeliverDeps, record: ProducerRecord, tally: Tally) => {
  const note = (error: PublishError | CircuitOpen) => {
    if (error._tag !== "CircuitOpen" && mayHaveWritten(error)) tally.possiblyDelivered = true
  }
  const attempt = Effect.suspend(() => {
    tally.attempts++
    return deps.send([record])
  })
  return Effect.catch(attempt, (first) => {
    note(first)
    const resend = Effect.tapError(attempt, (error) => Effect.sync(() => note(error)))
    let replayed = false
    const again = Effect.suspend(() => {
      if (replayed) return resend
      replayed = true
      return Effect.fail(first)
    })
    return Effect.retry(again, logRetry(deps, record))
  })
}

/** The retry policy, logging each retry of `record` and counting it. */
const logRetry = (deps: DeliverDeps, record: ProducerRecord) =>
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

const deliveryTimedOut = (topic: string, deliveryTimeout: Duration.Duration) =>
  new Retriable({
    reason: "DeliveryTimeout",
    ambiguous: true,
    topic,
    message: `delivery timeout: not delivered within ${Duration.format(deliveryTimeout)}`
  })

const deliveredReceipt = (metadata: RecordMetadata, tally: Tally) =>
  new Delivered({
    topic: metadata.topic,
    partition: metadata.partition,
    offset: metadata.offset,
    timestamp: metadata.timestamp,
    attempts: tally.attempts,
    possibleDuplicate: tally.possiblyDelivered && tally.attempts > 1
  })

/** The failure, saying that the record may have been written. */
const markFailure = <E extends PublishError | CircuitOpen>(error: E): E =>
  error._tag === "CircuitOpen"
    ? (new CircuitOpen({
        message: `${error.message} (an earlier attempt may have written the record)`,
        openedAt: error.openedAt,
        retryAfterMs: error.retryAfterMs,
        possiblyDelivered: true
      }) as E)
    : (markPossiblyDelivered(error as PublishError) as E)

// --- observation: span, trace headers, metrics, health, logs ------------------------------------------------

interface ObserveDeps {
  readonly deliver: (record: ProducerRecord) => Effect.Effect<Receipt, PublishFailure>
  readonly metrics: PublisherMetrics.Recorder
  readonly health: Option.Option<Health>
}

/**
 * One PRODUCER span per publish ("send <topic>", OpenTelemetry messaging conventions) whose context is
 * written into the record headers (see `TraceContext` for a record that brings its own), plus the metrics
 * and health. Retries show as span events (their log lines). Also counts the publishes in flight.
 *
 * `useSpan` and `ParentSpan` rather than `Effect.withSpan`: the span is the current one all the same
 * (log lines, the dead-letter span and the driver's spans hang under it), but `withSpan` also captures a
 * stack trace (an `Error`) on every call and pushes a stack frame that only points into this file: more
 * CPU time than the rest of the span, and about 1 KB of the memory each waiting publish holds.
 */
const makeObserved = (deps: ObserveDeps) => {
  // counted here, not read off the FiberSet: a publish that completes at once is never seen in the set
  let inFlight = 0
  const timed = (record: ProducerRecord, span: Tracer.Span, carried: TraceContext.Carried | undefined) =>
    Effect.clockWith((clock) => {
      const started = monotonicMillis(clock) // a duration: monotonic, whatever the wall clock does
      const traced = { ...record, headers: TraceContext.propagate(record.headers, span, carried) }
      inFlight++
      return Effect.andThen(
        deps.metrics.setInFlight(inFlight),
        Effect.onExit(deps.deliver(traced), (exit) => {
          inFlight--
          const seconds = (monotonicMillis(clock) - started) / 1000
          return Effect.andThen(deps.metrics.setInFlight(inFlight), finished(deps, record, span, exit, seconds))
        })
      )
    })
  const observed = (record: ProducerRecord): Effect.Effect<Receipt, PublishFailure> => {
    const carried = TraceContext.carried(record.headers)
    return Effect.useSpan(`send ${record.topic}`, spanOptions(record, carried), (span) =>
      Effect.provideService(timed(record, span, carried), Tracer.ParentSpan, span)
    )
  }
  return Object.assign(observed, { inFlight: Effect.sync(() => inFlight) })
}

/**
 * What a publish leaves behind when it ends: health, metrics, span attributes and, on failure, logs.
 * Also when it was interrupted (the shutdown timeout): it counts as failed ("Interrupted").
 */
const finished = (
  deps: ObserveDeps,
  record: ProducerRecord,
  span: Tracer.Span,
  exit: Exit.Exit<Receipt, PublishFailure>,
  seconds: number
): Effect.Effect<void> => {
  const outcome = deps.health._tag === "Some" ? healthOutcome(exit) : undefined
  const recorded =
    deps.health._tag === "Some" && outcome !== undefined ? deps.health.value.record(outcome) : Effect.void
  if (exit._tag === "Success") {
    const receipt = exit.value
    if (receipt._tag === "Delivered") {
      annotate(span, {
        "messaging.destination.partition.id": String(receipt.partition),
        "messaging.kafka.offset": receipt.offset,
        "messaging.kafka.attempts": receipt.attempts
      })
      return Effect.andThen(recorded, deps.metrics.delivered(record.topic, seconds))
    }
    const errorType = DeadLetter.errorType(receipt.error)
    annotate(span, {
      "error.type": errorType,
      "messaging.kafka.dead_letter.topic": receipt.deadLetterTopic,
      "messaging.kafka.attempts": receipt.attempts
    })
    return recorded.pipe(
      Effect.andThen(logDeadLettered(record, receipt)),
      Effect.andThen(deps.metrics.deadLettered(record.topic, errorType, seconds))
    )
  }
  const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error
  const errorType = error === undefined ? "Interrupted" : failureType(error)
  annotate(span, { "error.type": errorType })
  return recorded.pipe(
    Effect.andThen(error?._tag === "DeadLetterFailed" ? logDeadLetterFailed(record, error) : Effect.void),
    Effect.andThen(deps.metrics.failed(record.topic, errorType, seconds))
  )
}

// --- publishAll ----------------------------------------------------------------------------------------------

const publishAllWith = <A, I>(
  publish: (topic: Topic.Topic<A, I>, event: A) => Effect.Effect<Receipt, PublishFailure>,
  defaultConcurrency: number,
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

// --- helpers ---------------------------------------------------------------------------------------------------

const keyForLogs = (record: ProducerRecord): string | undefined =>
  record.key === null
    ? undefined
    : Buffer.from(record.key.buffer, record.key.byteOffset, record.key.byteLength).toString("utf8") // a view, no copy

/** What a publish tells the health window; a CircuitOpen rejection tells nothing new (the breaker says it). */
const healthOutcome = (exit: Exit.Exit<Receipt, PublishFailure>): Outcome | undefined => {
  if (exit._tag === "Success") return exit.value._tag === "Delivered" ? "success" : "deadLettered"
  const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error
  return error?._tag === "CircuitOpen" ? undefined : "failure"
}

const failureType = (error: PublishFailure): string =>
  error._tag === "Retriable" || error._tag === "Fatal" ? DeadLetter.errorType(error) : error._tag

const spanOptions = (record: ProducerRecord, carried: TraceContext.Carried | undefined): Tracer.SpanOptionsNoTrace => ({
  kind: "producer",
  ...(carried === undefined ? {} : { parent: carried.parent }),
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
