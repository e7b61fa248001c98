import { Clock, type Duration, Effect } from "effect"
import type { TestClock } from "effect/testing"

/**
 * The `Clock` in context (TestClock in `it.effect`) with a wall clock that can be stepped back, as NTP or
 * an operator may step a machine's clock: monotonic time and sleeps stay the underlying clock's.
 */
export const makeSteppingClock = Effect.gen(function* () {
  const base = (yield* Clock.Clock) as TestClock.TestClock
  let offsetMillis = 0
  const millis = () => base.currentTimeMillisUnsafe() - offsetMillis
  const nanos = () => base.currentTimeNanosUnsafe() - BigInt(offsetMillis) * BigInt(1_000_000)
  const clock: Clock.Clock = {
    currentTimeMillisUnsafe: millis,
    currentTimeMillis: Effect.sync(millis),
    currentTimeNanosUnsafe: nanos,
    currentTimeNanos: Effect.sync(nanos),
    monotonicTimeNanosUnsafe: () => base.monotonicTimeNanosUnsafe(),
    monotonicTimeNanos: Effect.sync(() => base.monotonicTimeNanosUnsafe()),
    sleep: (duration: Duration.Duration) => base.sleep(duration)
  }
  return {
    clock,
    /** `TestClock.adjust` of the underlying clock (`TestClock.adjust` needs the TestClock in context). */
    adjust: (duration: Duration.Input) => base.adjust(duration),
    /** Steps the wall clock back by `ms`; monotonic time does not move. */
    stepBack: (ms: number) =>
      Effect.sync(() => {
        offsetMillis += ms
      })
  }
})
