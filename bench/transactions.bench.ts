/**
 * `npm run bench:transactions` (also run by `npm run bench`, in a process of its own): Kafka transactions of
 * 1, 10 and 100 records, against the same records without a transaction and against the Java producer's
 * transactional mode, on one broker in one run. Records of 100 B, acks=all, idempotence on, one topic of
 * one partition per scenario and size (so the Java run's transactions can be counted: each writes one
 * commit marker, an offset of its own).
 *
 *   TX  `TransactionalPublisher.transaction(publishAll(n records))`, one transaction after the other
 *       (Kafka allows one open transaction per producer), per driver
 *   NT  `Publisher.publishAll` of the same n records, one call after the other, on the same driver
 *   J   Java `ProducerPerformance --transactional-id ... --transaction-duration-ms 1 --throughput R`: it
 *       commits by time, not by count (the first send at least 1 ms after the transaction began commits it),
 *       so unthrottled its transactions hold whatever it sends in a commit's round trip (tens of records). R
 *       (JAVA_THROUGHPUT, default 200,1000,10000 records/s: n records at 100 transactions/s, at least 2) makes
 *       them hold about n when it keeps up, or more when it cannot: the records per transaction it reached are
 *       measured (offsets written minus records), and its transactions/s are what it managed
 *
 * TX_ROUNDS (default 3) interleaved rounds: each round runs every scenario of every size once; the table shows
 * medians. TX_SECONDS (default 2) per toolkit scenario, JAVA_RECORDS (default 600,3000,30000) per Java run.
 * KAFKA_BROKERS: use that broker (as `npm run bench` does) instead of starting one. Writes
 * bench/results/transactions.{md,json}.
 */
import fs from "node:fs"
import os from "node:os"
import { Effect, Layer } from "effect"
import { Publisher, Topic, TransactionalPublisher } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"
import kafkajs from "kafkajs"
import { partitionOffsets } from "../src/reader/partitionOffsets.ts"
import { kafkaVersionFromEnv, startCluster } from "../testbed/KafkaCluster.ts"
import { createTopics } from "../testbed/topics.ts"
import { producerPerformance } from "./java.ts"
import { BenchEvent } from "./shared.ts"

const sizes = [1, 10, 100] as const
const rounds = Number(process.env.TX_ROUNDS ?? 3)
const seconds = Number(process.env.TX_SECONDS ?? 2)
const list = (value: string | undefined, fallback: ReadonlyArray<number>) =>
  value === undefined ? fallback : value.split(",").map(Number)
const javaThroughputs = list(process.env.JAVA_THROUGHPUT, [200, 1_000, 10_000])
const javaRecords = list(process.env.JAVA_RECORDS, [600, 3_000, 30_000])
const recordSize = 100

const log = (line: string) => console.error(`[bench:transactions] ${line}`)

/** One measured run of a scenario. */
interface Sample {
  readonly scenario: string
  readonly size: number
  readonly round: number
  readonly transactions: number
  readonly records: number
  readonly seconds: number
}

const drivers = {
  platformatic: {
    plain: PlatformaticProducer.layer,
    transactional: PlatformaticProducer.layerTransactional
  },
  kafkajs: {
    plain: KafkaJsProducer.layer,
    transactional: KafkaJsProducer.layerTransactional
  }
} as const

type DriverName = keyof typeof drivers

const eventsOf = (n: number) =>
  Array.from({ length: n }, (_, i) => new BenchEvent({ id: i, key: `k${i}`, body: "x".repeat(recordSize - 40) }))

/** Runs `once` (one transaction or one publishAll) after a warm-up, for `seconds`; counts the calls. */
const timed = <E, R>(once: Effect.Effect<unknown, E, R>) =>
  Effect.gen(function* () {
    for (let i = 0; i < 5; i++) yield* once
    const started = performance.now()
    let calls = 0
    while (performance.now() - started < seconds * 1000) {
      yield* once
      calls++
    }
    return { calls, ms: performance.now() - started }
  })

