/**
 * Durations: as the Kafka clients take them (whole milliseconds), and as the toolkit measures them
 * (monotonic time).
 *
 * @internal
 */
import { type Clock, Duration } from "effect"

/**
 * The milliseconds of a duration input (`"5 millis"`, `Duration.seconds(1)`, a number of milliseconds).
 * An invalid input throws: configs are checked before they reach a driver.
 */
export const millis = (input: Duration.Input): number => Duration.toMillis(Duration.fromInputUnsafe(input))

/**
 * Monotonic time in milliseconds (fractional), for measuring durations: unlike `currentTimeMillis` it never
 * jumps when the wall clock is stepped. Its origin is arbitrary (only differences mean something); `TestClock`
 * moves it with `adjust`. A double holds nanoseconds exactly for 104 days of uptime and to well under a
 * microsecond for decades, so milliseconds stay exact enough.
 */
export const monotonicMillis = (clock: Clock.Clock): number => Number(clock.monotonicTimeNanosUnsafe()) / 1_000_000
