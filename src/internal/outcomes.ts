/**
 * `PublishError.outcomes` for drivers: what became of each record of a failed send that spans partitions.
 *
 * @internal
 */
import { amend, type PublishError, type RecordOutcome } from "../PublishError.ts"
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
