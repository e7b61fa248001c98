/**
 * A circuit breaker in front of the Producer (or any effect): when the broker is down, callers fail fast
 * with a typed `CircuitOpen` instead of each one waiting through its own timeouts and retries.
 *
 * ## States
 *
 * - `Closed`: calls go through. `failureThreshold` consecutive failures (default 5) open the breaker; a
 *   success resets the count.
 * - `Open`: calls fail at once with `CircuitOpen` and never reach the protected effect. After
 *   `resetTimeout` (default 30 s, measured on the `Clock`'s monotonic time, so a stepped wall clock
 *   changes nothing and `TestClock` drives it) the breaker is half-open.
 * - `HalfOpen`: the first call goes through as a trial; every other call fails fast while the trial runs.
 *   The trial's success closes the breaker; its failure opens it again for a new `resetTimeout`.
 *
 * There is no timer fiber: `Open` becomes `HalfOpen` the first time the breaker is looked at (a call or
 * `state`) once `resetTimeout` has passed. So a health check that reads `state` sees `HalfOpen` after the
 * timeout even when no traffic comes (a readiness probe that took the instance out of rotation lets it
 * back in, and the next call is the trial).
 *
 * ## What counts
 *
 * - A failure: an error for which `isFailure` is true (default: `Retriable`, i.e. the broker is down or
 *   timing out), and any defect.
 * - A success: a success, and an error for which `isFailure` is false. A `Fatal` error (an oversize record,
 *   an invalid topic) means the broker answered: it resets the count, and it closes a half-open breaker. One
 *   bad record must not cut every caller off.
 * - Nothing: an interruption. An interrupted trial leaves the breaker half-open for the next caller.
 * - Outcomes of calls that were let through while `Closed` count only while the breaker is still `Closed`
 *   (a slow call that fails after the breaker opened changes nothing).
 *
 * ## Observing it
 *
 * `state` answers the current state. Every transition updates the gauge `stateGauge`
 * (`kafka.publisher.circuit_breaker.state`: 0 closed, 1 half-open, 2 open), is logged, and calls the
 * `onStateChange` option. Each transition is one synchronous step (no lock to wait for, so the breaker costs
 * a publish next to nothing), and its announcement starts at once, behind the announcements before it: the
 * gauge and the callback see the transitions in order. Keep `onStateChange` short: a slow one delays the
 * announcements after it (not the calls).
 *
 * @module
 */
import { Cause, Clock, Context, Duration, Effect, Exit, Layer, Metric, Schema, Semaphore } from "effect"
import * as BreakerNow from "./internal/breakerNow.ts"
import { monotonicMillis } from "./internal/duration.ts"
import { isRetriable } from "./PublishError.ts"

/** The breaker's state: `Closed` lets calls through, `Open` rejects them, `HalfOpen` lets one trial through. */
export type State = "Closed" | "Open" | "HalfOpen"

/** The breaker rejected the call without running it. */
export class CircuitOpen extends Schema.TaggedError<CircuitOpen>()("CircuitOpen", {
  /** Why, and when the next trial call goes through. */
  message: Schema.String,
  /** When the breaker last opened (epoch ms, from the `Clock`). */
  openedAt: Schema.Number,
  /** How long until the breaker lets a trial call through; 0 while a trial is running (it may close any time). */
  retryAfterMs: Schema.Number,
  /**
   * An earlier attempt of the same publish failed ambiguously, so the record may be in the topic although
   * this call was rejected: set by the `Publisher` (the breaker itself always says `false`).
   */
  possiblyDelivered: Schema.Boolean
}) {}

/** One transition of the breaker, as `onStateChange` gets it. */
export interface StateChange {
  /** The state before. */
  readonly from: State
  /** The state after. */
  readonly to: State
  /** When it happened (epoch ms, from the `Clock`). */
  readonly at: number
}

/** How the breaker opens and recovers; every field has a default (`defaults`). */
export interface Options {
  /** Consecutive failures that open the breaker. Default 5. */
  readonly failureThreshold?: number | undefined
  /** How long the breaker stays open before it lets a trial through. Default 30 s. */
  readonly resetTimeout?: Duration.Input | undefined
  /** Which errors count as failures. Default: `Retriable` ones (`_tag === "Retriable"`). Defects always do. */
  readonly isFailure?: ((error: unknown) => boolean) | undefined
  /** Called on every transition, in order (one at a time; a slow one delays the next announcements). */
  readonly onStateChange?: ((change: StateChange) => Effect.Effect<void>) | undefined
}

