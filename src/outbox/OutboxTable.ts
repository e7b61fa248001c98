/**
 * The outbox's schema: the table of events (one row per event, in insertion order), the table of shard
 * leases the relays share the work with, and their indexes. `migrate` creates what is missing (idempotent),
 * for SQLite and PostgreSQL, through whichever `SqlClient` is in context.
 *
 * Rows: `id` (insertion order), `event_id` (UUIDv7, unique, time-ordered: the `eventId` header), the record
 * (`topic`, `record_key`, `value`, `headers` as JSON), `shard` (hash of topic and key: all rows of one key in
 * one shard), `status` (`pending` -> `delivered` | `dead_lettered`), `possible_duplicate`, times in ms.
 *
 * @module
 */
import { Effect } from "effect"
import { SqlClient, type SqlError } from "effect/sql"

/** Table names; every field has a default (`defaults`). */
export interface Names {
  /** The events table. Default `kafka_outbox`. */
  readonly table?: string | undefined
  /** The shard leases table. Default `kafka_outbox_lease`. */
  readonly leaseTable?: string | undefined
}

/** The default table names. */
export const defaults = {
  /** `kafka_outbox`. */
  table: "kafka_outbox",
  /** `kafka_outbox_lease`. */
  leaseTable: "kafka_outbox_lease"
} as const

/** Table names with every field filled in. */
export interface ResolvedNames {
  /** The events table. */
  readonly table: string
  /** The shard leases table. */
  readonly leaseTable: string
}

/** Row statuses. */
export type Status = "pending" | "delivered" | "dead_lettered"

/** The names with defaults filled in. */
export const resolve = (names: Names = {}): ResolvedNames => ({
  table: names.table ?? defaults.table,
  leaseTable: names.leaseTable ?? defaults.leaseTable
})

const checkName = (name: string): string => {
  // table names are spliced into SQL: only plain identifiers
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name)) throw new Error(`invalid outbox table name: ${name}`)
  return name
}

/** Creates the outbox tables and indexes when they do not exist. */
export const migrate = (names: Names = {}): Effect.Effect<void, SqlError.SqlError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const { table, leaseTable } = resolve(names)
    const t = sql(checkName(table))
    const l = sql(checkName(leaseTable))
    const pg = sql.onDialectOrElse({ pg: () => true, orElse: () => false })
    const id = pg ? sql.literal("BIGSERIAL PRIMARY KEY") : sql.literal("INTEGER PRIMARY KEY AUTOINCREMENT")
    const bytes = sql.literal(pg ? "BYTEA" : "BLOB")
    yield* sql`CREATE TABLE IF NOT EXISTS ${t} (
      id ${id},
      event_id TEXT NOT NULL UNIQUE,
      topic TEXT NOT NULL,
      record_key ${bytes},
      value ${bytes},
      headers TEXT NOT NULL,
      shard INTEGER NOT NULL,
      status TEXT NOT NULL DEFAULT 'pending',
      possible_duplicate INTEGER NOT NULL DEFAULT 0,
      created_at BIGINT NOT NULL,
      delivered_at BIGINT,
      error TEXT
    )`.unprepared
    yield* sql`CREATE INDEX IF NOT EXISTS ${sql(`${table}_pending`)} ON ${t} (status, shard, id)`.unprepared
    yield* sql`CREATE INDEX IF NOT EXISTS ${sql(`${table}_settled`)} ON ${t} (status, delivered_at)`.unprepared
    // the relay's claim (pending rows in id order): without it Postgres walks the primary key over every
    // delivered row kept for `retention`, and SQLite sorts all pending rows, on each batch
    yield* sql`CREATE INDEX IF NOT EXISTS ${sql(`${table}_claim`)} ON ${t} (id) WHERE status = 'pending'`.unprepared
    yield* sql`CREATE TABLE IF NOT EXISTS ${l} (
      shard INTEGER PRIMARY KEY,
      owner TEXT NOT NULL,
      expires_at BIGINT NOT NULL
    )`.unprepared
  })

/**
 * The number of shards rows are spread over (by hash of topic and key). Fixed: changing it would move a
 * key to another shard while rows of it are pending, and two relays could then send that key at once.
 */
export const shardCount = 64
