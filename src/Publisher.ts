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
  Cause,
  Clock,
  Context,
  Duration,
  Effect,
  Exit,
  Fiber,
  FiberSet,
  Latch,
  Layer,
  type Option,
  References,
  Result,
  Schedule,
  type Scope,
  Sink,
  Stream,
  Tracer
} from "effect"
import { defaults as batcherDefaults, batchOverhead, estimatedSize } from "./Batcher.ts"
import { CircuitBreaker, CircuitOpen } from "./CircuitBreaker.ts"
import * as DeadLetter from "./DeadLetter.ts"
import { Health, type Outcome } from "./Health.ts"
import * as CallbackSend from "./internal/callbackSend.ts"
import * as Deadlines from "./internal/deadlines.ts"
import { monotonicMillis } from "./internal/duration.ts"
import * as PublisherMetrics from "./observability/PublisherMetrics.ts"
import * as TraceContext from "./observability/TraceContext.ts"
import { Producer, type ProducerRecord, type RecordMetadata } from "./Producer.ts"
import {
  amend,
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
  /**
   * How many records of one `publishAll` request are retried or dead-lettered at the same time after the
   * request failed (records of one key always one after the other). Default 16.
   */
  readonly concurrency?: number | undefined
  /** Most records in one request of `publishAll` / `publishRecords` / the stream sink. Default 500 (the Batcher's). */
  readonly batchSize?: number | undefined
  /** Most bytes in one such request, estimated as `Batcher.estimatedSize` counts them. Default 1 MiB (the Batcher's). */
  readonly batchBytes?: number | undefined
  /** Metric series of this publisher (cap on per-topic series). Default `PublisherMetrics.defaults`. */
  readonly metrics?: PublisherMetrics.Options | undefined
}

/** The publishing service. */
export interface Publisher {
  /** Validates, encodes and publishes one event. */
  readonly publish: <A, I>(topic: Topic.Topic<A, I>, event: A) => Effect.Effect<Receipt, PublishFailure>
  /**
   * Publishes every event in bulk: all are encoded first (an invalid one fails with its own `Fatal`
   * `SchemaInvalid` and nothing of it is sent; it does not hold the others back), then the valid records go
   * in requests of at most `batchSize` records / `batchBytes` bytes, one request after the other. A record
   * whose request failed is retried or dead-lettered on its own, as `publish` does (ambiguous attempts
   * marked), records of one key one after the other and before the next request, so order per key is kept.
   * Every event is settled; if any failed, `PublishAllFailed` holds the failures and the other receipts, by
   * index. The call is accepted as a whole: it runs in a fiber of the publisher (the caller's interruption
   * does not abandon it), is drained at shutdown, and each request is bounded by the delivery timeout.
   * See `BulkOptions` for `concurrency` and `deadLetterRetriable`.
   */
  readonly publishAll: <A, I>(
    topic: Topic.Topic<A, I>,
    events: Iterable<A>,
    options?: BulkOptions
  ) => Effect.Effect<ReadonlyArray<Receipt>, PublishAllFailed>
  /** Publishes an already serialized record (no Schema): the same retries, dead-letter and lifecycle. */
  readonly publishRecord: (record: ProducerRecord) => Effect.Effect<Receipt, PublishFailure>
  /**
   * `publishAll` for records already serialized (any topics): the same requests, retries, dead-letter,
   * order per key and lifecycle. `PublishAllFailed.topic` is the first record's topic.
   */
  readonly publishRecords: (
    records: Iterable<ProducerRecord>,
    options?: BulkOptions
  ) => Effect.Effect<ReadonlyArray<Receipt>, PublishAllFailed>
  /** Publishes accepted and not finished yet. */
  readonly inFlight: Effect.Effect<number>
}

/** Per-call options of `publishAll` and `publishRecords`. */
export interface BulkOptions {
  /** Records of one request sent, retried and settled at once. Default: `Options.concurrency`. */
  readonly concurrency?: number | undefined
  /**
   * Default true: a record whose retries ran out (`Retriable`) is dead-lettered like a `Fatal` one. false: it
   * fails with its `Retriable` error (marked when possibly delivered) and only `Fatal` records are
   * dead-lettered, for a caller that keeps the record and sends it again later (the outbox relay).
   */
  readonly deadLetterRetriable?: boolean | undefined
}

/** The `Publisher` service tag. */
export const Publisher = Context.Service<Publisher>("effect-kafka-publisher/Publisher")

