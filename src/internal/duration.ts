/**
 * Durations as the Kafka clients take them: whole milliseconds.
 *
 * @internal
 */
import { Duration } from "effect"

/**
 * The milliseconds of a duration input (`"5 millis"`, `Duration.seconds(1)`, a number of milliseconds).
 * An invalid input throws: configs are checked before they reach a driver.
 */
export const millis = (input: Duration.Input): number => Duration.toMillis(Duration.fromInputUnsafe(input))
