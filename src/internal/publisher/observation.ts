/**
 * What a publish leaves behind: its PRODUCER span ("send <topic>", OpenTelemetry messaging conventions),
 * the metrics, the health window's outcome, the log lines of a failure; and the count of publishes in flight.
 *
 * @internal
 */
import { type Context, Effect, type Exit, type Option, Result, Tracer } from "effect"
import * as DeadLetter from "../../DeadLetter.ts"
import type { Health, Outcome } from "../../Health.ts"
import type * as PublisherMetrics from "../../observability/PublisherMetrics.ts"
import * as TraceContext from "../../observability/TraceContext.ts"
import type { ProducerRecord } from "../../Producer.ts"
import type { DeadLetterFailed } from "../../PublishError.ts"
import type { PublishFailure } from "../../Publisher.ts"
import type { DeadLettered, Receipt } from "../../Receipt.ts"

export interface ObserveDeps {
  readonly metrics: PublisherMetrics.Recorder
  readonly health: Option.Option<Health>
}

/**
 * What publishes leave behind: the count of publishes in flight, and for a bulk call its span, metrics,
 * health and logs. A single publish's span and outcome are kept by the per-event path (`makePerEvent`),
 * which uses the same `finished`.
 */
export const makeObserved = (deps: ObserveDeps) => {
  // counted here, not read off the FiberSet: a publish that completes at once is never seen in the set
  let inFlight = 0
  let gaugeDue = false
  /**
   * Counts publishes in and out, for code outside an Effect. The gauge is set once at the end of the
   * synchronous step (a microtask), not on every change: a batch's answer settles hundreds of publishes in
   * one step, and a gauge is read by an exporter, not between two of them.
   */
  const countUnsafe = (delta: number, context: Context.Context<never>) => {
    inFlight += delta
    if (gaugeDue) return
    gaugeDue = true
    queueMicrotask(() => {
      gaugeDue = false
      deps.metrics.unsafe.setInFlight(inFlight, context)
    })
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
    Effect.useSpan(`send ${topic}`, bulkSpanOptions(topic, records.length), (span) => {
      const traced = records.map((record) => traceBulk(record, span))
      return count(records.length).pipe(
        Effect.andThen(run(traced)),
        Effect.tap((settled) => Effect.sync(() => annotateBulk(span, settled))),
        Effect.ensuring(count(-records.length)),
        Effect.provideService(Tracer.ParentSpan, span)
      )
    })
  /**
   * One span for a stream's session ("send <topic>"; `messaging.batch.message_count` once it ends): `trace`
   * puts its context into a record's headers (one that brings its own keeps it), `count` counts records in
   * and out of flight.
   */
  const stream = <A, E>(
    topic: string,
    run: (trace: (record: ProducerRecord) => ProducerRecord, count: (delta: number) => void) => Effect.Effect<A, E>
  ): Effect.Effect<A, E> =>
    Effect.useSpan(`send ${topic}`, bulkSpanOptions(topic, undefined), (span) =>
      Effect.withFiber((fiber) => {
        let total = 0
        const trace = (record: ProducerRecord): ProducerRecord => {
          total++
          return traceBulk(record, span)
        }
        return run(trace, (delta) => countUnsafe(delta, fiber.context)).pipe(
          Effect.ensuring(Effect.sync(() => annotate(span, { "messaging.batch.message_count": total }))),
          Effect.provideService(Tracer.ParentSpan, span)
        )
      })
    )
  /** Metrics, health and logs of one record of a bulk call (no span of its own). */
  const finish = (record: ProducerRecord, exit: Exit.Exit<Receipt, PublishFailure>, seconds: number) =>
    finished(deps, record, undefined, exit, seconds)
  return { inFlight: Effect.sync(() => inFlight), countUnsafe, bulk, stream, finish }
}

export type Observed = ReturnType<typeof makeObserved>

/** The span of a bulk call or stream: `messaging.batch.message_count` when the count is known up front. */
const bulkSpanOptions = (topic: string, count: number | undefined): Tracer.SpanOptionsNoTrace => ({
  kind: "producer",
  attributes: {
    "messaging.system": "kafka",
    "messaging.operation.name": "send",
    "messaging.operation.type": "send",
    "messaging.destination.name": topic,
    ...(count === undefined ? {} : { "messaging.batch.message_count": count })
  }
})

/** A bulk record with the bulk span's context in its headers; one that brings its own keeps it. */
const traceBulk = (record: ProducerRecord, span: Tracer.Span): ProducerRecord =>
  TraceContext.carried(record.headers) === undefined
    ? { ...record, headers: TraceContext.propagate(record.headers, span, undefined) }
    : record

/** A record's outcome in a bulk call: its receipt, or the typed error its caller gets. */
export type Settled = Result.Result<Receipt, PublishFailure>

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
export const finished = (
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

export const keyForLogs = (record: ProducerRecord): string | undefined =>
  record.key === null
    ? undefined
    : Buffer.from(record.key.buffer, record.key.byteOffset, record.key.byteLength).toString("utf8") // a view, no copy

/** What a publish tells the health window; a CircuitOpen rejection tells nothing new (the breaker says it). */
const healthOutcome = (exit: Exit.Exit<Receipt, PublishFailure>): Outcome | undefined => {
  if (exit._tag === "Success") return exit.value._tag === "Delivered" ? "success" : "deadLettered"
  const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error
  return error?._tag === "CircuitOpen" ? undefined : "failure"
}

export const failureType = (error: PublishFailure): string =>
  error._tag === "Retriable" || error._tag === "Fatal" ? DeadLetter.errorType(error) : error._tag

export const spanOptions = (
  record: ProducerRecord,
  carried: TraceContext.Carried | undefined
): Tracer.SpanOptionsNoTrace => ({
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
export const annotate = (span: Tracer.Span | undefined, attributes: Record<string, unknown>): void => {
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
