/**
 * `npm run bench:outbox`: the transactional outbox (issue 14.5) against a Kafka broker and a PostgreSQL server
 * started by the test bed, every scenario in one run, OUTBOX_ROUNDS (default 3) interleaved rounds, medians.
 *
 *   publishAll   `Publisher.publishAll` of OUTBOX_EVENTS (default 50,000) events      (the baseline)
 *   relay pg     the same events committed to the outbox on PostgreSQL first (transactions of 100), then
 *                `OutboxRelay.make()` (default options) timed from its start until 0 rows are pending
 *   relay sqlite the same on SQLite (`SqliteClient`, node:sqlite, a file in a temporary directory)
 *   latency      PostgreSQL, a steady 1,000 orders/s for OUTBOX_RATE_SECONDS (default 10, after a 2 s warm-up):
 *                each order one transaction (an `orders` row and its `Outbox.publish`), the relay running
 *
 * Same topic layout (6 partitions, keys k0..k999, 100 B records), driver (kafkajs), Publisher options (defaults)
 * everywhere. Commit-to-Kafka latency is the record's broker timestamp (the topic has
 * `message.timestamp.type=LogAppendTime`: the time the broker appended it, so it is readable from then on, with
 * one replica) minus the time the commit returned to the application, both on this machine's clock: it does
 * not depend on when a consumer happens to fetch. A consumer reads the topic to get those timestamps; its own
 * receive time gives a second figure, "seen by a consumer". Writes bench/results/outbox.{md,json}.
 */
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted, type Scope } from "effect"
import { SqlClient } from "effect/sql"
import { Publisher, Topic } from "effect-kafka-publisher"
import { Outbox, OutboxRelay, OutboxTable, SqliteClient } from "effect-kafka-publisher/outbox"
import * as hdr from "hdr-histogram-js"
import kafkajs from "kafkajs"
import { type KafkaCluster, kafkaVersionFromEnv, startCluster } from "../testbed/KafkaCluster.ts"
import { type Postgres, startPostgres } from "../testbed/postgres.ts"
import { createTopics } from "../testbed/topics.ts"
import { BenchEvent, drivers } from "./shared.ts"

const events = Number(process.env.OUTBOX_EVENTS ?? 50_000)
const rounds = Number(process.env.OUTBOX_ROUNDS ?? 3)
const rateSeconds = Number(process.env.OUTBOX_RATE_SECONDS ?? 10)
const rate = 1_000
const transactionSize = 100
const body = "x".repeat(60) // 100 B records

const log = (line: string) => console.error(`[bench:outbox] ${line}`)
const fmt = (n: number) => n.toLocaleString("en-US")
const now = () => performance.timeOrigin + performance.now()
const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const benchEvents = (total: number) =>
  Array.from({ length: total }, (_, i) => new BenchEvent({ id: i, key: `k${i % 1000}`, body }))

const newTopic = async (cluster: KafkaCluster, label: string, logAppendTime = false) => {
  const name = `bench-outbox-${label}-${Date.now()}`
  const configEntries = logAppendTime ? [{ name: "message.timestamp.type", value: "LogAppendTime" }] : []
  await createTopics(cluster.brokers, [{ topic: name, numPartitions: 6, replicationFactor: 1, configEntries }])
  return Topic.make({ name, schema: BenchEvent, key: (e) => e.key })
}

type Store = "postgres" | "sqlite"
type Stack = SqlClient.SqlClient | Publisher.Publisher

/** The same Publisher (default options, kafkajs driver) for every scenario. */
const publisherLayer = (cluster: KafkaCluster) =>
  Publisher.layer().pipe(Layer.provide(drivers.kafkajs({ brokers: cluster.brokers, clientId: "bench-outbox" })))

const stackOf = (cluster: KafkaCluster, database: Layer.Layer<SqlClient.SqlClient, unknown>) =>
  Layer.mergeAll(database, publisherLayer(cluster))

const pgLayer = (pg: Postgres) => PgClient.layer({ url: Redacted.make(pg.url) })

// the program's scope closes before the layer's, so a relay started in it stops before the pool closes
const run = <A, E>(layer: Layer.Layer<Stack, unknown>, program: Effect.Effect<A, E, Stack | Scope.Scope>) =>
  Effect.runPromise(Effect.provide(Effect.scoped(program), layer) as Effect.Effect<A, unknown>)

