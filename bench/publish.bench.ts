/**
 * `npm run bench`: publishing throughput against a real broker started by the test bed, every figure a ratio
 * to baselines measured in the same run (issue 13). acks=all, idempotence on, 6 partitions, 100 B and 1 KiB.
 * The scenarios and their ids are in bench/scenarios.ts and bench/report.ts's legend; in short, per size:
 * Java ProducerPerformance (J), raw kafkajs / raw @platformatic/kafka on pre-built batches (RK / RP), the toolkit's
 * drivers on the same batches (DK / DP), `publish` per event + Batcher from CALLERS callers (EK / EP),
 * `publishAll` in chunks of 10,000 (AK / AP) and in one call (A1K / A1P), the stream sink (SK / SP). Then, with
 * the broker's advertised listener behind toxiproxy, the same without and with 2 ms added each way (100 B,
 * platformatic): per-event and `publishAll` over a Batcher with 1 and 5 batches in flight, and Java.
 *
 * BENCH_ROUNDS rounds (default 3), each running every scenario once (interleaved); the report shows medians and
 * spreads. Then, each in a process of its own: a steady 1,000 events/s (bench/latency.bench.ts), the memory run
 * (bench/memory.bench.ts), the cold import time (bench/import.bench.ts), and last the transactions benchmark
 * (bench/transactions.bench.ts, skipped by BENCH_TRANSACTIONS=0). Writes bench/results/latest.{md,json,png}.
 *
 * `npm run bench -- --report-only` rewrites latest.md and latest.png from latest.json. BENCH_ONLY=<ids>: only those scenarios, without the own-process runs. BENCH_QUICK=1: a smoke run (1 round, small counts, no transactions). EVENTS (per-event scenarios, default
 * 50,000), BATCH_EVENTS (batch, publishAll and sink scenarios, default 50,000), BENCH_JAVA_RECORDS (default 500,000),
 * LATENCY_EVENTS (toolkit scenarios behind the proxy, default 20,000), CALLERS (default 1,000), BENCH_ROUNDS, RATE_SECONDS (default 10), MEMORY_EVENTS (default 1,000,000) and
 * KAFKA_VERSION tune it.
 */
import { execFile } from "node:child_process"
import fs from "node:fs"
import os from "node:os"
import { promisify } from "node:util"
import { Batcher } from "effect-kafka-publisher"
import { type KafkaCluster, kafkaVersionFromEnv, startCluster } from "../testbed/KafkaCluster.ts"
import { createTopics } from "../testbed/topics.ts"
import { toxiproxyProblem } from "../testbed/toxiproxy.ts"
import {
  type BenchResults,
  type MemoryResult,
  type RateResult,
  rates,
  type ScenarioInfo,
  type ScenarioRuns,
  writeResults
} from "./report.ts"
import * as S from "./scenarios.ts"
import type { DriverName } from "./shared.ts"

const execFileAsync = promisify(execFile)
const quick = process.env.BENCH_QUICK === "1"
const setting = (name: string, full: number, smoke: number) => Number(process.env[name] ?? (quick ? smoke : full))
const rounds = setting("BENCH_ROUNDS", 3, 1)
const events = setting("EVENTS", 50_000, 5_000)
const batchEvents = setting("BATCH_EVENTS", 50_000, 10_000)
const javaRecords = setting("BENCH_JAVA_RECORDS", 500_000, 50_000)
const callers = setting("CALLERS", 1_000, 1_000)
const rateSeconds = setting("RATE_SECONDS", 10, 3)
const memoryEvents = setting("MEMORY_EVENTS", 1_000_000, 100_000)
const latencyEvents = setting("LATENCY_EVENTS", 20_000, 5_000)
/** BENCH_ONLY=J,DP,...: only these scenario ids, and none of the own-process runs (for a look at a few). */
const only = process.env.BENCH_ONLY?.split(",")
const extras = only === undefined
const transactions = extras && !quick && process.env.BENCH_TRANSACTIONS !== "0"
const chunk = 10_000
const warmUpRecords = 5_000
const sizes = [100, 1024] as const
const latencyMs = 2

const t0 = performance.now()
const log = (line: string) => console.error(`[bench ${((performance.now() - t0) / 1000).toFixed(0)} s] ${line}`)
const fmt = (n: number) => Math.round(n).toLocaleString("en-US")

/** A scenario of the run: what it is, where it publishes, how many records, how it runs. */
interface Planned extends ScenarioRuns {
  readonly records: number
  readonly via: "direct" | "proxy"
  /** With 2 ms added each way (the proxy's toxics on), else without. */
  readonly slow: boolean
  readonly run: (t: S.Target) => Promise<S.Measured>
  topic: string
}

const plan = (
  info: Omit<ScenarioInfo, "section">,
  records: number,
  run: Planned["run"],
  where: { via: Planned["via"]; slow: boolean } = { via: "direct", slow: false }
): Planned => ({
  ...info,
  section: where.via === "direct" ? "loopback" : "latency",
  records,
  ...where,
  run,
  runs: [],
  topic: ""
})