/** A circuit breaker: `protect` an effect with it, read its `state`. */
export interface CircuitBreaker {
  /** Runs `self` if the breaker lets it through (else fails with `CircuitOpen`) and records its outcome. */
  readonly protect: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpen, R>
  /** The current state (`Open` turns `HalfOpen` here once `resetTimeout` has passed). */
  readonly state: Effect.Effect<State>
}

/** The `CircuitBreaker` service tag: the `Publisher` puts its sends behind it when one is provided. */
export const CircuitBreaker = Context.Service<CircuitBreaker>("effect-kafka-publisher/CircuitBreaker")

/** The defaults of `Options`. */
export const defaults = {
  /** 5 consecutive failures open the breaker. */
  failureThreshold: 5,
  /** 30 s open before a trial call. */
  resetTimeout: Duration.seconds(30),
  /** `Retriable` errors count as failures (the broker is down or slow); `Fatal` ones prove it is up. */
  isFailure: isRetriable
} as const

/** The gauge `kafka.publisher.circuit_breaker.state`: 0 closed, 1 half-open, 2 open (see `gaugeValue`). */
export const stateGauge = Metric.gauge("kafka.publisher.circuit_breaker.state", {
  description: "Circuit breaker state: 0 closed, 1 half-open, 2 open"
})

/** The value `stateGauge` reports for each state. */
export const gaugeValue: Readonly<Record<State, number>> = { Closed: 0, HalfOpen: 1, Open: 2 }

/** A moment: wall time (epoch ms) to report, monotonic time (ms) to measure durations with. */
interface Now {
  readonly wall: number
  readonly monotonic: number
}

/** `openedAt` is reported (epoch ms); `openedAtMonotonic` measures the reset timeout. */
type Internal =
  | { readonly _tag: "Closed"; readonly failures: number }
  | { readonly _tag: "Open"; readonly openedAt: number; readonly openedAtMonotonic: number }
  | {
      readonly _tag: "HalfOpen"
      readonly openedAt: number
      readonly openedAtMonotonic: number
      readonly trialRunning: boolean
    }

type Admission = BreakerNow.Admission

/** The admission of a call while closed. */
const passing: Admission = { _tag: "Pass", trial: false }

type Outcome = "success" | "failure" | "ignored"

/** The options, resolved. */
interface Rules {
  readonly threshold: number
  readonly resetMs: number
  readonly isFailure: (error: unknown) => boolean
  readonly onStateChange: ((change: StateChange) => Effect.Effect<void>) | undefined
}

/** A circuit breaker, closed (its gauge set to 0). */
export const make = (options: Options = {}): Effect.Effect<CircuitBreaker> =>
  Effect.gen(function* () {
    const rules: Rules = {
      threshold: options.failureThreshold ?? defaults.failureThreshold,
      resetMs: Duration.toMillis(options.resetTimeout ?? defaults.resetTimeout),
      isFailure: options.isFailure ?? defaults.isFailure,
      onStateChange: options.onStateChange
    }
    const clock = yield* Clock.Clock
    const context = yield* Effect.context<never>()
    // Announcements (gauge, log, callback) one at a time, in the order of the transitions.
    const announcing = Semaphore.makeUnsafe(1)
    let current: Internal = { _tag: "Closed", failures: 0 }

    // Every read-modify-write is one synchronous step: the decision (let a call through, start the one
    // trial) cannot interleave with another. A transition's announcement starts at once, in order behind the
    // ones before it.
    const move = <B>(f: (state: Internal, now: Now) => readonly [B, Internal]): B => {
      const now: Now = { wall: clock.currentTimeMillisUnsafe(), monotonic: monotonicMillis(clock) }
      const [result, next] = f(current, now)
      if (next._tag !== current._tag) {
        const change = { from: current._tag, to: next._tag, at: now.wall }
        Effect.runForkWith(context)(announcing.withPermits(1)(announce(rules, change)))
      }
      current = next
      return result
    }

    const now: BreakerNow.BreakerNow = {
      // closed, and a success with no failures counted: nothing changes (most calls), no clock read
      admit: () => (current._tag === "Closed" ? passing : move((state, at) => admit(rules, state, at))),
      complete: (trial, exit) => {
        if (!trial && current._tag === "Closed" && current.failures === 0 && Exit.isSuccess(exit)) return
        move((state, at) => [undefined, complete(rules, state, trial, classify(rules, exit), at)])
      }
    }

    const protect = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitOpen, R> =>
      // Uninterruptible between the admission and `onExit`: an admitted trial is always completed, or the
      // breaker would stay half-open with a trial that never ends.
      Effect.uninterruptibleMask((restore) =>
        Effect.suspend((): Effect.Effect<A, E | CircuitOpen, R> => {
          const admission = now.admit()
          if (admission._tag === "Reject") return Effect.fail(admission.error)
          return restore(self).pipe(Effect.onExit((exit) => Effect.sync(() => now.complete(admission.trial, exit))))
        })
      )

    const state = Effect.sync(() =>
      move((state, at) => {
        const next = settle(rules, state, at)
        return [next._tag, next]
      })
    )

    yield* Metric.update(stateGauge, gaugeValue.Closed)
    const breaker: CircuitBreaker & BreakerNow.WithBreakerNow = { protect, state, [BreakerNow.TypeId]: now }
    return breaker
  })

