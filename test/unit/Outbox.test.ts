// The transactional outbox on the embedded store (node:sqlite) and FakeKafka: the write side joins the
// caller's transaction, the relay sends in order, waits while the broker is down, dead-letters poison
// events, shares shards between relays and recovers the in-flight rows of a dead one.
import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Layer, Schema, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import { Publisher, RetryPolicy, Topic } from "effect-kafka-publisher"
import { Outbox, OutboxFallback, OutboxRelay, OutboxTable, SqliteClient } from "effect-kafka-publisher/outbox"
import { FakeKafka } from "effect-kafka-publisher/testing"
import { Retriable } from "../../src/PublishError.ts"

class OrderPlaced extends Schema.Class<OrderPlaced>("OrderPlaced")({
  orderId: Schema.Int.check(Schema.isGreaterThan(0)),
  customer: Schema.String
}) {}

const orders = Topic.make({ name: "orders", schema: OrderPlaced, key: (e) => e.customer })
const placed = (orderId: number, customer = `c${orderId % 3}`) => new OrderPlaced({ orderId, customer })
const down = new Retriable({ reason: "BrokerUnavailable", ambiguous: false, message: "broker down" })
const decoder = new TextDecoder()
const idOf = (value: Uint8Array | null) => (JSON.parse(decoder.decode(value!)) as { orderId: number }).orderId

const noRetry = RetryPolicy.make({ maxAttempts: 1 })

/** SQLite (migrated) + FakeKafka + a Publisher, in a scope the test owns. */
const world = (options: Publisher.Options = { deadLetter: false }) =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const layer = Publisher.layer(options).pipe(
      Layer.provideMerge(FakeKafka.layer({ topics: { orders: { partitions: 3 } } })),
      Layer.provideMerge(SqliteClient.layer())
    )
    const context = yield* Layer.buildWithScope(layer, scope)
    const run = <A, E, R extends SqlClient.SqlClient | Publisher.Publisher | FakeKafka.FakeKafka | Scope.Scope>(
      effect: Effect.Effect<A, E, R>
    ) => Effect.provide(effect, context)
    yield* run(OutboxTable.migrate())
    return {
      context,
      run,
      sql: Context.get(context, SqlClient.SqlClient),
      kafka: Context.get(context, FakeKafka.FakeKafka)
    }
  })

const manualRelay = (options: OutboxRelay.Options = {}) =>
  Effect.flatMap(OutboxRelay.makeManual(options), (relay) => Effect.succeed(relay.service))

const commitOrders = (ids: ReadonlyArray<number>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(Effect.forEach(ids, (id) => Outbox.publish(orders, placed(id))))
  )

describe("Outbox.publish", () => {
  it.effect("writes in the caller's transaction: a rollback leaves no row, a commit one row per event", () =>
    Effect.gen(function* () {
      const { run, sql } = yield* world()
      const rolledBack = yield* run(
        sql.withTransaction(Effect.andThen(Outbox.publish(orders, placed(1)), Effect.fail("order rejected")))
      ).pipe(Effect.exit)
      assert.isTrue(Exit.isFailure(rolledBack))
      const ids = yield* run(commitOrders([2, 3]))
      const rows = yield* sql<{
        event_id: string
        status: string
      }>`SELECT event_id, status FROM kafka_outbox ORDER BY id`
      assert.deepStrictEqual(
        rows.map((row) => row.status),
        ["pending", "pending"]
      )
      assert.deepStrictEqual(
        rows.map((row) => row.event_id),
        ids
      )
      assert.isTrue(ids[0]! < ids[1]!, "UUIDv7 ids sort by creation")
    })
  )

  it.effect("an invalid event is the Publisher's Fatal SchemaInvalid and writes nothing", () =>
    Effect.gen(function* () {
      const { run, sql } = yield* world()
      const invalid = new OrderPlaced({ orderId: -1, customer: "x" }, { disableChecks: true })
      const error = yield* run(sql.withTransaction(Outbox.publish(orders, invalid))).pipe(Effect.flip)
      assert.strictEqual(error._tag, "Fatal")
      assert.strictEqual((error as { reason?: unknown }).reason, "SchemaInvalid")
      const [count] = yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM kafka_outbox`
      assert.strictEqual(Number(count!.n), 0)
    })
  )

  it.effect("outside a transaction: OutboxError NoTransaction, nothing written", () =>
    Effect.gen(function* () {
      const { run, sql } = yield* world()
      const error = yield* run(Outbox.publish(orders, placed(1))).pipe(Effect.flip)
      assert.strictEqual(error._tag, "OutboxError")
      assert.strictEqual((error as Outbox.OutboxError).reason, "NoTransaction")
      const [count] = yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM kafka_outbox`
      assert.strictEqual(Number(count!.n), 0)
    })
  )

  it.effect("a missing table: OutboxError MissingTable naming it", () =>
    Effect.gen(function* () {
      const { run, sql } = yield* world()
      const error = yield* run(sql.withTransaction(Outbox.publish(orders, placed(1), { table: "nowhere" }))).pipe(
        Effect.flip
      )
      assert.strictEqual((error as Outbox.OutboxError).reason, "MissingTable")
      assert.include(error.message, '"nowhere"')
    })
  )
})

