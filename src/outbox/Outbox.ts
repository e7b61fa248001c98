/**
 * `Outbox.publish`: the transactional outbox's write side. It validates and encodes the event exactly as
 * `Publisher.publish` does (`Topic.encode`: an invalid event is the same `Fatal`, and nothing is written),
 * then inserts the record into the outbox table on the caller's current SQL transaction, so the event is
 * committed with the application's own writes or not at all. The relay (`OutboxRelay`) sends it later.
 *
 * Outside a transaction `publish` fails with `OutboxError` `NoTransaction` and writes nothing: an outbox
 * row committed on its own would bring back the dual write the outbox exists to remove. Wrap the work in
 * `sql.withTransaction` (a single `publish` in its own transaction is fine).
 *
 * On PostgreSQL the insert also sends `NOTIFY` on the table's channel, delivered when the transaction
 * commits: a relay listening there wakes at once instead of at its next poll.
 *
 * @module
 */
import { Effect, Option, Schema } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { murmur2 } from "../internal/partitioner.ts"
import type { Headers, ProducerRecord } from "../Producer.ts"
import type { Fatal } from "../PublishError.ts"
import * as Topic from "../Topic.ts"
import { uuidv7 } from "./eventId.ts"
import * as OutboxTable from "./OutboxTable.ts"

/**
 * Why the outbox refused a write:
 * - `NoTransaction`: `publish` ran outside `sql.withTransaction`;
 * - `MissingTable`: the outbox table does not exist (run `OutboxTable.migrate`);
 * - `StoreFailed`: the database failed the insert.
 */
export class OutboxError extends Schema.TaggedError<OutboxError>()("OutboxError", {
  /** Which kind of refusal. */
  reason: Schema.Literals(["NoTransaction", "MissingTable", "StoreFailed"]),
  /** What happened, in words. */
  message: Schema.String,
  /** The database's own error, when there is one. */
  cause: Schema.optional(Schema.Defect())
}) {}

/** The header every relayed record carries: the row's UUIDv7, for consumers to deduplicate on. */
export const eventIdHeader = "eventId"

/** Headers as stored: strings as they are, bytes as `{ b64 }`. */
export const encodeHeaders = (headers: Headers): string => {
  const out: Record<string, string | { b64: string }> = {}
  for (const name in headers) {
    const value = headers[name]!
    out[name] = typeof value === "string" ? value : { b64: Buffer.from(value).toString("base64") }
  }
  return JSON.stringify(out)
}

/** The stored headers back as record headers. */
export const decodeHeaders = (text: string): Record<string, string | Uint8Array> => {
  const stored = JSON.parse(text) as Record<string, string | { b64: string }>
  const out: Record<string, string | Uint8Array> = {}
  for (const name in stored) {
    const value = stored[name]!
    out[name] = typeof value === "string" ? value : Buffer.from(value.b64, "base64")
  }
  return out
}

/** The shard of a record: all rows of one topic and key in one shard; keyless rows spread by their id. */
export const shardOf = (topic: string, key: Uint8Array | null, eventId: string): number => {
  const bytes = Buffer.concat([Buffer.from(`${topic}\u0000`, "utf8"), key ?? Buffer.from(eventId, "utf8")])
  return (murmur2(bytes) & 0x7fffffff) % OutboxTable.shardCount
}

const isMissingTable = (error: SqlError.SqlError): boolean =>
  /no such table|does not exist|42P01/i.test(
    `${String((error.reason.cause as { message?: unknown })?.message)} ${
      (error.reason.cause as { code?: unknown })?.code
    }`
  )

/**
 * Inserts an encoded record into the outbox on the current transaction; answers its event id.
 * `possibleDuplicate`: the record may be in its topic already (the relay sends it marked `ambiguous`).
 */
export const publishRecord = (
  record: ProducerRecord,
  names: OutboxTable.Names = {},
  possibleDuplicate = false
): Effect.Effect<string, OutboxError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const { table } = OutboxTable.resolve(names)
    const inTransaction = yield* Effect.serviceOption(sql.transactionService)
    if (Option.isNone(inTransaction)) {
      return yield* new OutboxError({
        reason: "NoTransaction",
        message: "Outbox.publish must run inside sql.withTransaction (it commits with the application's writes)"
      })
    }
    const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
    const eventId = uuidv7(now)
    const row = {
      event_id: eventId,
      topic: record.topic,
      record_key: record.key,
      value: record.value,
      headers: encodeHeaders(record.headers),
      shard: shardOf(record.topic, record.key, eventId),
      status: "pending",
      created_at: now,
      possible_duplicate: possibleDuplicate ? 1 : 0
    }
    const notify: Effect.Effect<void, SqlError.SqlError> = sql.onDialectOrElse({
      pg: () => Effect.asVoid(sql`SELECT pg_notify(${table}, '')`),
      orElse: () => Effect.void
    })
    yield* sql`INSERT INTO ${sql(table)} ${sql.insert(row)}`.pipe(
      Effect.andThen(notify),
      Effect.mapError((error: SqlError.SqlError) =>
        isMissingTable(error)
          ? new OutboxError({
              reason: "MissingTable",
              message: `outbox table "${table}" does not exist: run OutboxTable.migrate`,
              cause: error
            })
          : new OutboxError({ reason: "StoreFailed", message: `outbox insert failed: ${error.message}`, cause: error })
      )
    )
    return eventId
  })

/**
 * Validates and encodes `event` for `topic` (as `Publisher.publish`) and inserts it into the outbox on the
 * caller's current transaction. Answers the event id (the `eventId` header the record will carry).
 */
export const publish = <A, I>(
  topic: Topic.Topic<A, I>,
  event: A,
  names: OutboxTable.Names = {}
): Effect.Effect<string, Fatal | OutboxError, SqlClient.SqlClient> =>
  Effect.flatMap(Topic.encode(topic, event), (record) => publishRecord(record, names))
