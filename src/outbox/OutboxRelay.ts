/**
 * The relay: reads committed outbox rows in insertion order, publishes them through the `Publisher` in
 * batches (`publishRecords`, the same requests, retries and dead-letter as `publishAll`), and marks each row
 * with what became of it. A scoped layer: the loop runs in the layer's scope and stops with it.
 *
 * Sharing the work: every row has a shard (hash of topic and key, `OutboxTable.shardCount` of them), and a
 * relay only sends rows of shards it holds a lease on (table `kafka_outbox_lease`, renewed by a heartbeat,
 * taken over when it expires). One key, one shard, one relay at a time: order per key holds across relays.
 * Relays rebalance to an equal share of the shards. Row locks with `SKIP LOCKED` alone would let two relays
 * send two rows of one key at once (the second relay skips the first's locked row and takes the next).
 *
 * Failures: a row whose publish failed retriably (the Publisher's retry policy ran out and the dead-letter
 * write failed too, or the circuit breaker is open) stays pending and the relay waits `backoff` before the
 * next batch (exponential, no busy loop while the broker is down). A row the Publisher dead-lettered is
 * `dead_lettered`; a `Fatal` with no dead-letter topic is `failed`; other keys go on either way.
 *
 * Throughput: the loop claims the next batch (the rows after the current one) while it sends a full batch, and
 * marks that batch while it sends the next; one batch is sent and at most one marked at a time, and any other cycle (after a retry, a short batch, a rebalance) first
 * waits for the mark, then claims from the oldest pending row again. `runOnce` marks before it returns.
 *
 * Crash recovery: a relay sends one batch at a time while it marks at most the one before, so the rows a
 * dead relay left unsettled are among the first `2 × batchSize` pending rows of its shards. The relay that takes over an expired lease checks those rows'
 * event ids in their topics (`lookup`, e.g. `topicLookup` over `TopicReader`): found ones are marked
 * delivered and not sent again; the others are sent. Without a `lookup` they are sent with the header
 * `ambiguous: true` and the row's `possible_duplicate` set: a duplicate that cannot be ruled out is marked.
 *
 * @module
 */
import { Context, Duration, Effect, Fiber, Layer, Metric, Queue, Ref, Schedule, type Scope } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { murmur2 } from "../internal/partitioner.ts"
import type { ProducerRecord } from "../Producer.ts"
import { isFatal, type PublishAllFailed } from "../PublishError.ts"
import { Publisher } from "../Publisher.ts"
import type { Receipt } from "../Receipt.ts"
import { decodeHeaders, eventIdHeader } from "./Outbox.ts"
import * as OutboxTable from "./OutboxTable.ts"

/** Finds which of `eventIds` are already in `topic` (their `eventId` header): crash recovery's check. */
export type Lookup = (topic: string, eventIds: ReadonlyArray<string>) => Effect.Effect<ReadonlySet<string>, unknown>

/** How the relay runs; every field has a default (`defaults`). */
export interface Options extends OutboxTable.Names {
  /** Most rows per batch (sent as requests of the Publisher's `batchSize`). Default 2,000. */
  readonly batchSize?: number | undefined
  /** How often it looks for new rows when idle (Postgres NOTIFY wakes it sooner). Default 1 s. */
  readonly pollInterval?: Duration.Input | undefined
  /** First wait after a failed batch; doubles up to `maxBackoff`. Default 200 ms. */
  readonly backoff?: Duration.Input | undefined
  /** Longest wait after failed batches. Default 30 s. */
  readonly maxBackoff?: Duration.Input | undefined
  /** A lease not renewed for this long is taken over (the relay that held it is dead). Default 10 s. */
  readonly leaseTtl?: Duration.Input | undefined
  /** This relay's name in the lease table. Default: a random id per process. */
  readonly owner?: string | undefined
  /** Delivered and dead-lettered rows older than this are deleted. Default 7 days. */
  readonly retention?: Duration.Input | undefined
  /** How often retention runs. Default 1 min. */
  readonly cleanupInterval?: Duration.Input | undefined
  /** Age of the oldest pending row above which `check` says `degraded`. Default 30 s. */
  readonly lagThreshold?: Duration.Input | undefined
  /** Crash recovery's check of the topics; without it, recovered rows are sent marked `ambiguous`. */
  readonly lookup?: Lookup | undefined
}

