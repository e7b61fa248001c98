/**
 * Transactional outbox: `npm run example:outbox`.
 *
 * An order service saves each order and its `OrderPlaced` event in one SQL transaction (`Outbox.publish`);
 * the relay sends committed events to Kafka. Shows: a rejected order rolled back (no event), ORDERS orders
 * (default 100) relayed, then a broker outage during which orders keep being accepted and drain afterwards.
 *
 * Embedded by default: SQLite (node:sqlite, in memory) and the in-memory Kafka. DATABASE_URL (postgres://...)
 * for PostgreSQL, KAFKA_BROKERS for a real broker (the outage is then only simulated on the embedded one).
 * ORDERS, TOPIC and LEASE_TTL_MS tune it (tests use them). The last line is the summary as JSON.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { PgClient } from "@effect/sql-pg"
import { Config, Duration, Effect, Layer, Logger, Option, Redacted, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { Publisher, RetryPolicy, Topic } from "effect-kafka-publisher"
import { Outbox, OutboxRelay, OutboxTable, SqliteClient } from "effect-kafka-publisher/outbox"
import { FakeKafka, TopicReader } from "effect-kafka-publisher/testing"
import { brokersFromEnv, producerLayer } from "../shared/broker.ts"

class OrderPlaced extends Schema.Class<OrderPlaced>("OrderPlaced")({
  orderId: Schema.Int,
  customer: Schema.String,
  amount: Schema.Number
}) {}

const topicName = process.env.TOPIC ?? "orders"
const orderPlaced = Topic.make({ name: topicName, schema: OrderPlaced, key: (e) => e.customer })
const count = Number(process.env.ORDERS ?? 100)

class OrderRejected extends Schema.TaggedError<OrderRejected>()("OrderRejected", { reason: Schema.String }) {}

/** Saves the order and its event together: both commit, or neither. */
const placeOrder = (orderId: number, customer: string, amount: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql.withTransaction(
      Effect.gen(function* () {
        yield* sql`INSERT INTO orders ${sql.insert({ id: orderId, customer, amount })}`
        yield* Outbox.publish(orderPlaced, new OrderPlaced({ orderId, customer, amount }))
        // the business rule runs after both writes: a rejection rolls both back
        if (amount <= 0) return yield* new OrderRejected({ reason: `amount ${amount}` })
      })
    )
  })

const waitForDrain = Effect.gen(function* () {
  const relay = yield* OutboxRelay.OutboxRelay
  for (;;) {
    const stats = yield* relay.stats
    if (stats.pending === 0) return stats
    yield* Effect.sleep(Duration.millis(50))
  }
})

/** The event ids in the topic: FakeKafka's records, or read back from the real broker. */
const eventIdsInTopic = Effect.gen(function* () {
  const decoder = new TextDecoder()
  const fake = yield* Effect.serviceOption(FakeKafka.FakeKafka)
  const brokers = yield* brokersFromEnv
  const records = Option.isSome(fake)
    ? yield* fake.value.records(topicName)
    : yield* TopicReader.readAll({ brokers: Option.getOrElse(brokers, () => []), topic: topicName })
  return records.map((record) => decoder.decode(record.headers.eventId))
})

