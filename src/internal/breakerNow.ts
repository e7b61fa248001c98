/**
 * A `CircuitBreaker` built by `CircuitBreaker.make` also admits and completes calls synchronously, under
 * this property: the `Publisher`'s per-event path puts a send behind the breaker without running an Effect.
 * A breaker of the application's own has no such property and is used through its `protect`.
 *
 * @internal
 */
import type { Exit } from "effect"
import type { CircuitBreaker, CircuitOpen } from "../CircuitBreaker.ts"

/** The property under which a `CircuitBreaker` works synchronously. */
export const TypeId: unique symbol = Symbol.for("effect-kafka-publisher/internal/CircuitBreaker/now")

/** Whether a call may run: through (`trial`: the one trial of a half-open breaker), or rejected. */
export type Admission =
  | { readonly _tag: "Pass"; readonly trial: boolean }
  | { readonly _tag: "Reject"; readonly error: CircuitOpen }

/** The breaker's decisions, synchronous. Every `Pass` must be completed once, with the call's exit. */
export interface BreakerNow {
  readonly admit: () => Admission
  readonly complete: (trial: boolean, exit: Exit.Exit<unknown, unknown>) => void
}

/** A `CircuitBreaker` that works synchronously. */
export interface WithBreakerNow {
  readonly [TypeId]: BreakerNow
}

/** The synchronous side of `breaker`, if it has one. */
export const of = (breaker: CircuitBreaker): BreakerNow | undefined =>
  TypeId in breaker ? (breaker as CircuitBreaker & WithBreakerNow)[TypeId] : undefined