/** The defaults of `Options`. */
export const defaults = {
  /** 2,000 rows: four requests of the Publisher's 500, so the claim and the mark are shared by more rows. */
  batchSize: 2000,
  /** 1 s. */
  pollInterval: Duration.seconds(1),
  /** 200 ms after the first failed batch. */
  backoff: Duration.millis(200),
  /** 30 s at most between attempts. */
  maxBackoff: Duration.seconds(30),
  /** 10 s. */
  leaseTtl: Duration.seconds(10),
  /** 7 days. */
  retention: Duration.days(7),
  /** 1 min. */
  cleanupInterval: Duration.minutes(1),
  /** 30 s. */
  lagThreshold: Duration.seconds(30)
} as const

/** What `stats` answers. */
export interface Stats {
  /** Rows not relayed yet (all relays). */
  readonly pending: number
  /** Age of the oldest pending row, ms: the lag (0 when none is pending). */
  readonly lagMillis: number
  /** Rows this relay settled as delivered since it started. */
  readonly relayed: number
  /** Rows this relay settled as dead-lettered (or failed) since it started. */
  readonly deadLettered: number
  /** Rows this relay found already in their topic after a takeover (not sent again). */
  readonly recovered: number
  /** Rows this relay sent marked `ambiguous` (a duplicate it could not rule out). */
  readonly markedAmbiguous: number
  /** Shards this relay holds. */
  readonly shards: number
}

/** What `check` answers: `degraded` while the lag is above `lagThreshold`. */
export interface HealthReport extends Stats {
  /** `healthy`, or `degraded` while the lag is above the threshold. */
  readonly status: "healthy" | "degraded"
  /** Why it is degraded, in words; empty when healthy. */
  readonly reasons: ReadonlyArray<string>
}

/** What one cycle did. */
export interface Cycle {
  /** Rows settled (delivered, dead-lettered, failed, or found in the topic). */
  readonly settled: number
  /** Rows whose publish failed retriably: still pending. */
  readonly retrying: number
  /** Whether the batch was full (more rows may be waiting). */
  readonly full: boolean
}

/** The relay service. */
export interface OutboxRelay {
  /** One cycle by hand: leases, one batch, marks (the loop calls it too). */
  readonly runOnce: Effect.Effect<Cycle, SqlError.SqlError>
  /** Pending rows, lag and counters. */
  readonly stats: Effect.Effect<Stats, SqlError.SqlError>
  /** `stats` with a status: `degraded` while the lag is above `lagThreshold`. */
  readonly check: Effect.Effect<HealthReport, SqlError.SqlError>
}

/** The `OutboxRelay` service tag. */
export const OutboxRelay = Context.Service<OutboxRelay>("effect-kafka-publisher/OutboxRelay")

const pendingGauge = Metric.gauge("outbox_pending", { description: "Outbox rows not relayed yet" })
const lagGauge = Metric.gauge("outbox_lag_seconds", { description: "Age of the oldest pending outbox row" })
const relayedCounter = Metric.counter("outbox_relayed_total", {
  description: "Outbox rows relayed to Kafka",
  incremental: true
})

interface Row {
  readonly id: number | string
  readonly event_id: string
  readonly topic: string
  readonly record_key: Uint8Array | null
  readonly value: Uint8Array | null
  readonly headers: string
  readonly shard: number
  readonly possible_duplicate: number | boolean
}

const bytesOf = (value: Uint8Array | null): Uint8Array | null =>
  value === null ? null : value instanceof Buffer ? value : Buffer.from(value)

const toRecord = (row: Row, ambiguous: boolean): ProducerRecord => ({
  topic: row.topic,
  key: bytesOf(row.record_key),
  value: bytesOf(row.value),
  headers: {
    ...decodeHeaders(row.headers),
    [eventIdHeader]: row.event_id,
    ...(ambiguous ? { ambiguous: "true" } : {})
  }
})