/** The defaults of `Options` (Java: `delivery.timeout.ms` 120 s). */
export const defaults = {
  /** 120 s, Java's `delivery.timeout.ms`. */
  deliveryTimeout: Duration.seconds(120),
  /** 30 s. */
  shutdownTimeout: Duration.seconds(30),
  /** 16 records of a failed `publishAll` request retried at a time. */
  concurrency: 16,
  /** 500 records per `publishAll` request, as the Batcher. */
  batchSize: batcherDefaults.batchSize,
  /** 1 MiB per `publishAll` request, as the Batcher. */
  batchBytes: batcherDefaults.batchBytes
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
    const send = guardedSend(producer, breaker)
    const observed = makeObserved({ metrics, health })
    const publishRecord = makePerEvent({
      settings,
      producer,
      send,
      sendNow: CallbackSend.of(producer, send),
      deadlines,
      metrics,
      health,
      lifecycle,
      observed
    })
    const publish = <A, I>(topic: Topic.Topic<A, I>, event: A): Effect.Effect<Receipt, PublishFailure> =>
      Effect.flatMap(Topic.encode(topic, event), publishRecord)
    const bulk = makeBulk({
      settings,
      producer,
      send,
      deadlines,
      metrics,
      lifecycle,
      observed
    })
    return Publisher.of({
      publish,
      publishAll: (topic, events, opts) =>
        Effect.suspend(() => {
          const items = Array.from(events)
          return Effect.flatMap(
            Effect.forEach(items, (event) => Effect.result(Topic.encode(topic, event))),
            (encoded) => bulk(topic.name, encoded, opts)
          )
        }),
      publishRecord,
      publishRecords: (records, opts) =>
        Effect.suspend(() => {
          const items = Array.from(records, (record): Result.Result<ProducerRecord, Fatal> => Result.succeed(record))
          const first = items[0]
          return bulk(first !== undefined && Result.isSuccess(first) ? first.success.topic : "", items, opts)
        }),
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
  readonly batchSize: number
  readonly batchBytes: number
  readonly metrics: PublisherMetrics.Options
}

const resolve = (options: Options): Settings => ({
  policy: options.retry ?? RetryPolicy.defaultPolicy,
  deadLetter: options.deadLetter ?? {},
  deliveryTimeout: Duration.fromInputUnsafe(options.deliveryTimeout ?? defaults.deliveryTimeout),
  shutdownTimeout: Duration.fromInputUnsafe(options.shutdownTimeout ?? defaults.shutdownTimeout),
  concurrency: options.concurrency ?? defaults.concurrency,
  batchSize: Math.max(1, options.batchSize ?? defaults.batchSize),
  batchBytes: Math.max(1, options.batchBytes ?? defaults.batchBytes),
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
  readonly accept: <A, E>(topic: string, publish: Effect.Effect<A, E>) => Effect.Effect<A, E | PublisherClosed>
  /**
   * Registers an accepted publish that runs without a fiber of its own (the per-event path), in the same
   * synchronous step as the check: false once closing has begun (refused).
   */
  readonly admit: (publish: Admitted) => boolean
  /** An admitted publish ended. */
  readonly release: (publish: Admitted) => void
  /** Whether closing has begun. */
  readonly isClosed: () => boolean
}

/** A publish admitted without a fiber: what the shutdown timeout does to it. */
interface Admitted {
  /** Ends it at once (the shutdown timeout passed): its caller is answered with an interruption. */
  readonly abandon: () => void
}

/**
 * Accepted publishes run in a `FiberSet` owned by the publisher (bulk calls), or without a fiber, registered
 * in `admitted` (single publishes): the caller's interruption cuts off neither. Closing sets `closed` (the one
 * check of the publisher), then waits up to `shutdownTimeout` for both; past it, the `FiberSet`'s own
 * finalizer interrupts what is left and the admitted publishes are abandoned.
 */
const makeLifecycle = (shutdownTimeout: Duration.Duration): Effect.Effect<Lifecycle, never, Scope.Scope> =>
  Effect.gen(function* () {
    const accepted = yield* FiberSet.make<unknown, unknown>()
    const admitted = new Set<Admitted>()
    const noneAdmitted = Latch.makeUnsafe(false) // opened when closing finds or leaves `admitted` empty
    let closed = false
    yield* Effect.addFinalizer(() => {
      closed = true
      if (admitted.size === 0) noneAdmitted.openUnsafe()
      return drain(accepted, admitted, noneAdmitted, shutdownTimeout)
    })
    // The check and the fork are one synchronous step: no publish can pass the check and then find the set
    // closed (interrupted, not refused), or join it after the drain looked.
    const accept = <A, E>(topic: string, publish: Effect.Effect<A, E>): Effect.Effect<A, E | PublisherClosed> =>
      Effect.withFiber<A, E | PublisherClosed>((caller) => {
        if (closed) return Effect.fail(refused(topic))
        const fiber = Effect.runForkWith(caller.context)(publish) // starts at once, as FiberSet.run does
        FiberSet.addUnsafe(accepted, fiber)
        return Fiber.join(fiber)
      })
    const admit = (publish: Admitted): boolean => {
      if (closed) return false
      admitted.add(publish)
      return true
    }
    const release = (publish: Admitted): void => {
      if (admitted.delete(publish) && closed && admitted.size === 0) noneAdmitted.openUnsafe()
    }
    return { accept, admit, release, isClosed: () => closed }
  })

const refused = (topic: string) =>
  new PublisherClosed({ topic, message: "the publisher is shutting down: not accepted" })

/** Waits for accepted publishes, at most `timeout`; logs what it waits for and what it gives up on. */
const drain = (
  accepted: FiberSet.FiberSet<unknown, unknown>,
  admitted: Set<Admitted>,
  noneAdmitted: Latch.Latch,
  timeout: Duration.Duration
) =>
  Effect.gen(function* () {
    const pending = (yield* FiberSet.size(accepted)) + admitted.size
    if (pending === 0) return
    yield* Effect.logInfo("publisher closing: waiting for accepted publishes").pipe(
      Effect.annotateLogs({ inFlight: pending })
    )
    const drained = yield* Effect.andThen(FiberSet.awaitEmpty(accepted), noneAdmitted.await).pipe(
      Effect.timeoutOption(timeout)
    )
    if (drained._tag === "None") {
      yield* Effect.logError("publisher shutdown timeout: interrupting publishes still in flight").pipe(
        Effect.annotateLogs({ inFlight: (yield* FiberSet.size(accepted)) + admitted.size })
      )
      for (const publish of [...admitted]) publish.abandon()
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

/**
 * The attempts. Most publishes succeed at the first one, so the retry schedule (and the state it builds for
 * each run) is only set up once an attempt failed. It starts from that failure, replayed once, then
 * resends: the same decisions, delays and logs as `Effect.retry(attempt, logRetry(record))`.
 */
const sendRetried = (deps: Pick<DeliverDeps, "send" | "settings" | "metrics">, record: ProducerRecord, tally: Tally) =>
  Effect.catch(attemptOf(deps, record, tally), (first) => retryAfter(deps, record, tally, first))

const attemptOf = (deps: Pick<DeliverDeps, "send">, record: ProducerRecord, tally: Tally) =>
  Effect.suspend(() => {
    tally.attempts++
    return deps.send([record])
  })

const noteFailure = (tally: Tally, error: PublishError | CircuitOpen) => {
  if (error._tag !== "CircuitOpen" && mayHaveWritten(error)) tally.possiblyDelivered = true
}

/** The retries after a failed attempt (`first`, counted in `tally` already): the policy decides. */
const retryAfter = (
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
  readonly metrics: PublisherMetrics.Recorder
  readonly health: Option.Option<Health>
}

/**
 * What publishes leave behind: the count of publishes in flight, and for a bulk call its span, metrics,
 * health and logs. A single publish's span and outcome are kept by the per-event path (`makePerEvent`),
 * which uses the same `finished`.
 */
const makeObserved = (deps: ObserveDeps) => {
  // counted here, not read off the FiberSet: a publish that completes at once is never seen in the set
  let inFlight = 0
  /** Counts publishes in and out, and sets the gauge: for code outside an Effect. */
  const countUnsafe = (delta: number, context: Context.Context<never>) => {
    inFlight += delta
    deps.metrics.unsafe.setInFlight(inFlight, context)
  }
  const count = (delta: number) =>
    Effect.suspend(() => {
      inFlight += delta
      return deps.metrics.setInFlight(inFlight)
    })
  /**
   * One span for a bulk call ("send <topic>", `messaging.batch.message_count`), whose context goes into the
   * headers of each record that brings none of its own (one that does keeps it: its consumer continues the
   * trace it came from). Per record: the metrics, health and logs of `publish`; on the span, the counts.
   */
  const bulk = (
    topic: string,
    records: ReadonlyArray<ProducerRecord>,
    run: (traced: ReadonlyArray<ProducerRecord>) => Effect.Effect<ReadonlyArray<Settled>>
  ): Effect.Effect<ReadonlyArray<Settled>> =>
    Effect.useSpan(
      `send ${topic}`,
      {
        kind: "producer",
        attributes: {
          "messaging.system": "kafka",
          "messaging.operation.name": "send",
          "messaging.operation.type": "send",
          "messaging.destination.name": topic,
          "messaging.batch.message_count": records.length
        }
      },
      (span) => {
        const traced = records.map((record) =>
          TraceContext.carried(record.headers) === undefined
            ? { ...record, headers: TraceContext.propagate(record.headers, span, undefined) }
            : record
        )
        return count(records.length).pipe(
          Effect.andThen(run(traced)),
          Effect.tap((settled) => Effect.sync(() => annotateBulk(span, settled))),
          Effect.ensuring(count(-records.length)),
          Effect.provideService(Tracer.ParentSpan, span)
        )
      }
    )
  /** Metrics, health and logs of one record of a bulk call (no span of its own). */
  const finish = (record: ProducerRecord, exit: Exit.Exit<Receipt, PublishFailure>, seconds: number) =>
    finished(deps, record, undefined, exit, seconds)
  return { inFlight: Effect.sync(() => inFlight), countUnsafe, bulk, finish }
}

type Observed = ReturnType<typeof makeObserved>

/** A record's outcome in a bulk call: its receipt, or the typed error its caller gets. */
type Settled = Result.Result<Receipt, PublishFailure>

const annotateBulk = (span: Tracer.Span, settled: ReadonlyArray<Settled>) => {
  let delivered = 0
  let deadLettered = 0
  let failed = 0
  let errorType: string | undefined
  for (const result of settled) {
    if (Result.isFailure(result)) {
      failed++
      errorType ??= failureType(result.failure)
    } else if (result.success._tag === "Delivered") delivered++
    else deadLettered++
  }
  annotate(span, {
    "messaging.kafka.delivered": delivered,
    "messaging.kafka.dead_lettered": deadLettered,
    "messaging.kafka.failed": failed,
    ...(errorType === undefined ? {} : { "error.type": errorType })
  })
}

/**
 * What a publish leaves behind when it ends: health, metrics, span attributes and, on failure, logs.
 * Also when it was interrupted (the shutdown timeout): it counts as failed ("Interrupted").
 */
const finished = (
  deps: ObserveDeps,
  record: ProducerRecord,
  span: Tracer.Span | undefined,
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

// --- the per-event path: one accepted publish, without a fiber of its own --------------------------------

interface PerEventDeps extends DeliverDeps {
  /** `send` answering through a callback: the Batcher's own, else `send` in a fiber per call. */
  readonly sendNow: CallbackSend.CallbackSend
  readonly health: Option.Option<Health>
  readonly lifecycle: Lifecycle
  readonly observed: Observed
}

/** Where a per-event publish is. */
const Phase = {
  /** The first attempt is out (most publishes end here: delivered). */
  FirstAttempt: 0,
  /** It failed: the retries run in a fiber (`fiber`). */
  Retrying: 1,
  /** The retries are over; the dead-letter write runs in a fiber. */
  Settling: 2,
  Done: 3
} as const
type Phase = (typeof Phase)[keyof typeof Phase]

/**
 * One accepted publish. It is its own deadline node (`Deadlines.Tracked`) and its own retry tally, so
 * accepting a publish allocates this object, the traced record and the span, and nothing else.
 */
class SinglePublish implements Deadlines.Tracked, Tally, CallbackSend.Caller {
  deadline = BigInt(0)
  prev: Deadlines.Tracked | undefined = undefined
  next: Deadlines.Tracked | undefined = undefined
  attempts = 1
  possiblyDelivered = false
  phase: Phase = Phase.FirstAttempt
  /** Withdraws the first attempt from the Batcher while it waits for room. */
  cancel: CallbackSend.Cancel | undefined = undefined
  /** The retries, or the settling, when they run. */
  fiber: Fiber.Fiber<unknown, unknown> | undefined = undefined
  private spanContext: Context.Context<never> | undefined = undefined
  readonly path: PerEventPath
  /** The record as given (its topic and key for metrics and logs). */
  readonly record: ProducerRecord
  /** The record as sent: with the span's trace context in its headers. */
  readonly traced: ProducerRecord
  readonly span: Tracer.Span
  readonly caller: Fiber.Fiber<unknown, unknown>
  readonly clock: Clock.Clock
  /** Monotonic ms at acceptance. */
  readonly started: number
  readonly resume: (exit: Exit.Exit<Receipt, PublishFailure>) => void

  constructor(
    path: PerEventPath,
    record: ProducerRecord,
    traced: ProducerRecord,
    span: Tracer.Span,
    caller: Fiber.Fiber<unknown, unknown>,
    clock: Clock.Clock,
    resume: (exit: Exit.Exit<Receipt, PublishFailure>) => void
  ) {
    this.path = path
    this.record = record
    this.traced = traced
    this.span = span
    this.caller = caller
    this.clock = clock
    this.started = monotonicMillis(clock)
    this.resume = resume
  }

  /** The caller's context with this publish's span as the parent: for what runs as an Effect. */
  context(): Context.Context<never> {
    this.spanContext ??= Context.add(this.caller.context, Tracer.ParentSpan, this.span)
    return this.spanContext
  }

  onAnswer(answer: CallbackSend.Answer): void {
    this.path.firstAnswer(this, answer)
  }

  onDeadline(): void {
    this.path.timedOut(this)
  }

  abandon(): void {
    this.path.abandon(this)
  }
}

type PerEventPath = ReturnType<typeof makePerEventPath>

/**
 * `publishRecord`. An accepted publish runs without a fiber of its own: the record goes to the producer
 * through a callback (`internal/callbackSend.ts`), the caller waits in `Effect.callback`, and the answer of
 * the first attempt settles it (span, metrics, health, receipt) in one synchronous step. The guarantees of
 * an accepted publish come from plain structures instead of a fiber: the caller's interruption only stops
 * the waiting (the publish goes on); the lifecycle holds it for the shutdown drain; the deadline list
 * bounds it by the delivery timeout. Only a publish whose first attempt failed gets a fiber, for the
 * retries and then the dead-letter write: the same effects, schedule, logs and spans as before.
 */
const makePerEvent = (deps: PerEventDeps) => {
  const path = makePerEventPath(deps)
  return (record: ProducerRecord): Effect.Effect<Receipt, PublishFailure> =>
    Effect.suspend(() => {
      if (deps.lifecycle.isClosed()) return Effect.fail(refused(record.topic))
      const carried = TraceContext.carried(record.headers)
      return Effect.flatMap(Effect.makeSpan(`send ${record.topic}`, spanOptions(record, carried)), (span) =>
        Effect.withFiber((caller) =>
          Effect.callback<Receipt, PublishFailure>((resume) => path.start(record, carried, span, caller, resume))
        )
      )
    })
}

const makePerEventPath = (deps: PerEventDeps) => {
  const { settings, deadlines, lifecycle, observed, metrics, health } = deps
  const { deadLetter, deliveryTimeout } = settings

  const start = (
    record: ProducerRecord,
    carried: TraceContext.Carried | undefined,
    span: Tracer.Span,
    caller: Fiber.Fiber<unknown, unknown>,
    resume: (exit: Exit.Exit<Receipt, PublishFailure>) => void
  ): void => {
    const clock = caller.getRef(Clock.Clock)
    const traced = { ...record, headers: TraceContext.propagate(record.headers, span, carried) }
    const publish = new SinglePublish(path, record, traced, span, caller, clock, resume)
    // checked again here: closing may have begun while the span was made
    if (lifecycle.admit(publish)) {
      observed.countUnsafe(1, caller.context)
      deadlines.track(publish)
      publish.cancel = deps.sendNow([traced], publish)
    } else {
      endSpan(publish, Exit.fail(refused(record.topic)))
      resume(Exit.fail(refused(record.topic)))
    }
  }

  const firstAnswer = (publish: SinglePublish, answer: CallbackSend.Answer) => {
    if (publish.phase !== Phase.FirstAttempt) return // timed out or abandoned meanwhile
    publish.cancel = undefined
    const failure = Exit.isFailure(answer) ? answer.cause.reasons.find(Cause.isFailReason) : undefined
    // delivered; or a defect, or interrupted
    if (failure === undefined) return settled(publish, answer)
    publish.phase = Phase.Retrying
    const retries = retryAfter(deps, publish.traced, publish, failure.error)
    const fiber = Effect.runForkWith(publish.context())(retries)
    publish.fiber = fiber
    fiber.addObserver((exit) => {
      if (publish.phase === Phase.Retrying) settled(publish, exit)
    })
  }

  /** The attempts are over (delivered, failed, or the delivery timeout passed): the receipt, or what follows a failure. */
  const settled = (
    publish: SinglePublish,
    exit: Exit.Exit<ReadonlyArray<RecordMetadata>, PublishError | CircuitOpen>
  ) => {
    deadlines.untrack(publish)
    publish.fiber = undefined
    if (Exit.isSuccess(exit)) return finish(publish, Exit.succeed(deliveredReceipt(exit.value[0]!, publish)))
    const failure = exit.cause.reasons.find(Cause.isFailReason)
    if (failure === undefined) return finish(publish, exit as Exit.Exit<never>)
    // whatever stopped the retries, the failure says when an earlier attempt may have written the record
    const error = publish.possiblyDelivered ? markFailure(failure.error) : failure.error
    if (deadLetter === false || error._tag === "CircuitOpen") return finish(publish, Exit.fail(error))
    publish.phase = Phase.Settling
    const written = DeadLetter.send(deps.producer, publish.traced, error, publish, deadLetter)
    const fiber = Effect.runForkWith(publish.context())(written)
    publish.fiber = fiber
    fiber.addObserver((exit) => {
      if (publish.phase === Phase.Settling) finish(publish, exit)
    })
  }

  /** The delivery timeout passed: the attempts stop (the retries' fiber is interrupted), and it fails or is dead-lettered. */
  const timedOut = (publish: SinglePublish): void => {
    const { phase, cancel, fiber } = publish
    if (phase !== Phase.FirstAttempt && phase !== Phase.Retrying) return
    publish.phase = Phase.Settling // first: no answer of the attempts counts from here on
    if (phase === Phase.FirstAttempt) cancel?.()
    else fiber?.interruptUnsafe()
    settled(publish, Exit.fail(deliveryTimedOut(publish.record.topic, deliveryTimeout)))
  }

  /** The shutdown timeout passed: stop whatever runs and answer the caller with an interruption. */
  const abandon = (publish: SinglePublish): void => {
    const { phase, cancel, fiber } = publish
    if (phase === Phase.Done) return
    deadlines.untrack(publish)
    finish(publish, Exit.interrupt()) // first: no answer of what runs counts from here on
    if (phase === Phase.FirstAttempt) cancel?.()
    fiber?.interruptUnsafe()
  }

  /**
   * The publish's end: counted out, its span ended, its caller answered. A delivery is recorded at once;
   * anything else (a dead letter, a failure: logs as well) through `finished`, in a fiber, before the caller
   * hears of it.
   */
  const finish = (publish: SinglePublish, exit: Exit.Exit<Receipt, PublishFailure>) => {
    if (publish.phase === Phase.Done) return
    publish.phase = Phase.Done
    publish.fiber = undefined
    const context = publish.caller.context
    observed.countUnsafe(-1, context)
    lifecycle.release(publish)
    const seconds = (monotonicMillis(publish.clock) - publish.started) / 1000
    if (Exit.isSuccess(exit) && exit.value._tag === "Delivered" && health._tag === "None") {
      const receipt = exit.value
      annotate(publish.span, {
        "messaging.destination.partition.id": String(receipt.partition),
        "messaging.kafka.offset": receipt.offset,
        "messaging.kafka.attempts": receipt.attempts
      })
      metrics.unsafe.delivered(publish.record.topic, seconds, context)
      endSpan(publish, exit)
      return publish.resume(exit)
    }
    const recorded = finished(deps, publish.record, publish.span, exit, seconds).pipe(
      Effect.ensuring(Effect.sync(() => endSpan(publish, exit)))
    )
    Effect.runForkWith(publish.context())(recorded).addObserver(() => publish.resume(exit))
  }

  const path = { start, firstAnswer, timedOut, abandon }
  return path
}

const endSpan = (publish: SinglePublish, exit: Exit.Exit<unknown, unknown>) => {
  if (publish.span.status._tag === "Ended") return
  const timing = publish.caller.getRef(References.TracerTimingEnabled)
  publish.span.end(timing ? publish.clock.currentTimeNanosUnsafe() : BigInt(0), exit)
}

// --- bulk: publishAll, publishRecords -------------------------------------------------------------------------

interface BulkDeps {
  readonly settings: Settings
  readonly producer: Producer
  readonly send: Send
  readonly deadlines: Deadlines.Deadlines
  readonly metrics: PublisherMetrics.Recorder
  readonly lifecycle: Lifecycle
  readonly observed: Observed
}

/**
 * Bulk publishing. The invalid items are settled at once (their own error, nothing sent); the valid records
 * are accepted as one unit (one fiber of the publisher for the whole call, not one per record) and sent in
 * requests bounded by `batchSize` / `batchBytes`, one request after the other: a request's failed records
 * are retried (or dead-lettered) before the next request leaves, so no later record of their key can pass
 * them. Requests go to the `Producer` directly (a `Batcher` below keeps each one whole: one call is never
 * split); the bounds are the Batcher's, so a request is a batch a broker takes at its default limits.
 */
const makeBulk =
  (deps: BulkDeps) =>
  (
    topic: string,
    items: ReadonlyArray<Result.Result<ProducerRecord, Fatal>>,
    options: BulkOptions | undefined
  ): Effect.Effect<ReadonlyArray<Receipt>, PublishAllFailed> => {
    const call: BulkCall = {
      concurrency: Math.max(1, options?.concurrency ?? deps.settings.concurrency),
      deadLetterRetriable: options?.deadLetterRetriable ?? true
    }
    const records: Array<ProducerRecord> = []
    const indices: Array<number> = []
    const failures: Array<{ index: number; error: PublishFailure }> = []
    const receipts: Array<Receipt | undefined> = new Array(items.length).fill(undefined)
    items.forEach((item, index) => {
      if (Result.isSuccess(item)) {
        records.push(item.success)
        indices.push(index)
      } else failures.push({ index, error: item.failure })
    })
    const run =
      records.length === 0
        ? Effect.succeed<ReadonlyArray<Settled>>([])
        : deps.lifecycle.accept(
            topic,
            deps.observed.bulk(topic, records, (traced) => sendRequests(deps, traced, call))
          )
    return Effect.flatMap(Effect.result(run), (outcome) => {
      if (Result.isFailure(outcome)) {
        // refused as a whole (the publisher is closing): every valid event gets the error, nothing was sent
        for (const index of indices) failures.push({ index, error: outcome.failure })
      } else {
        outcome.success.forEach((settled, k) => {
          const index = indices[k]!
          if (Result.isSuccess(settled)) receipts[index] = settled.success
          else failures.push({ index, error: settled.failure })
        })
      }
      if (failures.length === 0) return Effect.succeed(receipts as ReadonlyArray<Receipt>)
      failures.sort((a, b) => a.index - b.index)
      return Effect.fail(
        new PublishAllFailed({
          message: `${failures.length} of ${items.length} events to ${topic} failed`,
          topic,
          receipts,
          failures
        })
      )
    })
  }

/** One bulk call's options, resolved. */
interface BulkCall {
  readonly concurrency: number
  readonly deadLetterRetriable: boolean
}

/** The records in requests of at most `batchSize` records and `batchBytes` bytes, one after the other. */
const sendRequests = (
  deps: BulkDeps,
  records: ReadonlyArray<ProducerRecord>,
  call: BulkCall
): Effect.Effect<ReadonlyArray<Settled>> =>
  Effect.gen(function* () {
    const { batchSize, batchBytes } = deps.settings
    const out: Array<Settled> = []
    let start = 0
    while (start < records.length) {
      let end = start
      let bytes = batchOverhead
      while (end < records.length && end - start < batchSize) {
        const size = estimatedSize(records[end]!)
        if (end > start && bytes + size > batchBytes) break
        bytes += size
        end++
      }
      const settled = yield* sendRequest(deps, records.slice(start, end), call)
      for (const result of settled) out.push(result)
      start = end
    }
    return out
  })

type Attempted = Result.Result<RecordMetadata, PublishError | CircuitOpen>

/**
 * One request and what follows it: the retries of its failed records, all bounded by one delivery timeout
 * from the moment the request leaves; then, for each record, its receipt or dead letter, and its metrics.
 */
const sendRequest = (
  deps: BulkDeps,
  records: ReadonlyArray<ProducerRecord>,
  call: BulkCall
): Effect.Effect<ReadonlyArray<Settled>> =>
  Effect.clockWith((clock) => {
    const { concurrency } = call
    const started = monotonicMillis(clock)
    const tallies: Array<Tally> = records.map(() => ({ attempts: 0, possiblyDelivered: false }))
    const attempted: Array<Attempted | undefined> = new Array(records.length).fill(undefined)
    const { deliveryTimeout } = deps.settings
    const bounded = deps.deadlines.bound(attemptRequest(deps, records, tallies, attempted, call), () =>
      Effect.sync(() => {
        attempted.forEach((result, i) => {
          if (result === undefined) attempted[i] = Result.fail(deliveryTimedOut(records[i]!.topic, deliveryTimeout))
        })
      })
    )
    return Effect.andThen(
      bounded,
      Effect.forEach(records, (record, i) => settle(deps, call, record, tallies[i]!, attempted[i]!, clock, started), {
        concurrency
      })
    )
  })

/** Sends the request; after a failure, answers each record from `outcomes` and retries the others on their own. */
const attemptRequest = (
  deps: BulkDeps,
  records: ReadonlyArray<ProducerRecord>,
  tallies: ReadonlyArray<Tally>,
  attempted: Array<Attempted | undefined>,
  call: BulkCall
): Effect.Effect<void> =>
  Effect.suspend(() => {
    for (const tally of tallies) tally.attempts = 1
    return deps.send(records)
  }).pipe(
    Effect.matchEffect({
      onSuccess: (metadata) =>
        metadata.length === records.length
          ? Effect.sync(() => {
              for (let i = 0; i < metadata.length; i++) attempted[i] = Result.succeed(metadata[i]!)
            })
          : Effect.die(new Error(`Publisher: the producer answered ${metadata.length} receipts for ${records.length}`)),
      onFailure: (error) => retryFailed(deps, records, tallies, attempted, error, call)
    })
  )

/**
 * A failed request. A record the driver says was written keeps its place; every other one goes on on its own
 * as `publish` would after a failed first attempt (a `"notWritten"` one as certainly not written, an
 * `"unknown"` one marked possibly delivered), except that a record refused only because the request was too
 * large is resent at once (a smaller request may pass; no retry is spent). Records of one partition key
 * (explicit partition, else key) go one after the other in input order, so order per key is kept; records
 * without a key, each on its own. When the call keeps exhausted records itself (`deadLetterRetriable: false`), a
 * key whose record failed sends none of its later records: they fail with that record's error, so the caller's
 * resend of the earlier one cannot land after them.
 */
const retryFailed = (
  deps: BulkDeps,
  records: ReadonlyArray<ProducerRecord>,
  tallies: ReadonlyArray<Tally>,
  attempted: Array<Attempted | undefined>,
  error: PublishError | CircuitOpen,
  call: BulkCall
): Effect.Effect<void> => {
  const outcomes =
    error._tag !== "CircuitOpen" && error.outcomes?.length === records.length ? error.outcomes : undefined
  const tooLarge =
    error._tag === "Fatal" && (error.reason === "RecordTooLarge" || error.reason === "RecordListTooLarge")
  const splittable = tooLarge && records.length > 1
  const groups = new Map<string, Array<{ index: number; first: PublishError | CircuitOpen | undefined }>>()
  const lone: Array<Array<{ index: number; first: PublishError | CircuitOpen | undefined }>> = []
  records.forEach((record, index) => {
    const outcome = outcomes?.[index]
    if (typeof outcome === "object") {
      attempted[index] = Result.succeed(outcome)
      return
    }
    let own = error
    if (outcomes !== undefined && own._tag !== "CircuitOpen") {
      own = amend(own, { outcomes: undefined, ...(outcome === "unknown" ? { possiblyDelivered: true } : {}) })
    }
    const first = splittable && outcome !== "unknown" ? undefined : own
    const key = orderKey(record)
    if (key === undefined) lone.push([{ index, first }])
    else {
      const group = groups.get(key)
      if (group === undefined) groups.set(key, [{ index, first }])
      else group.push({ index, first })
    }
  })
  const all = [...groups.values(), ...lone]
  return Effect.forEach(
    all,
    (group) => {
      let blockedBy: PublishError | CircuitOpen | undefined
      return Effect.forEach(
        group,
        ({ index, first }) => {
          const record = records[index]!
          const tally = tallies[index]!
          if (blockedBy !== undefined) {
            // not sent again; possibly written by the first request all the same
            if (first !== undefined) noteFailure(tally, first)
            attempted[index] = Result.fail(blockedBy)
            return Effect.void
          }
          const run = first === undefined ? sendRetried(deps, record, tally) : retryAfter(deps, record, tally, first)
          return Effect.map(Effect.result(run), (result) => {
            attempted[index] = Result.map(result, ([metadata]) => metadata!)
            if (Result.isFailure(result) && !call.deadLetterRetriable && result.failure._tag !== "Fatal") {
              blockedBy = result.failure
            }
          })
        },
        { discard: true }
      )
    },
    { concurrency: call.concurrency, discard: true }
  )
}

/** The unit order is kept in: an explicit partition, else the key; none for a record without either. */
const orderKey = (record: ProducerRecord): string | undefined => {
  if (record.partition !== undefined) return `p:${record.topic}:${record.partition}`
  if (record.key === null) return undefined
  const key = Buffer.from(record.key.buffer, record.key.byteOffset, record.key.byteLength).toString("latin1")
  return `k:${record.topic}:${key}`
}

/** One record's end: its receipt, or its failure marked and dead-lettered as `publish` does (an exhausted `Retriable` only when the call allows it); its metrics. */
const settle = (
  deps: BulkDeps,
  call: BulkCall,
  record: ProducerRecord,
  tally: Tally,
  attempted: Attempted,
  clock: Clock.Clock,
  started: number
): Effect.Effect<Settled> => {
  let outcome: Effect.Effect<Receipt, PublishFailure>
  if (Result.isSuccess(attempted)) outcome = Effect.succeed(deliveredReceipt(attempted.success, tally))
  else {
    const error = tally.possiblyDelivered ? markFailure(attempted.failure) : attempted.failure
    const { deadLetter } = deps.settings
    outcome =
      deadLetter === false || error._tag === "CircuitOpen" || (!call.deadLetterRetriable && error._tag === "Retriable")
        ? Effect.fail(error)
        : DeadLetter.send(deps.producer, record, error, tally, deadLetter)
  }
  return Effect.onExit(Effect.result(outcome), (exit) => {
    const seconds = (monotonicMillis(clock) - started) / 1000
    const settled: Exit.Exit<Receipt, PublishFailure> =
      exit._tag === "Success"
        ? Result.isSuccess(exit.value)
          ? Exit.succeed(exit.value.success)
          : Exit.fail(exit.value.failure)
        : (exit as never)
    return deps.observed.finish(record, settled, seconds)
  })
}

// --- streams: publishStream, sink ----------------------------------------------------------------------------

/** How the stream functions group a stream's events into requests. */
export interface StreamOptions {
  /** Most events in one request (and in flight at a time). Default: the publisher's `batchSize` default, 500. */
  readonly batchSize?: number | undefined
  /** How long a request waits for more events after its first one (Java: `linger.ms`). Default 5 ms. */
  readonly linger?: Duration.Input | undefined
}

/**
 * A Stream transformer that publishes the stream's events and emits, per event and in input order, its
 * outcome: `Result.succeed(receipt)` or `Result.fail(error)` (a failed event does not stop the stream: the
 * caller decides). Events are grouped into requests (`batchSize` or `linger`, whichever comes first) and
 * each group is one `publishAll`: the next group is published once the previous one is settled, so at most
 * `batchSize` events are in flight and at most one more group is gathered meanwhile (backpressure: the
 * upstream is not pulled further). Interrupting the stream does not abandon a group already accepted.
 */
export const publishStream =
  <A, I>(topic: Topic.Topic<A, I>, options: StreamOptions = {}) =>
  <E, R>(self: Stream.Stream<A, E, R>): Stream.Stream<Result.Result<Receipt, PublishFailure>, E, R | Publisher> =>
    Stream.unwrap(
      Effect.map(Effect.service(Publisher), (publisher) =>
        self.pipe(
          Stream.groupedWithin(options.batchSize ?? defaults.batchSize, options.linger ?? batcherDefaults.linger),
          Stream.mapEffect((events) => outcomesOf(publisher.publishAll(topic, events), events.length)),
          Stream.flattenIterable
        )
      )
    )

/** `publishAll` as one outcome per event. */
const outcomesOf = (
  all: Effect.Effect<ReadonlyArray<Receipt>, PublishAllFailed>,
  count: number
): Effect.Effect<ReadonlyArray<Result.Result<Receipt, PublishFailure>>> =>
  Effect.match(all, {
    onSuccess: (receipts) => receipts.map((receipt) => Result.succeed(receipt)),
    onFailure: (error) => {
      const out: Array<Result.Result<Receipt, PublishFailure>> = new Array(count)
      error.receipts.forEach((receipt, i) => {
        if (receipt !== undefined) out[i] = Result.succeed(receipt as Receipt)
      })
      for (const { index, error: failure } of error.failures) out[index] = Result.fail(failure as PublishFailure)
      return out
    }
  })

/** What `sink` yields: how the stream's events ended. */
export interface Summary {
  /** Events written to the topic. */
  readonly delivered: number
  /** Of those, written after an ambiguous attempt (`possibleDuplicate`). */
  readonly possibleDuplicates: number
  /** Events written to the dead-letter topic instead. */
  readonly deadLettered: number
}

/**
 * A Sink that publishes every event of the stream and yields a `Summary`. Each array the stream emits is
 * published as it comes (no linger: requests are as large as the stream's chunks, at most `batchSize`;
 * group a trickling stream first with `Stream.groupedWithin`, or use `publishStream`), one request settled
 * before the next array is pulled: backpressure, and at most one array in flight. The first event that fails (a typed
 * error, not a dead letter) fails the sink with its `PublishFailure` once its group is settled; no later
 * group is published. `Stream.run(events, Publisher.sink(topic))`.
 */
export const sink = <A, I>(
  topic: Topic.Topic<A, I>,
  options: Pick<StreamOptions, "batchSize"> = {}
): Sink.Sink<Summary, A, never, PublishFailure, Publisher> =>
  Sink.unwrap(
    Effect.map(Effect.service(Publisher), (publisher) => {
      const batchSize = Math.max(1, options.batchSize ?? defaults.batchSize)
      const publishArray = (summary: Summary, events: ReadonlyArray<A>): Effect.Effect<Summary, PublishFailure> =>
        Effect.gen(function* () {
          let { delivered, possibleDuplicates, deadLettered } = summary
          for (let start = 0; start < events.length; start += batchSize) {
            const outcomes = yield* outcomesOf(
              publisher.publishAll(topic, events.slice(start, start + batchSize)),
              Math.min(batchSize, events.length - start)
            )
            for (const outcome of outcomes) {
              if (Result.isFailure(outcome)) return yield* Effect.fail(outcome.failure)
              if (outcome.success._tag === "DeadLettered") deadLettered++
              else {
                delivered++
                if (outcome.success.possibleDuplicate) possibleDuplicates++
              }
            }
          }
          return { delivered, possibleDuplicates, deadLettered }
        })
      return Sink.foldArray(
        (): Summary => ({ delivered: 0, possibleDuplicates: 0, deadLettered: 0 }),
        () => true,
        publishArray
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
const annotate = (span: Tracer.Span | undefined, attributes: Record<string, unknown>): void => {
  if (span === undefined || span.status._tag === "Ended") return
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
