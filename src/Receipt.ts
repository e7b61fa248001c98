/**
 * What a publish answers: the event was `Delivered` to its topic, or `DeadLettered` (it could not be
 * delivered and was written to the dead-letter topic instead). Either way the caller knows where it is.
 *
 * @module
 */
import { Data } from "effect"
import type { Fatal, Retriable } from "./PublishError.ts"

/** The event is in its topic, here. */
export class Delivered extends Data.TaggedClass("Delivered")<{
  /** The topic it was written to. */
  readonly topic: string
  /** The partition it was written to. */
  readonly partition: number
  /** Its offset, a decimal string (Kafka offsets are 64-bit). */
  readonly offset: string
  /** Its timestamp (CreateTime, or the broker's LogAppendTime), ms since the epoch. */
  readonly timestamp: number
  /** Sends it took, the first included. */
  readonly attempts: number
  /**
   * An earlier attempt failed ambiguously (it may have been written) and the record was sent again: the
   * topic may hold it twice. Never true when it succeeded on the first attempt.
   */
  readonly possibleDuplicate: boolean
}> {}

/** The event could not be delivered and is in the dead-letter topic instead, here. */
export class DeadLettered extends Data.TaggedClass("DeadLettered")<{
  /** The topic the event was meant for. */
  readonly topic: string
  /** The dead-letter topic it was written to. */
  readonly deadLetterTopic: string
  /** Where it was written in the dead-letter topic. */
  readonly partition: number
  /** Its offset in the dead-letter topic. */
  readonly offset: string
  /** Its timestamp in the dead-letter topic, ms since the epoch. */
  readonly timestamp: number
  /** Sends to the original topic tried, the first included. */
  readonly attempts: number
  /** An attempt failed ambiguously: the original topic may hold the record as well (header `ambiguous`). */
  readonly possiblyDelivered: boolean
  /** Why it was not delivered. */
  readonly error: Retriable | Fatal
}> {}

/** What a successful publish answers. */
export type Receipt = Delivered | DeadLettered

/** Whether the receipt is `Delivered`. */
export const isDelivered = (receipt: Receipt): receipt is Delivered => receipt._tag === "Delivered"
/** Whether the receipt is `DeadLettered`. */
export const isDeadLettered = (receipt: Receipt): receipt is DeadLettered => receipt._tag === "DeadLettered"
