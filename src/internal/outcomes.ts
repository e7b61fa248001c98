/**
 * `PublishError.outcomes` for drivers: what became of each record of a failed send that spans partitions.
 *
 * @internal
 */
import type { CircuitOpen } from "../CircuitBreaker.ts"
import { amend, type PublishError, type RecordOutcome, Retriable } from "../PublishError.ts"
import { type Placement, partitionKey } from "./receipts.ts"

/** Whether the records go to more than one topic-partition (only such a send gets `outcomes`). */
export const spansPartitions = (placements: ReadonlyArray<Placement>): boolean => {
  const first = placements[0]
  if (first === undefined) return false
  const key = partitionKey(first.topic, first.partition)
  return placements.some((p) => partitionKey(p.topic, p.partition) !== key)
}

/** The same error with `outcomes` set (one per record, in input order); its other fields are kept. */
export const withOutcomes = (error: PublishError, outcomes: ReadonlyArray<RecordOutcome>): PublishError =>
  amend(error, { outcomes })

/**
 * The error of records not written because an earlier send on their partition failed first (the
 * ordered-failure property of `Producer`): `Retriable` (sent again after the earlier one, they may pass),
 * with the earlier failure's reason when that one is retriable, ambiguous only when an attempt of their own was.
 */
export const heldBack = (
  earlier: PublishError,
  fields: { readonly ambiguous: boolean; readonly topic?: string | undefined; readonly partition?: number | undefined }
): Retriable =>
  new Retriable({
    reason: earlier._tag === "Retriable" ? earlier.reason : "Unknown",
    ambiguous: fields.ambiguous,
    message: `not written, to keep the order: an earlier send to the same partition failed first (${earlier.message})`,
    cause: earlier,
    ...(fields.topic === undefined ? {} : { topic: fields.topic }),
    ...(fields.partition === undefined ? {} : { partition: fields.partition })
  })

/** A send refused as too large for the topic (`RecordTooLarge`, `RecordListTooLarge`): a smaller one may pass. */
export const isTooLarge = (error: PublishError | CircuitOpen): boolean =>
  error._tag === "Fatal" && (error.reason === "RecordTooLarge" || error.reason === "RecordListTooLarge")

/**
 * A send's error as the error of some of its records, by what became of them: certainly not written (not
 * ambiguous, not possibly delivered, although other partitions of the send were written), or maybe written
 * (possibly delivered). `outcomes`: those records' own, or undefined.
 */
export const errorOfRecords = (
  error: PublishError,
  fate: "notWritten" | "unknown" | "mixed",
  outcomes: ReadonlyArray<RecordOutcome> | undefined
): PublishError =>
  fate === "notWritten"
    ? amend(error, { outcomes, possiblyDelivered: undefined, ambiguous: false })
    : amend(error, { outcomes, possiblyDelivered: true })