const toolkit = async (
  brokers: ReadonlyArray<string>,
  topicName: string,
  n: number,
  driver: DriverName,
  transactional: boolean
) => {
  const topic = Topic.make({ name: topicName, schema: BenchEvent, key: (e) => e.key })
  const events = eventsOf(n)
  const config = { brokers, clientId: "bench-transactions" }
  const program = transactional
    ? Effect.gen(function* () {
        const txp = yield* TransactionalPublisher.TransactionalPublisher
        return yield* timed(txp.transaction(Effect.flatMap(Publisher.Publisher, (p) => p.publishAll(topic, events))))
      }).pipe(
        Effect.provide(
          TransactionalPublisher.layer().pipe(
            Layer.provide(drivers[driver].transactional({ ...config, transactionalId: `${topicName}-txn` }))
          )
        )
      )
    : Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        return yield* timed(publisher.publishAll(topic, events))
      }).pipe(Effect.provide(Publisher.layer().pipe(Layer.provide(drivers[driver].plain(config)))))
  const { calls, ms } = await Effect.runPromise(program)
  return { transactions: transactional ? calls : 0, records: calls * n, seconds: ms / 1000 }
}

/** The offset after the last one written in the topic's only partition (commit markers included). */
const highWatermark = async (brokers: ReadonlyArray<string>, topic: string) => {
  const kafka = new kafkajs.Kafka({ clientId: "bench", brokers: [...brokers], logLevel: kafkajs.logLevel.NOTHING })
  const [offsets] = await partitionOffsets(kafka, topic)
  return offsets?.high ?? 0n
}