const drivers = [
  ["K", "kafkajs"],
  ["P", "platformatic"]
] as const satisfies ReadonlyArray<readonly [string, DriverName]>

const loopback = (size: number): Array<Planned> => [
  plan({ id: "J", name: "Java ProducerPerformance, linger 5 ms", size, against: [] }, javaRecords, S.java),
  plan({ id: "RK", name: "raw kafkajs, batches of 500", size, against: ["J"] }, batchEvents, S.rawKafkajs),
  plan(
    { id: "RP", name: "raw @platformatic/kafka, batches of 500", size, against: ["J"] },
    batchEvents,
    S.rawPlatformatic
  ),
  ...drivers.flatMap(([d, driver]) => {
    const name = (what: string) => `${what}, ${driver} driver`
    const onDriver = { driver }
    return [
      plan(
        { id: `D${d}`, name: name("toolkit driver, same batches"), size, against: [`R${d}`, "J"] },
        batchEvents,
        S.driverBatches(driver)
      ),
      plan(
        { id: `E${d}`, name: name(`publish per event + Batcher, ${fmt(callers)} callers`), size, against: ["J"] },
        events,
        S.perEvent({ driver, batcher: { maxInFlightBatches: Batcher.defaults.maxInFlightBatches } }, callers)
      ),
      plan(
        { id: `A${d}`, name: name(`publishAll, chunks of ${fmt(chunk)}`), size, against: [`D${d}`, "J"] },
        batchEvents,
        S.publishAll(onDriver, chunk)
      ),
      plan(
        { id: `A1${d}`, name: name("publishAll, one call"), size, against: [`D${d}`, "J"] },
        batchEvents,
        S.publishAll(onDriver, batchEvents)
      ),
      plan({ id: `S${d}`, name: name("stream sink"), size, against: [`D${d}`, "J"] }, batchEvents, S.sink(onDriver))
    ]
  })
]

const withLatency = (slow: boolean): Array<Planned> => {
  const at = slow ? `@${latencyMs}ms` : "@0ms"
  const where = { via: "proxy" as const, slow }
  const against = (id: string) => (slow ? [`${id}@0ms`, `J${at}`] : [`J${at}`])
  const batcher = (n: number) => ({ driver: "platformatic" as const, batcher: { maxInFlightBatches: n } })
  return [
    plan(
      { id: `J${at}`, name: "Java ProducerPerformance, linger 5 ms", size: 100, against: slow ? ["J@0ms"] : [] },
      javaRecords,
      S.java,
      where
    ),
    ...[1, 5].flatMap((n) => [
      plan(
        {
          id: `EB${n}${at}`,
          name: `publish per event + Batcher (${n} in flight), ${fmt(callers)} callers`,
          size: 100,
          against: against(`EB${n}`)
        },
        latencyEvents,
        S.perEvent(batcher(n), callers),
        where
      ),
      plan(
        {
          id: `AB${n}${at}`,
          name: `publishAll, chunks of ${fmt(chunk)}, + Batcher (${n} in flight)`,
          size: 100,
          against: against(`AB${n}`)
        },
        latencyEvents,
        S.publishAll(batcher(n), chunk),
        where
      )
    ])
  ]
}

/** A bench/*.bench.ts in a fresh Node process; its last stdout line is JSON. */
const ownProcess = async <A>(file: string, env: Record<string, string>): Promise<A> => {
  const { stdout } = await execFileAsync(process.execPath, [...process.execArgv, file], {
    env: { ...process.env, ...env },
    maxBuffer: 16 * 1024 * 1024
  })
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as A
}

const newTopic = async (cluster: KafkaCluster, label: string) => {
  const topic = `bench-${label.replace(/[^a-zA-Z0-9]/g, "-")}-${Date.now()}`
  await createTopics(cluster.brokers, [{ topic, numPartitions: 6, replicationFactor: 1 }])
  return topic
}

const importTable = async () => {
  log("cold import time (npm run build, then fresh processes) ...")
  const { stdout } = await execFileAsync(process.execPath, ["bench/import.bench.ts", "--samples", "5"], {
    maxBuffer: 16 * 1024 * 1024
  })
  return stdout.slice(stdout.indexOf("cold import"))
}