const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const relay = yield* OutboxRelay.OutboxRelay
  const fake = yield* Effect.serviceOption(FakeKafka.FakeKafka)
  const rejected = yield* Effect.exit(placeOrder(1, "alice", -5))
  console.error(`order 1 rejected (${rejected._tag}): rolled back, no event`)
  for (let id = 2; id <= count + 1; id++) yield* placeOrder(id, `customer-${id % 7}`, id * 10)
  yield* waitForDrain
  console.error(`${count} orders relayed`)
  let maxPending = 0
  let degraded = false
  if (Option.isSome(fake)) {
    // the outage: the broker stops answering; orders are still accepted (they only touch the database)
    yield* fake.value.pause
    for (let id = count + 2; id <= 2 * count + 1; id++) yield* placeOrder(id, `customer-${id % 7}`, id * 10)
    yield* Effect.sleep(Duration.millis(300))
    const during = yield* relay.check
    maxPending = during.pending
    degraded = during.status === "degraded"
    console.error(`broker down: ${during.pending} pending, lag ${during.lagMillis} ms, ${during.status}`)
    yield* fake.value.resume
    yield* waitForDrain
    console.error("broker back: drained")
  }
  const accepted = yield* sql<{ id: number }>`SELECT id FROM orders`
  const rows = yield* sql<{ event_id: string; possible_duplicate: number }>`
    SELECT event_id, possible_duplicate FROM kafka_outbox`
  const inTopic = yield* eventIdsInTopic
  const committed = new Set(rows.map((row) => row.event_id))
  const seen = new Set(inTopic)
  console.log(
    JSON.stringify({
      ordersAccepted: accepted.length,
      rejected: accepted.some((row) => Number(row.id) === 1) ? 0 : 1,
      eventsInTopic: inTopic.length,
      lost: [...committed].filter((id) => !seen.has(id)).length,
      phantoms: [...seen].filter((id) => !committed.has(id)).length,
      duplicates: inTopic.length - seen.size,
      pendingDuringOutage: maxPending,
      degradedDuringOutage: degraded
    })
  )
})

/** The error's message with the URL's password taken out, should a driver ever repeat it. */
const redactedMessage = (error: unknown, url: Redacted.Redacted<string>): string => {
  const password = /\/\/[^:/@]+:([^@]*)@/.exec(Redacted.value(url))?.[1]
  const message = String((error as { message?: unknown }).message ?? error)
  return password ? message.split(decodeURIComponent(password)).join("***").split(password).join("***") : message
}

/** PostgreSQL when DATABASE_URL is set, else SQLite in memory. */
const databaseLayer = Layer.unwrap(
  Effect.gen(function* () {
    const url = yield* Config.Redacted("DATABASE_URL").pipe(Config.option)
    if (Option.isSome(url) && Redacted.value(url.value).length > 0) {
      console.error("database: PostgreSQL (DATABASE_URL)")
      // the error names the variable and the server, never the password
      const shown = Redacted.value(url.value).replace(/\/\/([^:/@]+):[^@]*@/, "//$1:***@")
      return PgClient.layer({ url: url.value }).pipe(
        Layer.catch((error) =>
          Layer.effect(
            SqlClient.SqlClient,
            Effect.fail(new Error(`DATABASE_URL (${shown}): cannot connect: ${redactedMessage(error, url.value)}`))
          )
        )
      )
    }
    console.error("database: embedded SQLite (set DATABASE_URL=postgres://... to use PostgreSQL)")
    return SqliteClient.layer()
  })
)

const setup = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* OutboxTable.migrate()
  yield* sql`CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, amount REAL NOT NULL)`
  yield* sql`DELETE FROM orders`
  yield* sql`DELETE FROM kafka_outbox`
})

const relayLayer = OutboxRelay.layer({
  leaseTtl: Duration.millis(Number(process.env.LEASE_TTL_MS ?? 10_000)),
  pollInterval: "100 millis",
  backoff: "100 millis",
  maxBackoff: "1 second",
  lagThreshold: "100 millis"
})
const publisherLayer = Publisher.layer({
  retry: RetryPolicy.make({ initialDelay: "50 millis", maxAttempts: 3 }),
  deliveryTimeout: "10 seconds"
}).pipe(Layer.provideMerge(producerLayer({ topics: { [topicName]: { partitions: 3 } } })))

program.pipe(
  Effect.provide(relayLayer),
  Effect.provide(Layer.effectDiscard(setup)),
  Effect.provide(Layer.mergeAll(publisherLayer, databaseLayer)),
  Effect.provideService(Logger.LogToStderr, true),
  NodeRuntime.runMain
)
