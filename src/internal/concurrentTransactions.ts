/**
 * The quick retry of AddPartitionsToTxn on CONCURRENT_TRANSACTIONS. Right after a commit or abort the
 * coordinator is still writing the markers of the transaction that ended, and answers the next
 * transaction's first AddPartitionsToTxn with CONCURRENT_TRANSACTIONS for a few milliseconds. The Java client
 * retries that one case after 20 ms (`TransactionManager.ADD_PARTITIONS_RETRY_BACKOFF_MS`, a stopgap for
 * KAFKA-5482) instead of its `retry.backoff.ms` (100 ms); both drivers here waited 100 ms and more, which
 * halved their transactions/s. Every other error keeps the driver's usual backoff.
 *
 * @module
 */

/** The wait before such a retry, in milliseconds (Java's `ADD_PARTITIONS_RETRY_BACKOFF_MS`). */
export const retryDelayMillis = 20

/** The protocol error that gets the quick retry. */
export const errorName = "CONCURRENT_TRANSACTIONS"
