/**
 * Health of the publisher, from the outcomes of recent publishes and the circuit breaker's state: what a
 * `/health` (readiness) endpoint answers.
 *
 * `record(outcome)` is called once per publish and is cheap: it bumps a counter in the current time bucket.
 * The window (default the last 60 s) is a ring of 60 buckets keyed by the `Clock`'s monotonic time (a wall
 * clock stepped back or forward hides or ages out nothing; `TestClock` drives it): memory stays fixed however
 * many publishes there are, and an outcome ages out between `window - window / 60` and `window` after it was
 * recorded (the bucket granularity).
 *
 * `check` answers a `HealthReport`; its status is the worst of these rules (defaults):
 *
 * | rule | status |
 * | --- | --- |
 * | error rate (`failures / total`) > 50 %, with at least 10 publishes in the window | unhealthy |
 * | error rate > 10 %, with at least 10 publishes in the window | degraded |
 * | any dead-lettered publish in the window | degraded |
 * | circuit breaker `Open` | unhealthy |
 * | circuit breaker `HalfOpen` | degraded |
 *
 * With fewer than `minSamples` publishes the error rate is reported but judges nothing (two failures out of
 * three say little). Dead-lettered publishes count in `total` but not in `failures`: the event was kept, on
 * the dead-letter topic, and has its own rule. No traffic at all is healthy.
 *
 * `httpStatus(report)` maps a report to an HTTP status: 200 for healthy and degraded (still serving),
 * 503 for unhealthy.
 *
 * @module
 */
import { Clock, Context, Duration, Effect, Layer, Option } from "effect"
import { type State as BreakerState, CircuitBreaker } from "./CircuitBreaker.ts"
import { monotonicMillis } from "./internal/duration.ts"
import * as RecordNow from "./internal/recordNow.ts"

/** What one publish ended in, for the window: delivered, failed, or dead-lettered. */
export type Outcome = "success" | "failure" | "deadLettered"

/** The health status: `healthy`, `degraded` (still serving), `unhealthy` (503). */
export type Status = "healthy" | "degraded" | "unhealthy"

/** What `check` answers (and a health endpoint serves). */
export interface HealthReport {
  /** The worst status any rule gave. */
  readonly status: Status
  /** Why the status is not healthy, in words; empty when healthy. */
  readonly reasons: ReadonlyArray<string>
  /** `failures / total` over the window; 0 without traffic. */
  readonly errorRate: number
  /** Counts over the window. */
  readonly window: {
    /** Publishes that ended in the window. */
    readonly total: number
    /** Of them, those that ended in an error. */
    readonly failures: number
    /** Of them, those that were dead-lettered. */
    readonly deadLettered: number
  }
  /** Present when the health has a breaker to read. */
  readonly breaker?: BreakerState
}

/** The window and the thresholds; every field has a default (`defaults`). */
export interface Options {
  /** How far back outcomes count. Default 60 s. */
  readonly window?: Duration.Input | undefined
  /** Error rate above which the publisher is degraded. Default 0.1. */
  readonly degradedErrorRate?: number | undefined
  /** Error rate above which the publisher is unhealthy. Default 0.5. */
  readonly unhealthyErrorRate?: number | undefined
  /** Publishes in the window below which the error rate judges nothing. Default 10. */
  readonly minSamples?: number | undefined
  /**
   * Where to read the circuit breaker's state (e.g. `breaker.state`). `make` default: none; `layer` default:
   * the `CircuitBreaker` service's `state` when one is provided.
   */
  readonly breakerState?: Effect.Effect<BreakerState> | undefined
}

/** The health service: the `Publisher` records every outcome; an endpoint calls `check`. */
export interface Health {
  /** Counts one publish outcome in the current time bucket. */
  readonly record: (outcome: Outcome) => Effect.Effect<void>
  /** The report over the current window (and the breaker's state, when there is one). */
  readonly check: Effect.Effect<HealthReport>
}

/** The `Health` service tag: the `Publisher` records outcomes into it when one is provided. */
export const Health = Context.Service<Health>("effect-kafka-publisher/Health")

/** The defaults of `Options`. */
export const defaults = {
  /** The last 60 s. */
  window: Duration.seconds(60),
  /** Above 10 % errors: degraded. */
  degradedErrorRate: 0.1,
  /** Above 50 % errors: unhealthy. */
  unhealthyErrorRate: 0.5,
  /** At least 10 publishes before the error rate judges. */
  minSamples: 10
} as const

/** Buckets in the window: the granularity with which outcomes age out. */
const bucketCount = 60

const statusRank: Readonly<Record<Status, number>> = { healthy: 0, degraded: 1, unhealthy: 2 }