/** What became of one row in a batch. */
type Outcome =
  | { readonly _tag: "delivered"; readonly duplicate: boolean }
  | { readonly _tag: "dead_lettered"; readonly duplicate: boolean; readonly error: string }
  | { readonly _tag: "failed"; readonly error: string }
  | { readonly _tag: "retry"; readonly ambiguous: boolean }

const outcomeOfReceipt = (receipt: Receipt, ambiguous: boolean): Outcome =>
  receipt._tag === "Delivered"
    ? { _tag: "delivered", duplicate: ambiguous || receipt.possibleDuplicate }
    : {
        _tag: "dead_lettered",
        duplicate: ambiguous || receipt.possiblyDelivered,
        error: receipt.error.message
      }

const outcomeOfFailure = (error: unknown): Outcome => {
  if (isFatal(error)) return { _tag: "failed", error: error.message }
  const maybe = error as { possiblyDelivered?: unknown; ambiguous?: unknown }
  return { _tag: "retry", ambiguous: maybe.possiblyDelivered === true || maybe.ambiguous === true }
}

const outcomesOf = (
  result: ReadonlyArray<Receipt> | PublishAllFailed,
  ambiguous: ReadonlyArray<boolean>
): Array<Outcome> => {
  if (Array.isArray(result)) return result.map((receipt, i) => outcomeOfReceipt(receipt, ambiguous[i]!))
  const failed = result as PublishAllFailed
  const out: Array<Outcome> = failed.receipts.map((receipt, i) =>
    receipt === undefined ? { _tag: "retry", ambiguous: false } : outcomeOfReceipt(receipt as Receipt, ambiguous[i]!)
  )
  for (const failure of failed.failures) out[failure.index] = outcomeOfFailure(failure.error)
  return out
}

/**
 * A scoped relay over the `SqlClient` and `Publisher` in context; its loop stops with the scope. That scope must
 * close before the `SqlClient`'s (as with `layer`): a loop that outlives the pool fails every query.
 */
export const make = (
  options: Options = {}
): Effect.Effect<OutboxRelay, never, SqlClient.SqlClient | Publisher | Scope.Scope> =>
  Effect.gen(function* () {
    const relay = yield* makeManual(options)
    const pollInterval = Duration.fromInputUnsafe(options.pollInterval ?? defaults.pollInterval)
    const backoff = Duration.toMillis(Duration.fromInputUnsafe(options.backoff ?? defaults.backoff))
    const maxBackoff = Duration.toMillis(Duration.fromInputUnsafe(options.maxBackoff ?? defaults.maxBackoff))
    const wake = yield* wakeQueue(relay.table)
    const failures = yield* Ref.make(0)
    const idle = Effect.raceFirst(Effect.sleep(pollInterval), Effect.asVoid(Queue.take(wake)))
    const step = relay.step.pipe(
      Effect.flatMap((cycle) => {
        if (cycle.retrying > 0) {
          return Effect.flatMap(
            Ref.getAndUpdate(failures, (n) => n + 1),
            (n) => Effect.sleep(Duration.millis(Math.min(maxBackoff, backoff * 2 ** Math.min(n, 20))))
          )
        }
        return Effect.andThen(Ref.set(failures, 0), cycle.full ? Effect.void : idle)
      }),
      // a database error (Postgres restarting): log it and wait like a failed batch, then go on
      Effect.catchCause((cause) =>
        Effect.logWarning("outbox relay cycle failed; retrying", cause).pipe(
          Effect.andThen(Ref.getAndUpdate(failures, (n) => n + 1)),
          Effect.flatMap((n) => Effect.sleep(Duration.millis(Math.min(maxBackoff, backoff * 2 ** Math.min(n, 20)))))
        )
      )
    )
    yield* Effect.forkScoped(Effect.forever(step))
    yield* Effect.forkScoped(relay.heartbeat)
    yield* Effect.forkScoped(relay.cleanup)
    return relay.service
  })

