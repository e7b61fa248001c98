/**
 * A circuit breaker in front of the Producer (or any effect): when the broker is down, callers fail fast
 * with a typed `CircuitOpen` instead of each waiting through its own retries and timeouts.
 *
 * - Closed: calls go through; `failureThreshold` consecutive failures (default 5) open it.
 * - Open: calls fail at once with `CircuitOpen` and never reach the protected effect. After `resetTimeout`
 *   (default 30 s, measured with Effect's `Clock`) it is half-open.
 * - HalfOpen: one trial call goes through (the others fail fast while it runs); its success closes the
 *   breaker, its failure opens it again for another `resetTimeout`.
 *
 * What counts as a failure: by default a `Retriable` error (the broker unavailable, timing out) or a
 * defect. A `Fatal` error (an oversize record, an invalid topic) proves the broker answered, so it counts as
 * a success for the breaker: one bad record must not cut every caller off. An interruption counts as
 * nothing. The state is observable (`state`) and exported as the gauge
 * `kafka.publisher.circuit_breaker.state` (0 closed, 1 half-open, 2 open); each transition is logged.
 */
import { Cause, Context, Duration, Effect, Exit, Layer, Metric, Schema } from "effect"
import { isRetriable } from "./PublishError.ts"

export type State = "Closed" | "Open" | "HalfOpen"

export class CircuitOpen extends Schema.TaggedError<CircuitOpen>()("CircuitOpen", {
  message: Schema.String,
  /** When the breaker opened (epoch ms). */
  openedAt: Schema.Number,
  /** How long until it lets a trial call through (0: a trial is running now). */
  retryAfterMs: Schema.Number
}) {}

export interface Options {
  /** Consecutive failures that open the breaker. Default 5. */
  readonly failureThreshold?: number | undefined
  /** How long it stays open before a trial. Default 30 s. */
  readonly resetTimeout?: Duration.Input | undefined
  /** Which errors count as failures. Default: `Retriable` ones. */
  readonly isFailure?: ((error: unknown) => boolean) | undefined
}

export interface CircuitBreaker {
  /** Runs `self` if the breaker lets it through, and records its outcome. */
  readonly protect: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpen, R>
  readonly state: Effect.Effect<State>
}

export const CircuitBreaker = Context.Service<CircuitBreaker>("effect-kafka-publisher/CircuitBreaker")

export const defaults = { failureThreshold: 5, resetTimeout: Duration.seconds(30) } as const

export const stateGauge = Metric.gauge("kafka.publisher.circuit_breaker.state", {
  description: "Circuit breaker state: 0 closed, 1 half-open, 2 open"
})
const gaugeValue: Record<State, number> = { Closed: 0, HalfOpen: 1, Open: 2 }

type Internal =
  | { readonly _tag: "Closed"; readonly failures: number }
  | { readonly _tag: "Open"; readonly openedAt: number }
  | { readonly _tag: "HalfOpen"; readonly trialRunning: boolean }

export const make = (options: Options = {}): Effect.Effect<CircuitBreaker> =>
  Effect.gen(function* () {
    const threshold = options.failureThreshold ?? defaults.failureThreshold
    const resetMs = Duration.toMillis(Duration.fromInputUnsafe(options.resetTimeout ?? defaults.resetTimeout))
    const isFailure = options.isFailure ?? isRetriable
    let state: Internal = { _tag: "Closed", failures: 0 }

    // Every transition goes through here: the gauge and the log follow the state.
    const moveTo = (next: Internal): Effect.Effect<void> => {
      const changed = next._tag !== state._tag
      state = next
      if (!changed) return Effect.void
      const log =
        next._tag === "Open"
          ? Effect.logWarning("circuit breaker open: failing fast")
          : Effect.logInfo(`circuit breaker ${next._tag === "Closed" ? "closed" : "half-open: trying one call"}`)
      return Effect.andThen(
        Metric.update(stateGauge, gaugeValue[next._tag]),
        log.pipe(Effect.annotateLogs({ circuitBreaker: next._tag }))
      )
    }

    const counts = <E>(exit: Exit.Exit<unknown, E>): "success" | "failure" | "none" => {
      if (Exit.isSuccess(exit)) return "success"
      if (Cause.hasInterruptsOnly(exit.cause)) return "none"
      const failure = exit.cause.reasons.find((reason) => reason._tag === "Fail")
      if (failure === undefined) return "failure" // a defect
      return isFailure(failure.error) ? "failure" : "success"
    }

    const record = <E>(exit: Exit.Exit<unknown, E>, trial: boolean, now: number): Effect.Effect<void> =>
      Effect.suspend(() => {
        const outcome = counts(exit)
        if (trial) {
          if (outcome === "success") return moveTo({ _tag: "Closed", failures: 0 })
          if (outcome === "failure") return moveTo({ _tag: "Open", openedAt: now })
          return moveTo({ _tag: "HalfOpen", trialRunning: false })
        }
        if (state._tag !== "Closed") return Effect.void // a call let through before the breaker opened
        if (outcome === "success") return moveTo({ _tag: "Closed", failures: 0 })
        if (outcome === "failure") {
          const failures = state.failures + 1
          return moveTo(failures >= threshold ? { _tag: "Open", openedAt: now } : { _tag: "Closed", failures })
        }
        return Effect.void
      })

    const open = (openedAt: number, retryAfterMs: number) =>
      new CircuitOpen({
        message: `circuit breaker open: the broker failed ${threshold} times in a row; next trial in ${retryAfterMs} ms`,
        openedAt,
        retryAfterMs
      })

    const protect = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitOpen, R> =>
      Effect.clockWith((clock) =>
        Effect.suspend((): Effect.Effect<A, E | CircuitOpen, R> => {
          const now = clock.currentTimeMillisUnsafe()
          let trial = false
          if (state._tag === "Open") {
            const wait = state.openedAt + resetMs - now
            if (wait > 0) return Effect.fail(open(state.openedAt, wait))
            trial = true
          } else if (state._tag === "HalfOpen") {
            if (state.trialRunning) return Effect.fail(open(now, 0))
            trial = true
          }
          const enter = trial ? moveTo({ _tag: "HalfOpen", trialRunning: true }) : Effect.void
          return Effect.andThen(
            enter,
            self.pipe(Effect.onExit((exit) => record(exit, trial, clock.currentTimeMillisUnsafe())))
          )
        })
      )

    yield* Metric.update(stateGauge, 0)
    return CircuitBreaker.of({ protect, state: Effect.sync(() => state._tag) })
  })

export const layer = (options: Options = {}): Layer.Layer<CircuitBreaker> => Layer.effect(CircuitBreaker, make(options))
