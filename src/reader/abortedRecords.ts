/**
 * Which records of a read_committed fetch belong to aborted transactions, decided the way the Java consumer
 * does (`CompletedFetch`), and the hook that applies it to kafkajs' fetches for `TopicReader`.
 *
 * A read_committed fetch answers, per partition, the aborted transactions that overlap the records it returns
 * (producer id and first offset), in the order of their abort markers. kafkajs 2.2.4's own filter
 * (consumer/filterAbortedMessages.js) takes that list as sorted by first offset and starts at most one
 * aborted transaction per record, so with several producers' transactions interleaved in a partition it let
 * aborted records through and, when a start came late, dropped committed ones. Here the list is sorted first,
 * every transaction that started by the end of a record batch is started, and a producer's abort marker ends
 * it. The list is complete for each fetch, so no state is kept between fetches.
 *
 * @module
 */
import type * as KafkaJs from "kafkajs"
import { onEachBroker } from "../kafkajs/brokerHook.ts"

/** An aborted transaction as a fetch answers it: its producer and its first offset. */
export interface AbortedTransaction {
  readonly producerId: string
  readonly firstOffset: string
}

/** The fields of a fetched record (as kafkajs decodes it) that decide whether it was aborted. */
export interface FetchedRecord {
  readonly offset: string
  readonly key: Uint8Array | null
  /** The record batch it came in; absent for the old message format, which has no transactions. */
  readonly batchContext?:
    | {
        readonly firstOffset: string
        readonly lastOffsetDelta: number
        readonly producerId: string
        readonly inTransaction: boolean
        readonly isControlBatch: boolean
      }
    | undefined
}

/** A control record's key is its version (int16) then its type (int16): 0 abort, 1 commit. */
const isAbortMarker = (key: Uint8Array | null) => key !== null && key.length >= 4 && key[2] === 0 && key[3] === 0

/** The offsets of `records` (one partition's fetch, in offset order) that belong to aborted transactions. */
export const abortedOffsets = (
  records: ReadonlyArray<FetchedRecord>,
  aborted: ReadonlyArray<AbortedTransaction>
): Set<string> => {
  const pending = [...aborted].sort((a, b) => compare(BigInt(a.firstOffset), BigInt(b.firstOffset)))
  const abortedProducers = new Set<string>()
  const offsets = new Set<string>()
  let next = 0
  for (const { offset, key, batchContext: batch } of records) {
    if (batch === undefined || !batch.inTransaction) continue
    const batchEnd = BigInt(batch.firstOffset) + BigInt(batch.lastOffsetDelta)
    for (; next < pending.length && BigInt(pending[next]!.firstOffset) <= batchEnd; next++) {
      abortedProducers.add(pending[next]!.producerId)
    }
    if (batch.isControlBatch) {
      if (isAbortMarker(key)) abortedProducers.delete(batch.producerId)
    } else if (abortedProducers.has(batch.producerId)) offsets.add(offset)
  }
  return offsets
}

const compare = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0)

/** One partition of a kafkajs fetch response (the fields used here; kafkajs mutates nothing before us). */
interface FetchedPartition {
  abortedTransactions?: Array<AbortedTransaction> | null
  messages: Array<FetchedRecord & { isControlRecord?: boolean }>
}

interface FetchResponse {
  readonly responses: ReadonlyArray<{ readonly partitions: ReadonlyArray<FetchedPartition> }>
}

/**
 * Marks the aborted records of a partition's fetch as kafkajs' control records and empties its aborted list,
 * so kafkajs' filter keeps the rest as it is. kafkajs passes over control records without handing them out but
 * still moves past their offsets (and `TopicReader` reports them as skipped); a record removed from the
 * answer instead would be fetched again, for ever when nothing follows it.
 */
const filterPartition = (partition: FetchedPartition) => {
  if (!partition.abortedTransactions?.length) return
  const offsets = abortedOffsets(partition.messages, partition.abortedTransactions)
  for (const message of partition.messages) if (offsets.has(message.offset)) message.isControlRecord = true
  partition.abortedTransactions = []
}

/**
 * Makes every client that `kafka` creates from now on filter the aborted records of its fetches with
 * `abortedOffsets`: each broker its cluster uses answers fetches filtered (see `onEachBroker`).
 */
export const filterAbortedRecords = (kafka: KafkaJs.Kafka): void =>
  onEachBroker(kafka, (broker) => {
    const fetch = (broker.fetch as (request: unknown) => Promise<FetchResponse>).bind(broker)
    broker.fetch = async (request: unknown) => {
      const response = await fetch(request)
      for (const topic of response.responses) for (const partition of topic.partitions) filterPartition(partition)
      return response
    }
  })