/** A transition's gauge update, log line and callback. */
const announce = (rules: Rules, change: StateChange): Effect.Effect<void> =>
  Effect.gen(function* () {
    yield* Metric.update(stateGauge, gaugeValue[change.to])
    const log =
      change.to === "Open"
        ? Effect.logWarning(
            `circuit breaker open: calls fail fast for ${Duration.format(Duration.millis(rules.resetMs))}`
          )
        : change.to === "HalfOpen"
          ? Effect.logInfo("circuit breaker half-open: letting one trial call through")
          : Effect.logInfo("circuit breaker closed")
    yield* log.pipe(Effect.annotateLogs({ "circuitBreaker.from": change.from, "circuitBreaker.to": change.to }))
    if (rules.onStateChange !== undefined) yield* rules.onStateChange(change)
  })

// No timer fiber: an `Open` breaker whose timeout has passed is half-open from then on.
const settle = (rules: Rules, state: Internal, now: Now): Internal =>
  state._tag === "Open" && now.monotonic - state.openedAtMonotonic >= rules.resetMs
    ? { ...state, _tag: "HalfOpen", trialRunning: false }
    : state

const opened = (now: Now): Internal => ({ _tag: "Open", openedAt: now.wall, openedAtMonotonic: now.monotonic })

/** Whether a call may run now, and the state after the decision. */
const admit = (rules: Rules, current: Internal, now: Now): readonly [Admission, Internal] => {
  const state = settle(rules, current, now)
  switch (state._tag) {
    case "Closed":
      return [passing, state]
    case "Open": {
      const retryAfterMs = Math.ceil(state.openedAtMonotonic + rules.resetMs - now.monotonic)
      const error = new CircuitOpen({
        message: `circuit breaker open: calls fail fast; next trial call in ${retryAfterMs} ms`,
        openedAt: state.openedAt,
        retryAfterMs,
        possiblyDelivered: false
      })
      return [{ _tag: "Reject", error }, state]
    }
    case "HalfOpen": {
      const trialStarted: Internal = { ...state, trialRunning: true }
      if (!state.trialRunning) return [{ _tag: "Pass", trial: true }, trialStarted]
      const error = new CircuitOpen({
        message: "circuit breaker half-open: a trial call is running, other calls fail fast",
        openedAt: state.openedAt,
        retryAfterMs: 0,
        possiblyDelivered: false
      })
      return [{ _tag: "Reject", error }, state]
    }
  }
}

const classify = (rules: Rules, exit: Exit.Exit<unknown, unknown>): Outcome => {
  if (Exit.isSuccess(exit)) return "success"
  if (Cause.hasDies(exit.cause)) return "failure"
  const fail = exit.cause.reasons.find(Cause.isFailReason)
  if (fail === undefined) return "ignored" // interrupted
  return rules.isFailure(fail.error) ? "failure" : "success" // an error the broker answered with proves it is up
}

/** The state after a call that was let through ended with `outcome`. */
const complete = (rules: Rules, state: Internal, trial: boolean, outcome: Outcome, now: Now): Internal => {
  if (trial) {
    // Only the trial moves a half-open breaker, and there is one trial at a time.
    if (state._tag !== "HalfOpen") return state
    if (outcome === "success") return { _tag: "Closed", failures: 0 }
    if (outcome === "failure") return opened(now)
    return { ...state, trialRunning: false } // interrupted: the next caller tries
  }
  // A call let through before the breaker opened: too late to matter.
  if (state._tag !== "Closed") return state
  if (outcome === "success") return state.failures === 0 ? state : { _tag: "Closed", failures: 0 }
  if (outcome === "failure") {
    const failures = state.failures + 1
    return failures >= rules.threshold ? opened(now) : { _tag: "Closed", failures }
  }
  return state
}

/** The `CircuitBreaker` service, for the `Publisher` (and `Health.layer`) to find. */
export const layer = (options: Options = {}): Layer.Layer<CircuitBreaker> => Layer.effect(CircuitBreaker, make(options))