/** The relay as a layer: starts with the layer, stops (after its current batch is interrupted) with it. */
export const layer = (options: Options = {}): Layer.Layer<OutboxRelay, never, SqlClient.SqlClient | Publisher> =>
  Layer.effect(OutboxRelay, make(options))

/**
 * A queue woken by PostgreSQL `NOTIFY` on the table's channel (when the client can `listen`, as
 * `@effect/sql-pg`'s can); on any other store nothing ever arrives and the relay polls.
 */
const wakeQueue = (table: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const wake = yield* Queue.sliding<void>(1)
    const listen = (sql as { listen?: unknown }).listen
    if (typeof listen !== "function") return wake
    const channel = listen.call(sql, table) as Effect.Effect<
      Queue.Dequeue<unknown, SqlError.SqlError>,
      unknown,
      Scope.Scope
    >
    // re-listens when the connection drops (Postgres restarted); the poll covers the gap
    const forward = Effect.scoped(
      Effect.flatMap(channel, (notifications) =>
        Effect.forever(Effect.andThen(Queue.take(notifications), Queue.offer(wake, undefined)))
      )
    ).pipe(
      Effect.catchCause(() => Effect.void),
      Effect.repeat(Schedule.spaced(Duration.seconds(1)))
    )
    yield* Effect.forkScoped(forward)
    return wake
  })

/** A relay without its loops: the service, and the loops for `make` to fork. */
export interface Manual {
  /** The outbox table (its name is the NOTIFY channel). */
  readonly table: string
  /** Renews this relay's leases every third of `leaseTtl`. */
  readonly heartbeat: Effect.Effect<never>
  /** Deletes settled rows past `retention` every `cleanupInterval`. */
  readonly cleanup: Effect.Effect<never>
  /** `runOnce` for the loop: a full batch is marked while the next one is sent (see the module comment). */
  readonly step: Effect.Effect<Cycle, SqlError.SqlError>
  /** The relay; `runOnce` runs one cycle. */
  readonly service: OutboxRelay
}

