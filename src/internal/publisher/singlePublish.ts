/**
 * The per-event path (`Publisher.publish`, `publishRecord`): one accepted publish without a fiber of its own.
 *
 * @internal
 */
import { Cause, Clock, Context, Effect, Exit, type Fiber, type Option, References, Tracer } from "effect"
import type { CircuitOpen } from "../../CircuitBreaker.ts"
import * as DeadLetter from "../../DeadLetter.ts"
import type { Health } from "../../Health.ts"
import * as TraceContext from "../../observability/TraceContext.ts"
import type { ProducerRecord, RecordMetadata } from "../../Producer.ts"
import type { PublishError } from "../../PublishError.ts"
import type { PublishFailure } from "../../Publisher.ts"
import type { Receipt } from "../../Receipt.ts"
import type * as CallbackSend from "../callbackSend.ts"
import type * as Deadlines from "../deadlines.ts"
import { monotonicMillis } from "../duration.ts"
import * as RecordNow from "../recordNow.ts"
import {
  type DeliverDeps,
  deliveredReceipt,
  deliveryTimedOut,
  markFailure,
  retryAfter,
  type Tally
} from "./attempts.ts"
import { type Lifecycle, refused } from "./lifecycle.ts"
import { finished, type Observed, spanOptions } from "./observation.ts"

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
  /** The first attempt, while it is out. */
  pending: CallbackSend.Pending | undefined = undefined
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
export const makePerEvent = (deps: PerEventDeps) => {
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
  // a Health of this package records a delivery at once; an application's own through its Effect
  const recordNow = health._tag === "Some" ? RecordNow.of(health.value) : undefined

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
      publish.pending = deps.sendNow([traced], publish)
    } else {
      endSpan(publish, Exit.fail(refused(record.topic)))
      resume(Exit.fail(refused(record.topic)))
    }
  }

  const firstAnswer = (publish: SinglePublish, answer: CallbackSend.Answer) => {
    if (publish.phase !== Phase.FirstAttempt) return // timed out or abandoned meanwhile
    publish.pending = undefined
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
    const { phase, pending, fiber } = publish
    if (phase !== Phase.FirstAttempt && phase !== Phase.Retrying) return
    publish.phase = Phase.Settling // first: no answer of the attempts counts from here on
    // a first attempt taken back before it left was never sent: the timeout is not ambiguous then
    let sent = true
    if (phase === Phase.FirstAttempt && pending !== undefined) {
      sent = !pending.withdraw()
      if (sent) pending.abandon()
    } else fiber?.interruptUnsafe()
    settled(publish, Exit.fail(deliveryTimedOut(publish.record.topic, deliveryTimeout, sent)))
  }

  /** The shutdown timeout passed: stop whatever runs and answer the caller with an interruption. */
  const abandon = (publish: SinglePublish): void => {
    const { phase, pending, fiber } = publish
    if (phase === Phase.Done) return
    deadlines.untrack(publish)
    finish(publish, Exit.interrupt()) // first: no answer of what runs counts from here on
    if (phase === Phase.FirstAttempt) pending?.abandon()
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
    if (Exit.isSuccess(exit) && exit.value._tag === "Delivered" && (health._tag === "None" || recordNow)) {
      const receipt = exit.value
      recordNow?.("success", monotonicMillis(publish.clock))
      const { span } = publish
      span.attribute("messaging.destination.partition.id", String(receipt.partition))
      span.attribute("messaging.kafka.offset", receipt.offset)
      span.attribute("messaging.kafka.attempts", receipt.attempts)
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
