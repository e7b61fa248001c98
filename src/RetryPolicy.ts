/**
 * Retry policies as `Schedule`s: exponential backoff, jitter, a cap on the delay, a maximum number of
 * attempts, and a filter so that only `Retriable` failures are retried (a `Fatal` one stops at once).
 *
 * The default: the first retry after 100 ms, then 200 ms, 400 ms ... (doubling), each delay jittered by a
 * random factor in [0.8, 1.2] and then capped at 10 s, at most 3 attempts in all (the first try included).
 *
 * These are application-level retries: each one resends the record. Which failures are safe to resend is
 * discussed in `Publisher` (the idempotence decision); drivers retry in-flight requests themselves.
 *
 * @module
 */
import { Duration, Effect, Schedule } from "effect"
import { isRetriable } from "./PublishError.ts"

/** The shape of the backoff; every field has a default (`defaults`). */
export interface Options {
  /** Delay before the first retry. Default 100 ms. */
  readonly initialDelay?: Duration.Input | undefined
  /** Each delay is the previous one times this. Default 2. */
  readonly factor?: number | undefined
  /** No delay is longer than this, jitter included. Default 10 s. */
  readonly maxDelay?: Duration.Input | undefined
  /** Attempts in all, the first one included. Default 3. 1 means no retry. */
  readonly maxAttempts?: number | undefined
  /** Multiply each delay by a random factor in [0.8, 1.2]. Default true. */
  readonly jitter?: boolean | undefined
}

/**
 * The input of a retry schedule is the failure (any failure: the policy itself lets only `Retriable` ones
 * through, so it composes with effects that fail in other ways too); its output is the delay it chose.
 */
export type RetryPolicy = Schedule.Schedule<Duration.Duration, unknown>

/** The defaults of `Options`. */
export const defaults = {
  /** 100 ms (Java's `retry.backoff.ms`). */
  initialDelay: Duration.millis(100),
  /** Doubling. */
  factor: 2,
  /** 10 s (longer than Java's `retry.backoff.max.ms`, 1 s: each retry here is a resend). */
  maxDelay: Duration.seconds(10),
  /** 3 attempts, the first included. */
  maxAttempts: 3,
  /** Jittered by a factor in [0.8, 1.2]. */
  jitter: true
} as const

/** A retry policy; a `maxAttempts` that is not a whole number >= 1 throws a `RangeError`. */
export const make = (options: Options = {}): RetryPolicy => {
  const maxAttempts = options.maxAttempts ?? defaults.maxAttempts
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new RangeError(`RetryPolicy: maxAttempts must be a whole number >= 1, got ${maxAttempts}`)
  }
  const maxDelay = Duration.fromInputUnsafe(options.maxDelay ?? defaults.maxDelay)
  const base = Schedule.exponential(options.initialDelay ?? defaults.initialDelay, options.factor ?? defaults.factor)
  const jittered = (options.jitter ?? defaults.jitter) ? Schedule.jittered(base) : base
  return jittered.pipe(
    // cap after the jitter, so the cap really is the longest wait
    Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, maxDelay))),
    Schedule.upTo({ times: maxAttempts - 1 }),
    Schedule.setInputType<unknown>(),
    Schedule.while(({ input }) => isRetriable(input))
  )
}

/** 100 ms, 200 ms ... jittered, capped at 10 s, 3 attempts, only `Retriable`. */
export const defaultPolicy: RetryPolicy = make()

/** Never retry: one attempt. */
export const none: RetryPolicy = make({ maxAttempts: 1 })