/** An empty outbox, migrated (a relay gives its leases back when it stops). */
const reset = Effect.andThen(
  OutboxTable.migrate(),
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DELETE FROM kafka_outbox`)
)

/** The application's own table, empty. */
const ordersTable = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.andThen(
    sql`CREATE TABLE IF NOT EXISTS orders (id BIGINT PRIMARY KEY, customer TEXT NOT NULL, body TEXT NOT NULL)`,
    sql`DELETE FROM orders`
  )
)

const pendingRows = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(sql<{ n: number | string }>`SELECT COUNT(*) AS n FROM kafka_outbox WHERE status = 'pending'`, (rows) =>
    Number(rows[0]!.n)
  )
)

interface Throughput {
  readonly scenario: "publishAll" | `relay ${Store}`
  readonly round: number
  readonly events: number
  readonly seconds: number
  readonly eventsPerSecond: number
  /** Time to commit the events to the outbox first (not part of the figure). */
  readonly commitSeconds?: number
}

const throughput = (scenario: Throughput["scenario"], round: number, ms: number, commitMs?: number): Throughput => ({
  scenario,
  round,
  events,
  seconds: ms / 1000,
  eventsPerSecond: Math.round((events / ms) * 1000),
  ...(commitMs === undefined ? {} : { commitSeconds: commitMs / 1000 })
})

const publishAllRun = async (cluster: KafkaCluster, round: number): Promise<Throughput> => {
  const topic = await newTopic(cluster, "publishall")
  const all = benchEvents(events)
  const ms = await Effect.runPromise(
    Effect.gen(function* () {
      const publisher = yield* Publisher.Publisher
      const started = now()
      yield* publisher.publishAll(topic, all)
      return now() - started
    }).pipe(Effect.scoped, Effect.provide(publisherLayer(cluster)))
  )
  return throughput("publishAll", round, ms)
}

const relayRun = async (
  cluster: KafkaCluster,
  store: Store,
  database: Layer.Layer<SqlClient.SqlClient, unknown>,
  round: number
): Promise<Throughput> => {
  const topic = await newTopic(cluster, `relay-${store}`)
  const all = benchEvents(events)
  const transactions = Array.from({ length: Math.ceil(events / transactionSize) }, (_, t) =>
    all.slice(t * transactionSize, (t + 1) * transactionSize)
  )
  const [commitMs, ms] = await run(
    stackOf(cluster, database),
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* reset
      const committing = now()
      yield* Effect.forEach(
        transactions,
        (batch) => sql.withTransaction(Effect.forEach(batch, (event) => Outbox.publish(topic, event))),
        { concurrency: store === "postgres" ? 8 : 1, discard: true }
      )
      const commitMs = now() - committing
      const started = now()
      yield* OutboxRelay.make()
      while ((yield* pendingRows) > 0) yield* Effect.sleep("20 millis")
      const ms = now() - started
      const [row] = yield* sql<{
        n: number | string
      }>`SELECT COUNT(*) AS n FROM kafka_outbox WHERE status = 'delivered'`
      if (Number(row!.n) !== events) throw new Error(`relay ${store}: ${row!.n} of ${events} rows delivered`)
      return [commitMs, ms] as const
    })
  )
  return throughput(`relay ${store}`, round, ms, commitMs)
}

interface Percentiles {
  readonly p50: number
  readonly p95: number
  readonly p99: number
  readonly max: number
}

interface Latency {
  readonly round: number
  readonly orders: number
  readonly ordersPerSecond: number
  /** Commit returned -> broker append time (LogAppendTime), ms. */
  readonly commitToKafkaMs: Percentiles
  /** Commit returned -> a consumer in this process had the record, ms. */
  readonly commitToConsumerMs: Percentiles
  /** The order's transaction itself (start -> commit returned), ms. */
  readonly transactionMs: Percentiles
}

const histogram = () =>
  hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 })

const percentilesOf = (h: hdr.Histogram): Percentiles => ({
  p50: h.getValueAtPercentile(50) / 1000,
  p95: h.getValueAtPercentile(95) / 1000,
  p99: h.getValueAtPercentile(99) / 1000,
  max: h.maxValue / 1000
})

/** A consumer of the whole topic: per eventId, the broker's append time and when this process had it. */
const startReader = async (cluster: KafkaCluster, topic: string) => {
  const seen = new Map<string, { appended: number; received: number }>()
  const kafka = new kafkajs.Kafka({ clientId: "bench-outbox-reader", brokers: cluster.brokers, logLevel: 0 })
  const consumer = kafka.consumer({ groupId: `bench-outbox-${Date.now()}`, maxWaitTimeInMs: 100 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()))
  await consumer.run({
    eachMessage: async ({ message }) => {
      const id = message.headers?.eventId?.toString()
      if (id !== undefined) seen.set(id, { appended: Number(message.timestamp), received: now() })
    }
  })
  await joined
  return { seen, stop: () => consumer.disconnect() }
}

const latencyRun = async (cluster: KafkaCluster, pg: Postgres, round: number): Promise<Latency> => {
  const topic = await newTopic(cluster, "latency", true)
  const reader = await startReader(cluster, topic.name)
  const committed = new Map<string, number>()
  const transaction = histogram()
  const warmup = 2 * rate
  const total = rateSeconds * rate
  try {
    const ms = await run(
      stackOf(cluster, pgLayer(pg)),
      Effect.gen(function* () {
        yield* reset
        yield* ordersTable
        yield* OutboxRelay.make()
        const context = yield* Effect.context<SqlClient.SqlClient>()
        const placeOrder = (id: number) =>
          Effect.flatMap(SqlClient.SqlClient, (sql) =>
            sql.withTransaction(
              Effect.gen(function* () {
                const event = new BenchEvent({ id, key: `k${id % 1000}`, body })
                yield* sql`INSERT INTO orders ${sql.insert({ id, customer: event.key, body })}`
                return yield* Outbox.publish(topic, event)
              })
            )
          )
        // 10 orders per 10 ms tick, each its own transaction, started on time whether or not earlier ones finished
        const steady = (first: number, count: number, measured: boolean) =>
          Effect.promise(async () => {
            const started = now()
            const pending: Array<Promise<void>> = []
            for (let tick = 0; tick * 10 < count; tick++) {
              const wait = started + tick * 10 - now()
              if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
              for (let j = 0; j < 10; j++) {
                const begun = now()
                pending.push(
                  Effect.runPromiseWith(context)(placeOrder(first + tick * 10 + j)).then((eventId) => {
                    const at = now()
                    if (!measured) return
                    committed.set(eventId, at)
                    transaction.recordValue(Math.max(1, Math.round((at - begun) * 1000)))
                  })
                )
              }
            }
            await Promise.all(pending)
            return now() - started
          })
        yield* steady(0, warmup, false)
        const ms = yield* steady(warmup, total, true)
        while ((yield* pendingRows) > 0) yield* Effect.sleep("20 millis")
        return ms
      })
    )
    const deadline = Date.now() + 30_000
    while ([...committed.keys()].some((id) => !reader.seen.has(id)) && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 100))
    const toKafka = histogram()
    const toConsumer = histogram()
    let missing = 0
    for (const [id, at] of committed) {
      const record = reader.seen.get(id)
      if (record === undefined) {
        missing++
        continue
      }
      // the broker's timestamp is whole ms: a record appended within the commit's own ms can come out below 0
      toKafka.recordValue(Math.max(1, Math.round((record.appended - at) * 1000)))
      toConsumer.recordValue(Math.max(1, Math.round((record.received - at) * 1000)))
    }
    if (missing > 0) throw new Error(`latency: ${missing} committed orders not in the topic after 30 s`)
    return {
      round,
      orders: total,
      ordersPerSecond: Math.round((total / ms) * 1000),
      commitToKafkaMs: percentilesOf(toKafka),
      commitToConsumerMs: percentilesOf(toConsumer),
      transactionMs: percentilesOf(transaction)
    }
  } finally {
    await reader.stop()
  }
}

const main = async () => {
  log(`starting Kafka ${kafkaVersionFromEnv()} and PostgreSQL (test bed) ...`)
  const cluster = await startCluster({ nodes: 1 })
  const pg = await startPostgres()
  const sqliteDir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-outbox-sqlite-"))
  const results: Array<Throughput> = []
  const latencies: Array<Latency> = []
  try {
    log("warm-up: publishAll of 5,000 events, and a consumer group (the broker creates __consumer_offsets)")
    const warmup = await newTopic(cluster, "warmup")
    await Effect.runPromise(
      Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        yield* publisher.publishAll(warmup, benchEvents(5_000))
      }).pipe(Effect.scoped, Effect.provide(publisherLayer(cluster)))
    )
    // the first group makes the broker create its 50 offsets partitions: not during round 1's latency run
    await (await startReader(cluster, warmup.name)).stop()
    const scenarios: Array<(round: number) => Promise<Throughput>> = [
      (round) => publishAllRun(cluster, round),
      (round) => relayRun(cluster, "postgres", pgLayer(pg), round),
      (round) =>
        relayRun(cluster, "sqlite", SqliteClient.layer({ filename: path.join(sqliteDir, `outbox-${round}.db`) }), round)
    ]
    for (let round = 1; round <= rounds; round++) {
      // a different scenario first in each round, so none always runs on a freshly started broker
      for (let k = 0; k < scenarios.length; k++) {
        const r = await scenarios[(round - 1 + k) % scenarios.length]!(round)
        const commit = r.commitSeconds === undefined ? "" : ` (committed first in ${r.commitSeconds.toFixed(1)} s)`
        log(`round ${round}: ${r.scenario}: ${fmt(r.eventsPerSecond)} events/s, ${r.seconds.toFixed(2)} s${commit}`)
        results.push(r)
      }
      const l = await latencyRun(cluster, pg, round)
      log(
        `round ${round}: latency at ${fmt(l.ordersPerSecond)} orders/s: commit-to-Kafka p50 ${l.commitToKafkaMs.p50} / p95 ${l.commitToKafkaMs.p95} / p99 ${l.commitToKafkaMs.p99} ms`
      )
      latencies.push(l)
    }
    write(results, latencies)
  } finally {
    fs.rmSync(sqliteDir, { recursive: true, force: true })
    await pg.stop()
    await cluster.stop()
  }
}

const medianRate = (results: ReadonlyArray<Throughput>, scenario: Throughput["scenario"]) =>
  median(results.filter((r) => r.scenario === scenario).map((r) => r.eventsPerSecond))

const medianOf = (latencies: ReadonlyArray<Latency>, pick: (l: Latency) => number) => median(latencies.map(pick))

const write = (results: ReadonlyArray<Throughput>, latencies: ReadonlyArray<Latency>) => {
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 1073741824)} GiB, Node ${process.version}, Kafka ${kafkaVersionFromEnv()} (1 broker, loopback), PostgreSQL (test bed, fsync off)`
  const base = medianRate(results, "publishAll")
  const scenarios = ["publishAll", "relay postgres", "relay sqlite"] as const
  const rows = scenarios.map((scenario) => {
    const per = results.filter((r) => r.scenario === scenario).map((r) => fmt(r.eventsPerSecond))
    const m = medianRate(results, scenario)
    return `| ${scenario} | ${fmt(events)} | ${per.join(" / ")} | ${fmt(m)} | ${(m / base).toFixed(2)}x |`
  })
  const lat = (pick: (l: Latency) => Percentiles) =>
    `${medianOf(latencies, (l) => pick(l).p50).toFixed(1)} / ${medianOf(latencies, (l) => pick(l).p95).toFixed(1)} / ${medianOf(latencies, (l) => pick(l).p99).toFixed(1)} / ${medianOf(latencies, (l) => pick(l).max).toFixed(1)}`
  const p99 = medianOf(latencies, (l) => l.commitToKafkaMs.p99)
  const goal = (text: string, met: boolean, shown: string) => `| ${text} | ${shown} | ${met ? "met" : "not met"} |`
  const ratio = (scenario: Throughput["scenario"]) => medianRate(results, scenario) / base
  const md = `# Outbox benchmark

Machine: ${machine}. Command: \`npm run bench:outbox\` (${new Date().toISOString()}); OUTBOX_EVENTS=${events}, OUTBOX_ROUNDS=${rounds}, OUTBOX_RATE_SECONDS=${rateSeconds}.
kafkajs driver, Publisher and relay defaults (relay batch ${fmt(OutboxRelay.defaults.batchSize)}, poll 1 s, NOTIFY wake on PostgreSQL), 6 partitions, 1,000 keys, 100 B records, acks=all, idempotence on.

## Relay throughput (events committed first in transactions of ${transactionSize}; relay timed from its start to 0 pending)

| scenario | events | events/s per round | median events/s | vs publishAll |
| --- | --- | --- | --- | --- |
${rows.join("\n")}

## Commit-to-Kafka latency, PostgreSQL, ${fmt(rate)} orders/s for ${rateSeconds} s (each order one transaction: order row + Outbox.publish)

Medians over ${latencies.length} rounds; achieved ${latencies.map((l) => fmt(l.ordersPerSecond)).join(" / ")} orders/s.

| measure | ms p50 / p95 / p99 / max |
| --- | --- |
| commit returned -> broker append (LogAppendTime) | ${lat((l) => l.commitToKafkaMs)} |
| commit returned -> seen by a consumer in this process | ${lat((l) => l.commitToConsumerMs)} |
| the order's transaction itself | ${lat((l) => l.transactionMs)} |

## Goals (issue 14)

| goal | measured | |
| --- | --- | --- |
${goal("relay PostgreSQL -> Kafka >= 0.5x publishAll", ratio("relay postgres") >= 0.5, `${ratio("relay postgres").toFixed(2)}x`)}
${goal("relay SQLite -> Kafka >= 0.5x publishAll", ratio("relay sqlite") >= 0.5, `${ratio("relay sqlite").toFixed(2)}x`)}
${goal("commit-to-Kafka p99 <= 100 ms at 1,000 orders/s on PostgreSQL", p99 <= 100, `${p99.toFixed(1)} ms`)}
`
  fs.mkdirSync("bench/results", { recursive: true })
  fs.writeFileSync("bench/results/outbox.md", md)
  fs.writeFileSync(
    "bench/results/outbox.json",
    `${JSON.stringify({ machine, events, rounds, rateSeconds, results, latencies }, null, 2)}\n`
  )
  console.log(md)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
