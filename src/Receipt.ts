/**
 * What a publish answers: the event was `Delivered` to its topic, or `DeadLettered` (it could not be
 * delivered and was written to the dead-letter topic instead). Either way the caller knows where it is.
 */
import { Data } from "effect"
import type { Fatal, Retriable } from "./PublishError.ts"

export class Delivered extends Data.TaggedClass("Delivered")<{
  readonly topic: string
  readonly partition: number
  readonly offset: string
  readonly timestamp: number
  /** Sends it took, the first included. */
  readonly attempts: number
  /**
   * An earlier attempt failed ambiguously (it may have been written) and the record was sent again: the
   * topic may hold it twice. Never true when it succeeded on the first attempt.
   */
  readonly possibleDuplicate: boolean
}> {}

export class DeadLettered extends Data.TaggedClass("DeadLettered")<{
  /** The topic the event was meant for. */
  readonly topic: string
  readonly deadLetterTopic: string
  /** Where it was written in the dead-letter topic. */
  readonly partition: number
  readonly offset: string
  readonly timestamp: number
  readonly attempts: number
  /** An attempt failed ambiguously: the original topic may hold the record as well (header `ambiguous`). */
  readonly possiblyDelivered: boolean
  /** Why it was not delivered. */
  readonly error: Retriable | Fatal
}> {}

export type Receipt = Delivered | DeadLettered

export const isDelivered = (receipt: Receipt): receipt is Delivered => receipt._tag === "Delivered"
export const isDeadLettered = (receipt: Receipt): receipt is DeadLettered => receipt._tag === "DeadLettered"
