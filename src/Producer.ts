/**
 * The driver-neutral producer: the one service every driver implements (kafkajs, the in-memory
 * `FakeKafka`, later others). `Publisher` depends on this interface, never on a driver.
 *
 * A driver writes the records it is given, in order per partition, and answers with one `RecordMetadata`
 * per record, in the order of the input. It classifies its own errors into `Retriable` / `Fatal` (see
 * `ErrorClassification`). Drivers own the Kafka-level retries of an in-flight request (same producer id and
 * sequence numbers, so the broker drops duplicates); resending a record is the caller's decision.
 */
import { Context, type Effect } from "effect"
import type { PublishError } from "./PublishError.ts"

/** Header values as Kafka stores them: bytes, or a string that is written as UTF-8. */
export type HeaderValue = string | Uint8Array

export type Headers = Readonly<Record<string, HeaderValue>>

/** One record, already serialized. `partition` unset means: the driver's default partitioner chooses. */
export interface ProducerRecord {
  readonly topic: string
  readonly key: Uint8Array | null
  readonly value: Uint8Array | null
  readonly headers: Headers
  readonly partition?: number | undefined
  /** Milliseconds since the epoch (CreateTime). Unset: the driver stamps the time of the send. */
  readonly timestamp?: number | undefined
}

/** Where a record was written. `offset` is a decimal string (Kafka offsets are 64-bit). */
export interface RecordMetadata {
  readonly topic: string
  readonly partition: number
  readonly offset: string
  readonly timestamp: number
}

export interface Producer {
  /** Writes the records; answers one `RecordMetadata` per record, in input order. */
  readonly send: (records: ReadonlyArray<ProducerRecord>) => Effect.Effect<ReadonlyArray<RecordMetadata>, PublishError>
  /** Sends currently in flight (for shutdown and metrics). */
  readonly inFlight: Effect.Effect<number>
}

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
