/**
 * A `Health` built by `Health.make` also records outcomes synchronously, under this property: the
 * `Publisher`'s per-event path counts a delivery without running an Effect. A `Health` of the application's
 * own has no such property and is recorded through its `record` Effect.
 *
 * @internal
 */
import type { Health, Outcome } from "../Health.ts"

/** The property under which a `Health` records synchronously. */
export const TypeId: unique symbol = Symbol.for("effect-kafka-publisher/internal/Health/recordNow")

/** Records one outcome at `monotonicMillis` (the `Clock`'s monotonic time, as `record` reads it). */
export type RecordNow = (outcome: Outcome, monotonicMillis: number) => void

/** A `Health` that records synchronously. */
export interface WithRecordNow {
  readonly [TypeId]: RecordNow
}

/** The synchronous recorder of `health`, if it has one. */
export const of = (health: Health): RecordNow | undefined =>
  TypeId in health ? (health as Health & WithRecordNow)[TypeId] : undefined