/** The relay's cycle, heartbeat and cleanup without the loops (tests drive `runOnce` themselves). */
export const makeManual = (
  options: Options = {}
): Effect.Effect<Manual, never, SqlClient.SqlClient | Publisher | Scope.Scope> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const publisher = yield* Publisher
    const { table, leaseTable } = OutboxTable.resolve(options)
    const t = sql(table)
    const l = sql(leaseTable)
    const batchSize = options.batchSize ?? defaults.batchSize
    const leaseTtl = Duration.toMillis(Duration.fromInputUnsafe(options.leaseTtl ?? defaults.leaseTtl))
    const retention = Duration.toMillis(Duration.fromInputUnsafe(options.retention ?? defaults.retention))
    const lagThreshold = Duration.toMillis(Duration.fromInputUnsafe(options.lagThreshold ?? defaults.lagThreshold))
    const cleanupInterval = Duration.fromInputUnsafe(options.cleanupInterval ?? defaults.cleanupInterval)
    const owner = options.owner ?? crypto.randomUUID()
    const memberRow = -1 - (murmur2(Buffer.from(owner, "utf8")) & 0x3fffffff)
    const now = Effect.clockWith((clock) => clock.currentTimeMillis)
    const counters = { relayed: 0, deadLettered: 0, recovered: 0, markedAmbiguous: 0 }
    let mine: ReadonlyArray<number> = []
    const needsRecovery = new Set<number>()

    const renew = Effect.flatMap(now, (at) =>
      sql`UPDATE ${l} SET expires_at = ${at + leaseTtl} WHERE owner = ${owner}`.pipe(Effect.asVoid)
    )

    /** Renews this relay's leases, takes free or expired shards up to an equal share, gives back extras. */
    const balance = Effect.gen(function* () {
      const at = yield* now
      yield* renew
      // a member row (negative shard) makes a relay that holds no shard yet count in everyone's share
      yield* sql`INSERT INTO ${l} (shard, owner, expires_at) VALUES (${memberRow}, ${owner}, ${at + leaseTtl})
        ON CONFLICT (shard) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at`
      const all = yield* sql<{ shard: number; owner: string; expires_at: number | string }>`
        SELECT shard, owner, expires_at FROM ${l}`
      const live = new Set([owner])
      for (const lease of all) if (Number(lease.expires_at) > at) live.add(lease.owner)
      const leases = all.filter((lease) => Number(lease.shard) >= 0)
      const share = Math.ceil(OutboxTable.shardCount / live.size)
      const held = leases.filter((lease) => lease.owner === owner).map((lease) => Number(lease.shard))
      if (held.length > share) {
        const extra = held.slice(share)
        yield* sql`DELETE FROM ${l} WHERE owner = ${owner} AND ${sql.in("shard", extra)}`
      } else if (held.length < share) {
        const byShard = new Map(leases.map((lease) => [Number(lease.shard), lease]))
        let wanted = share - held.length
        for (let shard = 0; shard < OutboxTable.shardCount && wanted > 0; shard++) {
          const lease = byShard.get(shard)
          if (lease !== undefined && (lease.owner === owner || Number(lease.expires_at) > at)) continue
          const taken = yield* sql<{ owner: string }>`
            INSERT INTO ${l} (shard, owner, expires_at) VALUES (${shard}, ${owner}, ${at + leaseTtl})
            ON CONFLICT (shard) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
            WHERE ${l}.expires_at <= ${at}
            RETURNING owner`
          if (taken[0]?.owner !== owner) continue
          wanted--
          // an expired lease of another relay: it died, its last batch may be in flight
          if (lease !== undefined) needsRecovery.add(shard)
        }
      }
      const rows = yield* sql<{ shard: number }>`SELECT shard FROM ${l} WHERE owner = ${owner} AND shard >= 0`
      mine = rows.map((row) => Number(row.shard))
      for (const shard of needsRecovery) if (!mine.includes(shard)) needsRecovery.delete(shard)
      balancedAt = at
    })

    // Balancing costs four or more queries; a cycle needs it only every third of leaseTtl (the heartbeat's
    // cadence): the shards it found stay leased for a whole leaseTtl, so no other relay can take them before.
    let balancedAt = Number.NEGATIVE_INFINITY
    const balanceIfDue = Effect.flatMap(now, (at) => {
      const since = at - balancedAt
      return mine.length > 0 && since >= 0 && since < leaseTtl / 3 ? Effect.void : balance
    })

    /** The oldest pending rows of `shards`, or those after `after` (the next batch while the last is marked). */
    const claim = (shards: ReadonlyArray<number>, limit: number, after?: Row["id"]) =>
      shards.length === 0
        ? Effect.succeed([] as ReadonlyArray<Row>)
        : after === undefined
          ? sql<Row>`SELECT id, event_id, topic, record_key, value, headers, shard, possible_duplicate FROM ${t}
              WHERE status = 'pending' AND ${sql.in("shard", shards)} ORDER BY id LIMIT ${limit}`
          : sql<Row>`SELECT id, event_id, topic, record_key, value, headers, shard, possible_duplicate FROM ${t}
              WHERE status = 'pending' AND ${sql.in("shard", shards)} AND id > ${after} ORDER BY id LIMIT ${limit}`

    /** The rows of `batch` already in their topic (crash recovery), by the `lookup` option. */
    const alreadyInTopic = (batch: ReadonlyArray<Row>): Effect.Effect<ReadonlySet<string> | undefined> => {
      const lookup = options.lookup
      if (lookup === undefined) return Effect.succeed(undefined)
      const byTopic = new Map<string, Array<string>>()
      for (const row of batch) byTopic.set(row.topic, [...(byTopic.get(row.topic) ?? []), row.event_id])
      return Effect.forEach(byTopic, ([topic, ids]) => lookup(topic, ids)).pipe(
        Effect.map((sets) => new Set(sets.flatMap((set) => [...set]))),
        // the check itself failed: fall back to sending them marked
        Effect.catchCause((cause) =>
          Effect.as(Effect.logWarning("outbox recovery lookup failed; resending marked ambiguous", cause), undefined)
        )
      )
    }

    const mark = (rows: ReadonlyArray<Row>, outcomes: ReadonlyArray<Outcome>) =>
      Effect.gen(function* () {
        const at = yield* now
        const groups = new Map<string, { ids: Array<Row["id"]>; status: string; duplicate: boolean; error?: string }>()
        rows.forEach((row, i) => {
          const outcome = outcomes[i]!
          if (outcome._tag === "retry") {
            if (outcome.ambiguous) groups.set(`amb:${row.id}`, { ids: [row.id], status: "pending", duplicate: true })
            return
          }
          const duplicate = outcome._tag === "failed" ? false : outcome.duplicate
          const error = outcome._tag === "delivered" ? undefined : outcome.error
          const key = `${outcome._tag}:${duplicate}:${error ?? ""}`
          const group = groups.get(key) ?? {
            ids: [],
            status: outcome._tag,
            duplicate,
            ...(error === undefined ? {} : { error })
          }
          group.ids.push(row.id)
          groups.set(key, group)
        })
        for (const group of groups.values()) {
          const settled = group.status === "pending" ? null : at
          yield* sql`UPDATE ${t} SET status = ${group.status}, possible_duplicate = ${group.duplicate ? 1 : 0},
            delivered_at = ${settled}, error = ${group.error ?? null} WHERE ${sql.in("id", group.ids)}`
        }
      })

    // Pipelining: while a full batch is sent, the next one (the rows after it) is claimed; once it settled
    // without retries it is marked in the background while that next one is sent. One mark runs at a time,
    // and a claim from the oldest pending row (after a retry, a short batch, a rebalance, an error) first
    // drops the prefetched rows and waits for the mark, so no row is sent twice.
    const scope = yield* Effect.scope
    let marking: Fiber.Fiber<void, SqlError.SqlError> | undefined
    // the next batch: the rows after the last one sent, claimed while that one was being sent
    let cursor:
      | {
          readonly after: Row["id"]
          readonly shards: ReadonlyArray<number>
          readonly rows: Fiber.Fiber<ReadonlyArray<Row>, SqlError.SqlError>
        }
      | undefined
    const dropCursor = Effect.suspend(() => {
      const fiber = cursor?.rows
      cursor = undefined
      return fiber === undefined ? Effect.void : Fiber.interrupt(fiber)
    })
    const settleMarks = Effect.suspend(() => {
      const fiber = marking
      marking = undefined
      return fiber === undefined ? Effect.void : Fiber.join(fiber)
    })

    /** Marks a sent batch (and the rows found in their topic) and counts them. */
    const settle = (sent: ReadonlyArray<Row>, outcomes: ReadonlyArray<Outcome>, found: ReadonlyArray<Row>) =>
      Effect.gen(function* () {
        yield* sql.withTransaction(
          Effect.andThen(
            mark(sent, outcomes),
            mark(
              found,
              found.map(() => ({ _tag: "delivered", duplicate: false }) as const)
            )
          )
        )
        const delivered = outcomes.filter((o) => o._tag === "delivered").length
        counters.relayed += delivered + found.length
        counters.deadLettered += outcomes.filter((o) => o._tag === "dead_lettered" || o._tag === "failed").length
        counters.recovered += found.length
        yield* Metric.update(relayedCounter, delivered + found.length)
      })

    const cycle = (pipelined: boolean): Effect.Effect<Cycle, SqlError.SqlError> =>
      Effect.gen(function* () {
        yield* balanceIfDue
        const recovering = [...needsRecovery]
        const next = recovering.length === 0 && cursor?.shards === mine ? cursor : undefined
        if (next === undefined) {
          yield* dropCursor
          yield* settleMarks
        }
        cursor = undefined
        // a dead relay had up to two batches unsettled: the one being marked and the one being sent
        const limit = recovering.length > 0 ? 2 * batchSize : batchSize
        const rows =
          next === undefined
            ? yield* claim(recovering.length > 0 ? recovering : mine, limit)
            : yield* Fiber.join(next.rows)
        if (rows.length === 0) {
          yield* settleMarks
          needsRecovery.clear()
          return { settled: 0, retrying: 0, full: false }
        }
        const recoveringRows = recovering.length > 0
        const found = recoveringRows ? yield* alreadyInTopic(rows) : new Set<string>()
        const toSend = rows.filter((row) => !found?.has(row.event_id))
        const ambiguous = toSend.map(
          (row) => Boolean(Number(row.possible_duplicate)) || (recoveringRows && found === undefined)
        )
        const full = rows.length === limit
        const prefetch = pipelined && full && !recoveringRows
        const after = rows[rows.length - 1]!.id
        const shards = mine
        if (prefetch) cursor = { after, shards, rows: yield* Effect.forkIn(claim(shards, batchSize, after), scope) }
        const result = yield* publisher
          // a row whose retries ran out stays pending (sent again later), so only Fatal rows are dead-lettered
          .publishRecords(
            toSend.map((row, i) => toRecord(row, ambiguous[i]!)),
            { deadLetterRetriable: false }
          )
          .pipe(Effect.catchTag("PublishAllFailed", (failed) => Effect.succeed(failed)))
        const outcomes = outcomesOf(result as ReadonlyArray<Receipt> | PublishAllFailed, ambiguous)
        counters.markedAmbiguous += ambiguous.filter(Boolean).length
        const retrying = outcomes.filter((o) => o._tag === "retry").length
        const marks = settle(
          toSend,
          outcomes,
          rows.filter((row) => found?.has(row.event_id))
        )
        yield* settleMarks
        if (prefetch && retrying === 0) {
          // uninterruptible: a delivered batch is marked even when the relay stops meanwhile
          marking = yield* Effect.forkIn(marks, scope, { uninterruptible: true })
        } else {
          // a retry: the next cycle starts from the oldest pending row again, not from the prefetched ones
          yield* dropCursor
          yield* marks
        }
        if (recoveringRows && retrying === 0) needsRecovery.clear()
        return { settled: rows.length - retrying, retrying, full: full || recoveringRows }
      }).pipe(Effect.onError(() => dropCursor))

    const stats: Effect.Effect<Stats, SqlError.SqlError> = Effect.gen(function* () {
      const at = yield* now
      const [row] = yield* sql<{ pending: number | string; oldest: number | string | null }>`
        SELECT COUNT(*) AS pending, MIN(created_at) AS oldest FROM ${t} WHERE status = 'pending'`
      const pending = Number(row?.pending ?? 0)
      const lagMillis = row?.oldest === null || row?.oldest === undefined ? 0 : Math.max(0, at - Number(row.oldest))
      yield* Metric.update(pendingGauge, pending)
      yield* Metric.update(lagGauge, lagMillis / 1000)
      return { pending, lagMillis, ...counters, shards: mine.length }
    })

    const check = Effect.map(stats, (s): HealthReport => {
      const degraded = s.lagMillis > lagThreshold
      return {
        ...s,
        status: degraded ? "degraded" : "healthy",
        reasons: degraded ? [`outbox lag ${Math.round(s.lagMillis / 1000)} s is above ${lagThreshold / 1000} s`] : []
      }
    })

    const heartbeat = Effect.forever(
      Effect.andThen(
        Effect.sleep(Duration.millis(leaseTtl / 3)),
        Effect.catchCause(renew, (cause) => Effect.logWarning("outbox lease renewal failed", cause))
      )
    )

    const cleanup = Effect.forever(
      Effect.andThen(
        Effect.sleep(cleanupInterval),
        Effect.flatMap(
          now,
          (at) =>
            sql`DELETE FROM ${t} WHERE status IN ('delivered', 'dead_lettered', 'failed') AND delivered_at < ${at - retention}`
        ).pipe(Effect.catchCause((cause) => Effect.logWarning("outbox retention cleanup failed", cause)))
      )
    )

    // give the shards back at shutdown so another relay takes them at once (no recovery needed)
    yield* Effect.addFinalizer(() => sql`DELETE FROM ${l} WHERE owner = ${owner}`.pipe(Effect.ignore))

    return {
      table,
      heartbeat,
      cleanup,
      step: cycle(true),
      service: OutboxRelay.of({ runOnce: cycle(false), stats, check })
    }
  })
