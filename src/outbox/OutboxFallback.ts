/**
 * The outbox as the Publisher's last resort, opt-in: `OutboxFallback.publish` is `Publisher.publish` that,
 * when the event could be neither delivered nor dead-lettered (the broker is down), stores it in the outbox
 * and answers `Outboxed` instead of the failure. The relay (`OutboxRelay`) sends it once the broker is back.
 *
 * What falls back: `DeadLetterFailed` (retries ran out and the dead-letter write failed too) and
 * `CircuitOpen` (the breaker refuses sends because the broker keeps failing; no dead-letter write is tried).
 * Everything else is answered as `Publisher.publish` answers it: an invalid event is its `Fatal`, a record
 * that was delivered or dead-lettered has its receipt, `PublisherClosed` stays a failure.
 *
 * The row is written in a transaction of its own (a savepoint of the caller's when one is open). A record
 * that may be in its topic already is stored `possible_duplicate`, and the relay resends it marked `ambiguous`.
 * If the outbox write fails too, the caller gets the original failure and the store's error is logged:
 * nothing is reported stored that is not.
 *
 * @module
 */
import { Data, Effect } from "effect"
import { SqlClient } from "effect/sql"
import type { CircuitOpen } from "../CircuitBreaker.ts"
import type { ProducerRecord } from "../Producer.ts"
import type { DeadLetterFailed } from "../PublishError.ts"
import { Publisher, type PublishFailure } from "../Publisher.ts"
import type { Receipt } from "../Receipt.ts"
import * as Topic from "../Topic.ts"
import * as Outbox from "./Outbox.ts"
import * as OutboxTable from "./OutboxTable.ts"

/** Neither the topic nor its dead-letter topic could be written; the record is in the outbox, pending. */
export class Outboxed extends Data.TaggedClass("Outboxed")<{
  /** The topic the event is meant for. */
  readonly topic: string
  /** The outbox table it was written to. */
  readonly table: string
  /** Its event id: the `eventId` header the relayed record carries. */
  readonly eventId: string
  /** An attempt failed ambiguously: the topic may hold the record already (the relay resends it marked). */
  readonly possiblyDelivered: boolean
  /** Why it was neither delivered nor dead-lettered. */
  readonly error: DeadLetterFailed | CircuitOpen
}> {}

/** What a publish with the fallback answers: the Publisher's receipt, or `Outboxed`. */
export type FallbackReceipt = Receipt | Outboxed

const fallsBack = (error: PublishFailure): error is DeadLetterFailed | CircuitOpen =>
  error._tag === "DeadLetterFailed" || error._tag === "CircuitOpen"

/** Stores `record` after `error`; the original error when the store fails as well. */
const store = (
  record: ProducerRecord,
  error: DeadLetterFailed | CircuitOpen,
  names: OutboxTable.Names
): Effect.Effect<Outboxed, DeadLetterFailed | CircuitOpen, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const possiblyDelivered = error.possiblyDelivered === true
    const eventId = yield* sql.withTransaction(Outbox.publishRecord(record, names, possiblyDelivered))
    yield* Effect.logWarning("publish fell back to the outbox").pipe(
      Effect.annotateLogs({ topic: record.topic, eventId, error: error._tag })
    )
    return new Outboxed({
      topic: record.topic,
      table: OutboxTable.resolve(names).table,
      eventId,
      possiblyDelivered,
      error
    })
  }).pipe(
    Effect.catchCause((cause) =>
      Effect.andThen(
        Effect.logError("outbox fallback failed; the publish fails with its own error", cause),
        Effect.fail(error)
      )
    )
  )

/** `Publisher.publishRecord`, falling back to the outbox when neither topic could be written. */
export const publishRecord = (
  record: ProducerRecord,
  names: OutboxTable.Names = {}
): Effect.Effect<FallbackReceipt, PublishFailure, Publisher | SqlClient.SqlClient> =>
  Effect.flatMap(Publisher, (publisher) =>
    publisher
      .publishRecord(record)
      .pipe(
        Effect.catchIf(
          fallsBack,
          (error): Effect.Effect<FallbackReceipt, PublishFailure, SqlClient.SqlClient> => store(record, error, names)
        )
      )
  )

/**
 * `Publisher.publish`, falling back to the outbox when neither the topic nor its dead-letter topic could be
 * written. An invalid event fails with its `Fatal` `SchemaInvalid` and nothing is stored.
 */
export const publish = <A, I>(
  topic: Topic.Topic<A, I>,
  event: A,
  names: OutboxTable.Names = {}
): Effect.Effect<FallbackReceipt, PublishFailure, Publisher | SqlClient.SqlClient> =>
  Effect.flatMap(Topic.encode(topic, event), (record) => publishRecord(record, names))
