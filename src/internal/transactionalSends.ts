/**
 * What a failed send inside a Kafka transaction means for the producer that made it, for both drivers.
 *
 * A transactional producer numbers its records per partition (sequence numbers, checked by the partition
 * leader within one producer epoch). After a Produce request fails, neither client knows for sure where the
 * broker's numbering stands: kafkajs 2.2.4 takes the request's numbers back (`sendMessages.js`,
 * `updateSequence(-n)`) although the broker may have written it (the connection broke after the write), and
 * @platformatic/kafka 2.12.1 keeps them although the broker may not have (`#performSend` advances them before
 * the request and resets them only for a non-transactional producer). The next transaction's records to that
 * partition then either leave a gap (OUT_OF_ORDER_SEQUENCE_NUMBER on every later send, seen on the real broker
 * as a run of "ProducerFenced" failures during a coordinator fail-over) or repeat a range the broker already
 * holds (answered as a duplicate of the old batch: the new records would not be written at all).
 *
 * So, as the Java client does (`TransactionManager`: a failed batch makes the transaction abortable and sets
 * `clientSideEpochBumpRequired`; aborting then calls InitProducerId with the current producer id and epoch),
 * the driver starts a new producer epoch after the transaction with the failed send aborted: every partition's
 * numbering starts again at 0, and a request of the old epoch still on its way is refused by the broker.
 *
 * A send refused with PRODUCER_FENCED or INVALID_PRODUCER_EPOCH is a fencing (a newer producer with the same
 * `transactionalId`, or the coordinator aborted the transaction on its timeout and bumped the epoch): a new
 * epoch would take the id from whoever holds it, so the driver does not start one. OUT_OF_ORDER_SEQUENCE_NUMBER
 * is no fencing: it says this producer's numbering is off, which the new epoch cures, so it fails the send as
 * Retriable instead of the core table's Fatal `ProducerFenced` (`ErrorClassification`, written for the
 * idempotent producer, which cannot recover from it).
 *
 * @internal
 * @module
 */
import { type ClientVocabulary, causeChain } from "../ErrorClassification.ts"
import { type PublishError, Retriable } from "../PublishError.ts"

/** The protocol errors that say another epoch holds the `transactionalId`. */
const fencings = new Set(["PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH"])

/** What the driver makes of a failed send inside a transaction. */
export interface FailedSend {
  /** The error the send fails with. */
  readonly error: PublishError
  /** True for a fencing: no new epoch (see the module notes); false: a new epoch before the next transaction. */
  readonly fenced: boolean
}

/** Reads a failed transactional send with the driver's client vocabulary (see the module notes). */
export const failedSend = (error: PublishError, client: ClientVocabulary): FailedSend => {
  const names = causeChain(error.cause ?? error).flatMap((e) => client.protocolName(e) ?? [])
  if (names.some((name) => fencings.has(name))) return { error, fenced: true }
  if (!names.includes("OUT_OF_ORDER_SEQUENCE_NUMBER")) return { error, fenced: false }
  return {
    error: new Retriable({
      reason: "Unknown",
      ambiguous: false,
      message:
        "The broker refused the records: this producer's sequence numbers were out of step with its " +
        "(OUT_OF_ORDER_SEQUENCE_NUMBER, after an earlier request failed). Not a fencing: the transaction aborts " +
        "and the producer starts a new epoch before the next one",
      ...(error.topic === undefined ? {} : { topic: error.topic }),
      ...(error.partition === undefined ? {} : { partition: error.partition }),
      cause: error.cause ?? error
    }),
    fenced: false
  }
}
