/**
 * Accounting for the reliability tests: every published event must end in exactly one of the topic, the
 * dead-letter topic, or a typed error returned to its caller. Reads both topics back and counts.
 */
import { Effect, Exit } from "effect"
import { TopicReader } from "effect-kafka-publisher/testing"
import type { PublishFailure } from "../../src/Publisher.ts"
import type { Receipt } from "../../src/Receipt.ts"

export interface Counts {
  readonly published: number
  readonly delivered: number
  readonly deadLettered: number
  readonly errors: number
  /** Errors that were ambiguous (the record may have been written): counted, never silent. */
  readonly ambiguousErrors: number
  /** Delivered receipts marked possibleDuplicate. */
  readonly markedPossibleDuplicates: number
  /** Extra copies in the topic of events whose receipt did not warn about it. */
  readonly duplicates: number
  /** Delivered or dead-lettered events that are not where their receipt says. */
  readonly lost: number
  /** Events that failed with a non-ambiguous error and are in the topic anyway. */
  readonly silentlyWritten: number
}

const decoder = new TextDecoder()
const idOf = (value: Uint8Array | null): number => (JSON.parse(decoder.decode(value!)) as { id: number }).id

const isAmbiguous = (error: PublishFailure): boolean => {
  switch (error._tag) {
    case "Retriable":
      return error.ambiguous
    case "DeadLetterFailed":
      return error.possiblyDelivered
    default:
      return false
  }
}

export const count = (
  brokers: ReadonlyArray<string>,
  topic: string,
  deadLetterTopic: string,
  outcomes: ReadonlyArray<Exit.Exit<Receipt, PublishFailure>>
) =>
  Effect.gen(function* () {
    const inTopic = new Map<number, number>()
    for (const r of yield* TopicReader.readAll({ brokers, topic })) {
      const id = idOf(r.value)
      inTopic.set(id, (inTopic.get(id) ?? 0) + 1)
    }
    const inDeadLetter = new Map<number, number>()
    const dlt = yield* TopicReader.readAll({ brokers, topic: deadLetterTopic }).pipe(
      Effect.orElseSucceed(() => []) // no dead-letter topic: nothing was dead-lettered
    )
    for (const r of dlt) {
      const id = idOf(r.value)
      inDeadLetter.set(id, (inDeadLetter.get(id) ?? 0) + 1)
    }
    let delivered = 0
    let deadLettered = 0
    let errors = 0
    let ambiguousErrors = 0
    let markedPossibleDuplicates = 0
    let duplicates = 0
    let lost = 0
    let silentlyWritten = 0
    outcomes.forEach((exit, id) => {
      const copies = inTopic.get(id) ?? 0
      if (Exit.isSuccess(exit)) {
        if (exit.value._tag === "Delivered") {
          delivered++
          if (exit.value.possibleDuplicate) markedPossibleDuplicates++
          if (copies === 0) lost++
          if (copies > 1 && !exit.value.possibleDuplicate) duplicates += copies - 1
        } else {
          deadLettered++
          if ((inDeadLetter.get(id) ?? 0) === 0) lost++
        }
        return
      }
      errors++
      const failure = exit.cause.reasons.find((r) => r._tag === "Fail")?.error as PublishFailure | undefined
      const ambiguous = failure !== undefined && isAmbiguous(failure)
      if (ambiguous) ambiguousErrors++
      else if (copies > 0) silentlyWritten++
    })
    return {
      published: outcomes.length,
      delivered,
      deadLettered,
      errors,
      ambiguousErrors,
      markedPossibleDuplicates,
      duplicates,
      lost,
      silentlyWritten
    } satisfies Counts
  })

export const summary = (name: string, c: Counts) =>
  `${name}: published ${c.published}, delivered ${c.delivered}, dead-lettered ${c.deadLettered}, errors ${c.errors} (ambiguous ${c.ambiguousErrors}), possible duplicates marked ${c.markedPossibleDuplicates}, duplicates ${c.duplicates}, lost ${c.lost}, silently written ${c.silentlyWritten}`
