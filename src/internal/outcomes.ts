/**
 * `PublishError.outcomes` for drivers: what became of each record of a failed send that spans partitions.
 *
 * @internal
 */
import { Fatal, type PublishError, type RecordOutcome, Retriable } from "../PublishError.ts"
import { type Placement, partitionKey } from "./receipts.ts"

/** Whether the records go to more than one topic-partition (only such a send gets `outcomes`). */
export const spansPartitions = (placements: ReadonlyArray<Placement>): boolean => {
  const first = placements[0]
  if (first === undefined) return false
  const key = partitionKey(first.topic, first.partition)
  return placements.some((p) => partitionKey(p.topic, p.partition) !== key)
}

/** The same error with `outcomes` set (one per record, in input order). */
export const withOutcomes = (error: PublishError, outcomes: ReadonlyArray<RecordOutcome>): PublishError => {
  const fields = {
    message: error.message,
    outcomes,
    ...(error.topic === undefined ? {} : { topic: error.topic }),
    ...(error.partition === undefined ? {} : { partition: error.partition }),
    ...(error.cause === undefined ? {} : { cause: error.cause })
  }
  return error._tag === "Retriable"
    ? new Retriable({ ...fields, reason: error.reason, ambiguous: error.ambiguous })
    : new Fatal({ ...fields, reason: error.reason })
}