describe("OutboxRelay", () => {
  it.effect("relays committed rows in order per key with an eventId header and marks them delivered", () =>
    Effect.gen(function* () {
      const { run, sql, kafka } = yield* world()
      const ids = yield* run(commitOrders([1, 2, 3, 4, 5, 6, 7, 8, 9]))
      const relay = yield* run(manualRelay())
      const cycle = yield* run(relay.runOnce)
      assert.strictEqual(cycle.settled, 9)
      const records = yield* kafka.records("orders")
      assert.strictEqual(records.length, 9)
      assert.sameMembers(
        records.map((record) => decoder.decode(record.headers.eventId)),
        ids
      )
      for (let partition = 0; partition < 3; partition++) {
        const inPartition = (yield* kafka.records("orders", { partition })).map((r) => idOf(r.value))
        assert.deepStrictEqual(
          inPartition,
          [...inPartition].sort((a, b) => a - b),
          `partition ${partition} in order`
        )
      }
      const rows = yield* sql<{ status: string }>`SELECT status FROM kafka_outbox WHERE status <> 'delivered'`
      assert.strictEqual(rows.length, 0)
      const stats = yield* run(relay.stats)
      assert.strictEqual(stats.pending, 0)
      assert.strictEqual(stats.relayed, 9)
    })
  )

  it.effect("broker down: rows stay pending, the loop backs off exponentially (no busy loop), then drains", () =>
    Effect.gen(function* () {
      const { run, kafka } = yield* world({ deadLetter: false, retry: noRetry })
      yield* run(commitOrders([1, 2, 3]))
      yield* kafka.failNext(1000, down)
      const relay = yield* run(
        OutboxRelay.make({ backoff: Duration.millis(100), maxBackoff: Duration.seconds(2), lagThreshold: "1 second" })
      )
      yield* TestClock.adjust(Duration.seconds(10))
      const sendsWhileDown = yield* kafka.sendCount
      // 0, 100, 200, 400, 800, 1600 ms then every 2 s: a handful in 10 s, not thousands
      assert.isAtMost(sendsWhileDown, 40, `sends while down: ${sendsWhileDown}`)
      assert.isAtLeast(sendsWhileDown, 3)
      const during = yield* run(relay.check)
      assert.strictEqual(during.pending, 3)
      assert.strictEqual(during.status, "degraded")
      yield* kafka.reset
      yield* kafka.createTopic("orders", { partitions: 3 })
      yield* TestClock.adjust(Duration.seconds(3))
      assert.strictEqual((yield* kafka.records("orders")).length, 3)
      const after = yield* run(relay.check)
      assert.strictEqual(after.pending, 0)
      assert.strictEqual(after.status, "healthy")
    })
  )

  // Regression: the relay let the Publisher dead-letter rows whose retries ran out, so an outage longer than
  // the delivery timeout left rows marked dead_lettered whose records were in the topic as well.
  it.effect(
    "retries run out (answers lost): the rows stay pending and are sent again marked, never dead-lettered",
    () =>
      Effect.gen(function* () {
        const { run, sql, kafka } = yield* world({ retry: noRetry })
        yield* run(commitOrders([1, 2, 3]))
        yield* kafka.loseNextAnswers(1)
        const relay = yield* run(manualRelay())
        const first = yield* run(relay.runOnce)
        assert.strictEqual(first.retrying, 3)
        const pending = yield* sql<{ status: string; possible_duplicate: number }>`
        SELECT status, possible_duplicate FROM kafka_outbox ORDER BY id`
        assert.deepStrictEqual(
          pending.map((row) => [row.status, Number(row.possible_duplicate)]),
          [
            ["pending", 1],
            ["pending", 1],
            ["pending", 1]
          ]
        )
        yield* run(relay.runOnce)
        assert.deepStrictEqual(yield* kafka.records("orders.dlt"), [])
        const records = yield* kafka.records("orders")
        // the lost answers' writes, then the resends, each resend marked
        assert.strictEqual(records.length, 6)
        assert.strictEqual(records.filter((r) => r.headers.ambiguous !== undefined).length, 3)
        const rows = yield* sql<{ status: string }>`SELECT status FROM kafka_outbox`
        assert.deepStrictEqual(
          rows.map((row) => row.status),
          ["delivered", "delivered", "delivered"]
        )
      })
  )

  // The loop's step marks a full batch in the background while it sends the next (the rows after it); a
  // batch with retries, a short batch and a stop all wait for the marks, so no row is sent twice.
  it.effect("the loop's pipelined step: each row sent once and marked, across a retry and a stop", () =>
    Effect.gen(function* () {
      const { run, sql, kafka } = yield* world({ retry: noRetry })
      yield* run(commitOrders(Array.from({ length: 35 }, (_, i) => i + 1)))
      const relayScope = yield* Scope.make()
      const relay = yield* run(OutboxRelay.makeManual({ batchSize: 10 })).pipe(Scope.provide(relayScope))
      assert.strictEqual((yield* run(relay.step)).settled, 10)
      assert.strictEqual((yield* run(relay.step)).settled, 10) // rows 11-20, sent while 1-10 were marked
      yield* kafka.loseNextAnswers(1)
      assert.strictEqual((yield* run(relay.step)).retrying, 10) // 21-30 written, answers lost: pending, marked
      assert.strictEqual((yield* run(relay.step)).settled, 10) // from the oldest pending row again: 21-30
      assert.strictEqual((yield* run(relay.step)).settled, 5) // 31-35, a short batch: marked before it returns
      yield* Scope.close(relayScope, Exit.void)
      const records = yield* kafka.records("orders")
      const sent = records.map((r) => idOf(r.value))
      assert.strictEqual(sent.length, 45, "35 rows, the 10 whose answers were lost sent twice")
      assert.deepStrictEqual(
        [...new Set(sent)].sort((a, b) => a - b),
        Array.from({ length: 35 }, (_, i) => i + 1)
      )
      assert.strictEqual(records.filter((r) => r.headers.ambiguous !== undefined).length, 10)
      const rows = yield* sql<{ status: string; n: number }>`
        SELECT status, COUNT(*) AS n FROM kafka_outbox GROUP BY status`
      assert.deepStrictEqual(
        rows.map((row) => [row.status, Number(row.n)]),
        [["delivered", 35]]
      )
    })
  )

  it.effect("a relay stopped while it marks a batch in the background still marks it", () =>
    Effect.gen(function* () {
      const { run, sql, kafka } = yield* world()
      yield* run(commitOrders(Array.from({ length: 20 }, (_, i) => i + 1)))
      const relayScope = yield* Scope.make()
      const relay = yield* run(OutboxRelay.makeManual({ batchSize: 10 })).pipe(Scope.provide(relayScope))
      yield* run(relay.step)
      yield* Scope.close(relayScope, Exit.void)
      assert.strictEqual((yield* kafka.records("orders")).length, 10)
      const rows = yield* sql<{ status: string }>`SELECT status FROM kafka_outbox ORDER BY id`
      assert.deepStrictEqual(
        rows.map((row) => row.status),
        [...Array(10).fill("delivered"), ...Array(10).fill("pending")]
      )
    })
  )

  it.effect("a poison (oversize) event is dead-lettered and the row says so; the other rows go on", () =>
    Effect.gen(function* () {
      const { run, sql, kafka } = yield* world({ retry: noRetry })
      yield* kafka.createTopic("small", { partitions: 1, maxMessageBytes: 200 })
      const small = Topic.make({ name: "small", schema: Schema.String, key: () => "k" })
      yield* run(
        sql.withTransaction(
          Effect.all([Outbox.publish(small, "a"), Outbox.publish(small, "x".repeat(500)), Outbox.publish(small, "b")])
        )
      )
      const relay = yield* run(manualRelay())
      yield* run(relay.runOnce)
      const rows = yield* sql<{ status: string }>`SELECT status FROM kafka_outbox ORDER BY id`
      assert.deepStrictEqual(
        rows.map((row) => row.status),
        ["delivered", "dead_lettered", "delivered"]
      )
      const dlt = yield* kafka.records("small.dlt")
      assert.strictEqual(dlt.length, 1)
      assert.isDefined(dlt[0]!.headers.eventId, "the dead-lettered record keeps its eventId")
      assert.deepStrictEqual(
        (yield* kafka.records("small")).map((r) => JSON.parse(decoder.decode(r.value!))),
        ["a", "b"]
      )
    })
  )

  it.effect("two relays split the shards; together they send each row once", () =>
    Effect.gen(function* () {
      const { run, kafka } = yield* world()
      yield* run(commitOrders(Array.from({ length: 60 }, (_, i) => i + 1)))
      const a = yield* run(manualRelay({ owner: "a" }))
      const b = yield* run(manualRelay({ owner: "b" }))
      // a relay balances its shards once per third of leaseTtl (10 s), not on every cycle
      const nextBalance = TestClock.adjust("4 seconds")
      yield* run(a.runOnce) // a takes every shard (alone)
      yield* run(b.runOnce) // b sees a live, takes nothing yet: a holds all
      yield* run(a.runOnce) // not due yet: a keeps all
      assert.strictEqual((yield* run(a.stats)).shards, OutboxTable.shardCount)
      yield* nextBalance
      yield* run(a.runOnce) // a gives back half
      yield* run(commitOrders(Array.from({ length: 60 }, (_, i) => i + 61)))
      yield* run(b.runOnce)
      yield* nextBalance
      yield* run(a.runOnce)
      const sa = yield* run(a.stats)
      const sb = yield* run(b.stats)
      assert.strictEqual(sa.shards + sb.shards, OutboxTable.shardCount)
      assert.isAbove(sb.shards, 0)
      const values = (yield* kafka.records("orders")).map((r) => idOf(r.value))
      assert.strictEqual(values.length, 120)
      assert.strictEqual(new Set(values).size, 120)
    })
  )

  it.effect("takeover after a crash: rows already in the topic are not sent again; unknown ones are marked", () =>
    Effect.gen(function* () {
      const { run, sql, kafka } = yield* world()
      const ids = yield* run(commitOrders([1, 2, 3, 4]))
      // the dead relay: it held every shard and wrote rows 1 and 2, then died before marking them
      const deadScope = yield* Scope.make()
      const dead = yield* run(OutboxRelay.makeManual({ owner: "dead", leaseTtl: "5 seconds" })).pipe(
        Scope.provide(deadScope)
      )
      yield* run(dead.service.runOnce)
      yield* sql`UPDATE kafka_outbox SET status = 'pending', delivered_at = NULL WHERE event_id IN (${ids[0]!}, ${ids[1]!})`
      const inTopic = new Set(
        (yield* kafka.records("orders"))
          .map((r) => decoder.decode(r.headers.eventId))
          .filter((id) => id === ids[0] || id === ids[1])
      )
      yield* sql`DELETE FROM kafka_outbox WHERE event_id IN (${ids[2]!}, ${ids[3]!})`
      yield* kafka.reset
      yield* kafka.createTopic("orders", { partitions: 3 })
      yield* TestClock.adjust(Duration.seconds(6)) // its lease expires
      const lookups: Array<string> = []
      const heir = yield* run(
        manualRelay({
          owner: "heir",
          lookup: (_topic, eventIds) =>
            Effect.sync(() => {
              lookups.push(...eventIds)
              return new Set(eventIds.filter((id) => id === ids[0]))
            })
        })
      )
      yield* run(heir.runOnce)
      assert.sameMembers(lookups, [ids[0]!, ids[1]!])
      assert.strictEqual(inTopic.size, 2)
      const resent = yield* kafka.records("orders")
      assert.deepStrictEqual(
        resent.map((r) => decoder.decode(r.headers.eventId)),
        [ids[1]!],
        "only the row not found in the topic is sent again"
      )
      const stats = yield* run(heir.stats)
      assert.strictEqual(stats.recovered, 1)
      // without a lookup the resend is marked
      yield* sql`UPDATE kafka_outbox SET status = 'pending' WHERE event_id = ${ids[1]!}`
      yield* sql`UPDATE kafka_outbox_lease SET owner = 'dead2', expires_at = 0`
      const blind = yield* run(manualRelay({ owner: "blind" }))
      yield* run(blind.runOnce)
      const last = (yield* kafka.records("orders")).at(-1)!
      assert.strictEqual(decoder.decode(last.headers.ambiguous), "true")
      const [row] = yield* sql<{
        possible_duplicate: number
      }>`SELECT possible_duplicate FROM kafka_outbox WHERE event_id = ${ids[1]!}`
      assert.strictEqual(Number(row!.possible_duplicate), 1)
    })
  )

  it.effect("retention deletes settled rows older than the retention, never pending ones", () =>
    Effect.gen(function* () {
      const { run, sql, kafka } = yield* world()
      yield* run(commitOrders([1, 2]))
      yield* kafka.failNext(1000, down)
      yield* run(OutboxRelay.make({ retention: "1 hour", cleanupInterval: "1 minute", pollInterval: "1 second" }))
      yield* TestClock.adjust(Duration.minutes(2))
      assert.strictEqual((yield* sql`SELECT id FROM kafka_outbox`).length, 2, "pending rows stay")
      yield* kafka.reset
      yield* TestClock.adjust(Duration.minutes(1))
      const delivered = yield* sql`SELECT id FROM kafka_outbox WHERE status = 'delivered'`
      assert.strictEqual(delivered.length, 2)
      yield* TestClock.adjust(Duration.minutes(62))
      assert.strictEqual((yield* sql`SELECT id FROM kafka_outbox`).length, 0, "delivered rows deleted after retention")
    })
  )
})