const java = async (brokers: ReadonlyArray<string>, topic: string, throughput: number, records: number) => {
  const before = await highWatermark(brokers, topic)
  const run = await producerPerformance([
    "--topic",
    topic,
    "--num-records",
    String(records),
    "--record-size",
    String(recordSize),
    "--throughput",
    String(throughput),
    "--transactional-id",
    `${topic}-txn`,
    "--transaction-duration-ms",
    "1",
    "--producer-props",
    `bootstrap.servers=${brokers.join(",")}`,
    "acks=all",
    "enable.idempotence=true",
    "linger.ms=5"
  ])
  await new Promise((resolve) => setTimeout(resolve, 500)) // the last commit marker is written just after the commit
  const markers = Number((await highWatermark(brokers, topic)) - before) - run.records
  // its own clock (from the first send to the last callback): the JVM's start is not counted
  const sending = run.records / run.recordsPerSecond
  return { transactions: markers, records: run.records, seconds: sending }
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const scenarios = [
  { id: "TX platformatic", label: "TX: transaction(publishAll), platformatic driver" },
  { id: "NT platformatic", label: "NT: publishAll, no transaction, platformatic driver" },
  { id: "TX kafkajs", label: "TX: transaction(publishAll), kafkajs driver" },
  { id: "NT kafkajs", label: "NT: publishAll, no transaction, kafkajs driver" },
  { id: "J", label: "J: Java ProducerPerformance, transactional" }
] as const

const runOne = (brokers: ReadonlyArray<string>, id: (typeof scenarios)[number]["id"], topic: string, i: number) => {
  const n = sizes[i]!
  if (id === "J") return java(brokers, topic, javaThroughputs[i]!, javaRecords[i]!)
  const [kind, driver] = id.split(" ") as ["TX" | "NT", DriverName]
  return toolkit(brokers, topic, n, driver, kind === "TX")
}

const main = async () => {
  const given = process.env.KAFKA_BROKERS?.split(",").filter((b) => b.length > 0)
  const cluster = given === undefined || given.length === 0 ? await startCluster({ nodes: 1 }) : undefined
  const brokers = cluster?.brokers ?? given!
  log(`Kafka ${kafkaVersionFromEnv()} at ${brokers.join(",")}; ${rounds} rounds, ${seconds} s per toolkit scenario`)
  try {
    const stamp = Date.now()
    const topicOf = (id: string, n: number) => `bench-tx-${id.replace(" ", "-")}-${n}-${stamp}`
    await createTopics(
      brokers,
      scenarios.flatMap((s) => sizes.map((n) => ({ topic: topicOf(s.id, n), numPartitions: 1, replicationFactor: 1 })))
    )
    const samples: Array<Sample> = []
    for (let round = 1; round <= rounds; round++) {
      for (let i = 0; i < sizes.length; i++) {
        for (const s of scenarios) {
          const n = sizes[i]!
          const began = performance.now()
          const m = await runOne(brokers, s.id, topicOf(s.id, n), i)
          samples.push({ scenario: s.id, size: n, round, ...m })
          log(
            `round ${round}, ${s.id}, n ${n}: ${Math.round(m.records / m.seconds)} records/s, ${Math.round(m.transactions / m.seconds)} transactions/s (${m.records} records, ${m.transactions} transactions; ${Math.round(performance.now() - began)} ms wall)`
          )
        }
      }
    }
    write(samples)
  } finally {
    await cluster?.stop()
  }
}

interface Row {
  readonly scenario: string
  readonly size: number
  readonly recordsPerTransaction: number
  readonly transactionsPerSecond: number
  readonly recordsPerSecond: number
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US")
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`

const write = (samples: ReadonlyArray<Sample>) => {
  const rows: Array<Row> = scenarios.flatMap((s) =>
    sizes.map((size) => {
      const mine = samples.filter((x) => x.scenario === s.id && x.size === size)
      return {
        scenario: s.id,
        size,
        recordsPerTransaction:
          s.id === "J"
            ? median(mine.map((x) => x.records / Math.max(1, x.transactions)))
            : s.id.startsWith("NT")
              ? 0
              : size,
        transactionsPerSecond: median(mine.map((x) => x.transactions / x.seconds)),
        recordsPerSecond: median(mine.map((x) => x.records / x.seconds))
      }
    })
  )
  const row = (id: string, size: number) => rows.find((r) => r.scenario === id && r.size === size)!
  const lines = rows.map((r) => {
    const label = scenarios.find((s) => s.id === r.scenario)!.label
    const driver = r.scenario.split(" ")[1]
    const vsNt = r.scenario.startsWith("TX")
      ? ratio(r.recordsPerSecond, row(`NT ${driver}`, r.size).recordsPerSecond)
      : ""
    const java = row("J", r.size)
    const vsJava = r.scenario.startsWith("TX")
      ? `${ratio(r.transactionsPerSecond, java.transactionsPerSecond)} / ${ratio(r.recordsPerSecond, java.recordsPerSecond)}`
      : ""
    const perTxn = r.scenario.startsWith("NT") ? "-" : r.recordsPerTransaction.toFixed(r.scenario === "J" ? 1 : 0)
    const txns = r.scenario.startsWith("NT") ? "-" : fmt(r.transactionsPerSecond)
    return `| ${label} | ${r.size} | ${perTxn} | ${txns} | ${fmt(r.recordsPerSecond)} | ${vsNt} | ${vsJava} |`
  })
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 1073741824)} GiB, Node ${process.version}, Kafka ${kafkaVersionFromEnv()} (1 broker, loopback)`
  const md = `# Transactions benchmark

Machine: ${machine}. Records of ${recordSize} B, acks=all, idempotence on, one partition per topic. Medians of
${rounds} interleaved rounds (each round runs every row once); toolkit rows run ${seconds} s each, one call after
the other; Java rows ${javaRecords.join(" / ")} records at \`--throughput\` ${javaThroughputs.join(" / ")} and
\`--transaction-duration-ms 1\` (Java commits by time, not by count: the throughput makes its transactions hold
about n records, at least 2; they are measured: offsets written minus records).
Command: \`${process.env.BENCH_COMMAND ?? "npm run bench:transactions"}\` (${new Date().toISOString()}).

| scenario | records per call (n) | records per transaction | transactions/s | records/s | TX vs NT (records/s) | TX vs J (transactions/s / records/s) |
| --- | --- | --- | --- | --- | --- | --- |
${lines.join("\n")}

NT makes no transactions: it is the same \`publishAll\` of n records per call, without one. J's row "n" is
the toolkit size it is compared with; its transactions hold the records per transaction shown.
`
  fs.mkdirSync("bench/results", { recursive: true })
  fs.writeFileSync("bench/results/transactions.md", md)
  fs.writeFileSync(
    "bench/results/transactions.json",
    `${JSON.stringify({ machine, rounds, seconds, javaThroughputs, javaRecords, rows, samples }, null, 2)}\n`
  )
  console.log(md)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
