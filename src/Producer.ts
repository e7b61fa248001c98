/**
 * The driver-neutral producer: the one service every driver implements (kafkajs, the in-memory
 * `FakeKafka`, later others). `Publisher` depends on this interface, never on a driver.
 *
 * A driver writes the records it is given, in order per partition, and answers with one `RecordMetadata`
 * per record, in the order of the input. It classifies its own errors into `Retriable` / `Fatal` (see
 * `ErrorClassification`). Drivers own the Kafka-level retries of an in-flight request (same producer id and
 * sequence numbers, so the broker drops duplicates); resending a record is the caller's decision.
 *
 * Failures of a send that spans partitions (the `outcomes` contract). Kafka answers per partition, so when
 * a send of records in more than one topic-partition fails, the driver sets `outcomes` on the error: one
 * per record, in input order, each the `RecordMetadata` where the record was written, `"notWritten"` (the
 * error certainly applies to it: nothing of it is in the topic), or `"unknown"` (it may have been written).
 * A caller may resend the `"notWritten"` records as new and must mark any resend of an `"unknown"` one as a
 * possible duplicate. Without `outcomes` (a send to one partition, or a failure that certainly came before
 * anything was written, such as an unknown topic) the error applies to every record alike. What each
 * driver knows:
 * - `FakeKafka`: exact (a batch too large or a missing partition: the others are written, and say where).
 * - @platformatic/kafka: exact per partition (the driver's own sender reads each partition's answer):
 *   written, `"notWritten"`, or `"unknown"` when an attempt of that partition's batch may have written it.
 * - kafkajs: it fails the whole request when one partition's answer is an error and keeps no per-partition
 *   answer, so every record is `"unknown"`; exact only when kafkajs answered and dropped a partition the
 *   topic does not have (written / `"notWritten"`).
 *
 * Sends in flight together (the ordered-failure property). A driver may have several sends in flight at
 * once (a `Batcher` with `maxInFlightBatches` > 1, concurrent callers, a pipelined bulk publish): it writes
 * each partition's records in the order `send` was called, and it never writes a later batch of a partition
 * ahead of an earlier one it reports failed. For two sends A then B (B called before A's send returned its
 * failure) sharing partition p: if A's records on p are `"notWritten"`, B's records on p are not written
 * either; they fail `"notWritten"` too (Retriable, not ambiguous, "not written, to keep the order"), or
 * `"unknown"` if an attempt of B's own may have written them. So a caller that resends A's records and then
 * B's keeps their order. A send called after A returned is not held back. What each driver does:
 * - @platformatic/kafka: up to `maxInFlightRequests` requests per broker; a batch that fails for good fails
 *   the later batches of its partition, and a send called before the failed send returned is refused on
 *   that partition (`PipelinedSender`).
 * - kafkajs: one idempotent send at a time; the sends queued behind a failed one are not sent (`SendQueue`).
 * - `FakeKafka`: a send that overlaps an earlier send failed on the same partition (latency, pause,
 *   `failNext`, a refused batch) is refused there.
 *
 * @module
 */
import { Context, type Effect } from "effect"
import type { PublishError } from "./PublishError.ts"

/** A header value as Kafka stores it: bytes, or a string that is written as UTF-8. */
export type HeaderValue = string | Uint8Array

/** A record's headers, by name (Kafka allows repeated names; a record here has one value per name). */
export type Headers = Readonly<Record<string, HeaderValue>>

/** One record, already serialized. `partition` unset means: the driver's default partitioner chooses. */
export interface ProducerRecord {
  /** The topic to write to. */
  readonly topic: string
  /** The key's bytes, or null (no key: the partitioner goes round-robin). */
  readonly key: Uint8Array | null
  /** The value's bytes, or null (a tombstone). */
  readonly value: Uint8Array | null
  /** The headers. */
  readonly headers: Headers
  /** The partition to write to; unset: the partitioner chooses. */
  readonly partition?: number | undefined
  /** Milliseconds since the epoch (CreateTime). Unset: the driver stamps the time of the send. */
  readonly timestamp?: number | undefined
}

/** Where a record was written. */
export interface RecordMetadata {
  /** The topic. */
  readonly topic: string
  /** The partition. */
  readonly partition: number
  /** A decimal string (Kafka offsets are 64-bit); "-1" with acks=none (no answer), as the Java client reports. */
  readonly offset: string
  /** The broker's LogAppendTime where the topic uses it, else the record's CreateTime (ms since the epoch). */
  readonly timestamp: number
  /**
   * The record may also have been written by an earlier request whose outcome was unknown, which was sent
   * again (the `Batcher` does so after a request refused as too large): the receipt is then marked
   * `possibleDuplicate`. Drivers leave it out.
   */
  readonly possibleDuplicate?: boolean | undefined
}

/** The driver interface: what every driver provides as the `Producer` service. */
export interface Producer {
  /** Writes the records; answers one `RecordMetadata` per record, in input order (see `outcomes` above for failures). */
  readonly send: (records: ReadonlyArray<ProducerRecord>) => Effect.Effect<ReadonlyArray<RecordMetadata>, PublishError>
  /** Sends currently in flight (for shutdown and metrics). */
  readonly inFlight: Effect.Effect<number>
}

/** The `Producer` service tag. */
export const Producer = Context.Service<Producer>("effect-kafka-publisher/Producer")

/** Byte size of a record as the broker counts it, roughly: key + value + headers (for size checks). */
export const recordSize = (record: ProducerRecord): number => {
  let size = (record.key?.byteLength ?? 0) + (record.value?.byteLength ?? 0)
  for (const name in record.headers) {
    const value = record.headers[name]!
    size += utf8Length(name) + (typeof value === "string" ? utf8Length(value) : value.byteLength)
  }
  return size
}

const utf8Length = (s: string): number => Buffer.byteLength(s, "utf8")