describe("OutboxFallback", () => {
  it.effect("broker down, dead-letter write failing too: Outboxed, the row pending; the relay sends it later", () =>
    Effect.gen(function* () {
      const { run, sql, kafka } = yield* world({ retry: noRetry })
      yield* kafka.failNext(2, down) // the publish and its dead-letter write
      const receipt = yield* run(OutboxFallback.publish(orders, placed(7)))
      assert.strictEqual(receipt._tag, "Outboxed")
      const outboxed = receipt as OutboxFallback.Outboxed
      assert.strictEqual(outboxed.error._tag, "DeadLetterFailed")
      assert.strictEqual(outboxed.table, "kafka_outbox")
      const rows = yield* sql<{ event_id: string; status: string }>`SELECT event_id, status FROM kafka_outbox`
      assert.deepStrictEqual(rows, [{ event_id: outboxed.eventId, status: "pending" }])
      assert.deepStrictEqual(yield* kafka.records("orders"), [])
      const relay = yield* run(manualRelay())
      yield* run(relay.runOnce)
      const sent = yield* kafka.records("orders")
      assert.deepStrictEqual(
        sent.map((r) => [idOf(r.value), decoder.decode(r.headers.eventId)]),
        [[7, outboxed.eventId]]
      )
    })
  )

  it.effect("a delivered or invalid event is answered as Publisher.publish answers it; nothing stored", () =>
    Effect.gen(function* () {
      const { run, sql } = yield* world({ retry: noRetry })
      const receipt = yield* run(OutboxFallback.publish(orders, placed(1)))
      assert.strictEqual(receipt._tag, "Delivered")
      const invalid = new OrderPlaced({ orderId: -1, customer: "x" }, { disableChecks: true })
      const error = yield* Effect.flip(run(OutboxFallback.publish(orders, invalid)))
      assert.strictEqual(error._tag, "Fatal")
      assert.strictEqual((yield* sql`SELECT id FROM kafka_outbox`).length, 0)
    })
  )

  it.effect("the outbox write failing as well: the caller gets the original DeadLetterFailed", () =>
    Effect.gen(function* () {
      const { run, sql, kafka } = yield* world({ retry: noRetry })
      yield* sql`DROP TABLE kafka_outbox`
      yield* kafka.failNext(2, down)
      const error = yield* Effect.flip(run(OutboxFallback.publish(orders, placed(7))))
      assert.strictEqual(error._tag, "DeadLetterFailed")
    })
  )
})