const main = async () => {
  const started = performance.now()
  const latencyProblem = toxiproxyProblem()
  if (latencyProblem !== undefined) log(`no latency section: ${latencyProblem}`)
  log(`starting Kafka ${kafkaVersionFromEnv()} (test bed${latencyProblem === undefined ? ", toxiproxy" : ""}) ...`)
  const cluster = await startCluster({ nodes: 1, proxy: latencyProblem === undefined })
  const scenarios: Array<Planned> = [
    ...sizes.flatMap(loopback),
    ...(latencyProblem === undefined ? [...withLatency(false), ...withLatency(true)] : [])
  ].filter((s) => only === undefined || only.includes(s.id))
  const rate: Array<RateResult> = []
  const memory: Array<MemoryResult> = []
  try {
    for (const s of scenarios) s.topic = await newTopic(cluster, `${s.id}-${s.size}`)
    const proxy = cluster.proxies?.get(1)?.client
    let slow = false
    const setLatency = async (on: boolean) => {
      if (proxy === undefined || on === slow) return
      if (on) {
        await proxy.latency({ latencyMs, direction: "upstream" })
        await proxy.latency({ latencyMs, direction: "downstream" })
      } else await proxy.clear()
      slow = on
    }
    const runOnce = async (s: Planned, records: number) => {
      await setLatency(s.slow)
      const brokers = s.via === "proxy" ? cluster.proxyBrokers! : cluster.brokers
      return s.run({ brokers, topic: s.topic, size: s.size, records })
    }
    // one small uncounted pass of the Node scenarios first: JIT, broker caches (Java is its own process every time)
    for (const s of scenarios.filter((s) => !s.id.startsWith("J"))) {
      await runOnce(s, Math.min(s.records, warmUpRecords))
    }
    log("warm-up pass done")
    const probe = scenarios.find((s) => s.via === "proxy")
    const roundTripMs: Record<string, number> = {}
    if (probe !== undefined)
      for (const on of [false, true]) {
        await setLatency(on)
        roundTripMs[on ? `${latencyMs}ms` : "0ms"] = await S.probeRoundTrip(cluster.proxyBrokers!, probe.topic)
      }
    log(`one-record send through the proxy, median: ${JSON.stringify(roundTripMs)}`)
    for (let round = 1; round <= rounds; round++) {
      for (const s of scenarios) {
        const m = await runOnce(s, s.records)
        s.runs.push(m)
        log(
          `round ${round}/${rounds} ${s.id} (${s.size} B) ${s.name}: ${fmt(m.recordsPerSecond)} records/s, p99 ${m.latencyMs.p99.toFixed(1)} ms`
        )
      }
    }
    await setLatency(false)
    for (const driver of extras ? (["kafkajs", "platformatic"] as const) : []) {
      log(`${rateSeconds} s at 1,000 events/s, ${driver} driver, own process ...`)
      rate.push(
        await ownProcess<RateResult>("bench/latency.bench.ts", {
          KAFKA_BROKERS: cluster.bootstrap,
          LATENCY_TOPIC: await newTopic(cluster, `rate-${driver}`),
          LATENCY_DRIVER: driver,
          RATE_SECONDS: String(rateSeconds)
        })
      )
    }
    // 10,000 in flight fills the Batcher's queue (maxQueued)
    for (const driver of extras ? (["kafkajs", "platformatic"] as const) : []) {
      log(`memory: ${fmt(memoryEvents)} events, 10,000 in flight, ${driver} driver, own process ...`)
      const m = await ownProcess<MemoryResult>("bench/memory.bench.ts", {
        KAFKA_BROKERS: cluster.bootstrap,
        MEMORY_TOPIC: await newTopic(cluster, `memory-${driver}`),
        MEMORY_DRIVER: driver,
        MEMORY_EVENTS: String(memoryEvents),
        MEMORY_CONCURRENCY: "10000"
      })
      log(`memory (${driver}): peak RSS ${m.peakRssMb} MB, ${m.seconds.toFixed(1)} s`)
      memory.push(m)
    }
    const results: BenchResults = {
      machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 1073741824)} GiB, Node ${process.version}, Kafka ${kafkaVersionFromEnv()} (1 broker, loopback)`,
      command: quick ? "BENCH_QUICK=1 npm run bench" : "npm run bench",
      settings: { rounds, events, batchEvents, javaRecords, latencyEvents, callers, rateSeconds, memoryEvents },
      scenarios: scenarios.map(({ id, name, size, against, section, runs }) => ({
        id,
        name,
        size,
        against,
        section,
        runs
      })),
      latencyProblem,
      roundTripMs,
      rate,
      memory,
      importTable: extras ? await importTable() : "not run (BENCH_ONLY)",
      wallSeconds: (performance.now() - started) / 1000,
      finishedAt: new Date().toISOString()
    }
    console.log(writeResults(results))
    for (const s of scenarios) log(`${s.id} ${s.size} B median ${fmt(rates(s).median)} records/s`)
    if (transactions) {
      log("transactions of 1, 10 and 100 records vs publishAll vs Java, own process ...")
      await execFileAsync(process.execPath, [...process.execArgv, "bench/transactions.bench.ts"], {
        env: { ...process.env, KAFKA_BROKERS: cluster.bootstrap, BENCH_COMMAND: "npm run bench" },
        maxBuffer: 16 * 1024 * 1024
      })
    }
    log(`done in ${((performance.now() - started) / 60000).toFixed(1)} min`)
  } finally {
    await cluster.stop()
  }
}

/** `--report-only`: rewrites latest.md and latest.png from latest.json (a report's layout changed, no new run). */
const reportOnly = () => {
  const b = JSON.parse(fs.readFileSync("bench/results/latest.json", "utf8")) as BenchResults
  console.log(writeResults(b))
}

;(process.argv.includes("--report-only") ? Promise.resolve().then(reportOnly) : main()).catch((error) => {
  console.error(error)
  process.exit(1)
})