const percent = (rate: number): string => `${Math.round(rate * 1000) / 10} %`

/** A health window with no outcomes yet (healthy). */
export const make = (options: Options = {}): Effect.Effect<Health> =>
  Effect.sync(() => {
    const windowMs = Duration.toMillis(options.window ?? defaults.window)
    const windowText = Duration.format(Duration.millis(windowMs))
    const degradedRate = options.degradedErrorRate ?? defaults.degradedErrorRate
    const unhealthyRate = options.unhealthyErrorRate ?? defaults.unhealthyErrorRate
    const minSamples = options.minSamples ?? defaults.minSamples
    const breakerState = options.breakerState
    const bucketMs = windowMs / bucketCount

    // A ring of buckets: slot `id % bucketCount` holds bucket number `id` (time / bucketMs) or an older one,
    // which is stale and reset when the slot is reused. Mutated only inside `Effect.sync` (no await in
    // between), so concurrent fibers cannot interleave within an update.
    const ids = new Array<number>(bucketCount).fill(Number.NEGATIVE_INFINITY)
    const totals = new Array<number>(bucketCount).fill(0)
    const failures = new Array<number>(bucketCount).fill(0)
    const deadLettered = new Array<number>(bucketCount).fill(0)

    const bucketId = (now: number) => Math.floor(now / bucketMs)

    const recordAt: RecordNow.RecordNow = (outcome, now) => {
      const id = bucketId(now)
      const slot = ((id % bucketCount) + bucketCount) % bucketCount
      if (ids[slot] !== id) {
        ids[slot] = id
        totals[slot] = 0
        failures[slot] = 0
        deadLettered[slot] = 0
      }
      totals[slot]!++
      if (outcome === "failure") failures[slot]!++
      else if (outcome === "deadLettered") deadLettered[slot]!++
    }
    const record = (outcome: Outcome): Effect.Effect<void> =>
      Effect.clockWith((clock) => Effect.sync(() => recordAt(outcome, monotonicMillis(clock))))

    const windowCounts = (now: number) => {
      const current = bucketId(now)
      const counts = { total: 0, failures: 0, deadLettered: 0 }
      for (let slot = 0; slot < bucketCount; slot++) {
        const id = ids[slot]!
        if (id > current - bucketCount && id <= current) {
          counts.total += totals[slot]!
          counts.failures += failures[slot]!
          counts.deadLettered += deadLettered[slot]!
        }
      }
      return counts
    }

    const check = Effect.gen(function* () {
      const now = monotonicMillis(yield* Clock.Clock)
      const window = windowCounts(now)
      const errorRate = window.total === 0 ? 0 : window.failures / window.total
      const breaker = breakerState === undefined ? undefined : yield* breakerState

      let status: Status = "healthy"
      const reasons: Array<string> = []
      const flag = (level: Status, reason: string) => {
        if (statusRank[level] > statusRank[status]) status = level
        reasons.push(reason)
      }

      if (breaker === "Open") flag("unhealthy", "circuit breaker open: publishes fail fast")
      else if (breaker === "HalfOpen") flag("degraded", "circuit breaker half-open: trying the broker again")
      if (window.total >= minSamples) {
        const rate = `error rate ${percent(errorRate)} in the last ${windowText} (${window.failures} of ${window.total} publishes failed)`
        if (errorRate > unhealthyRate) flag("unhealthy", `${rate}, above ${percent(unhealthyRate)}`)
        else if (errorRate > degradedRate) flag("degraded", `${rate}, above ${percent(degradedRate)}`)
      }
      if (window.deadLettered > 0) {
        flag("degraded", `${window.deadLettered} of ${window.total} publishes dead-lettered in the last ${windowText}`)
      }

      const report: HealthReport = { status, reasons, errorRate, window }
      return breaker === undefined ? report : { ...report, breaker }
    })

    const health: Health & RecordNow.WithRecordNow = { record, check, [RecordNow.TypeId]: recordAt }
    return health
  })

/**
 * The `Health` service. Without `breakerState` it reads the `CircuitBreaker` service's state when one is
 * provided to this layer, and judges outcomes alone when none is.
 */
export const layer = (options: Options = {}): Layer.Layer<Health> =>
  Layer.effect(
    Health,
    Effect.gen(function* () {
      if (options.breakerState !== undefined) return yield* make(options)
      const breaker = yield* Effect.serviceOption(CircuitBreaker)
      return yield* make(Option.isSome(breaker) ? { ...options, breakerState: breaker.value.state } : options)
    })
  )

/** The HTTP status for a health endpoint: 200 while serving (healthy, degraded), 503 when unhealthy. */
export const httpStatus = (report: HealthReport): 200 | 503 => (report.status === "unhealthy" ? 503 : 200)
