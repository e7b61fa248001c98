/**
 * `npm run bench`: publishing throughput and latency against a real broker started by the test bed, every
 * scenario in one run so the figures compare. acks=all, idempotence on, one topic of 6 partitions per
 * scenario, records of 100 B and 1 KiB.
 *
 *   A  raw kafkajs, one send() per event, CALLERS concurrent callers          (baseline A)
 *   B  raw kafkajs, pre-built batches of 500                                  (baseline B)
 *   C  the Java client's ProducerPerformance, linger.ms=5                     (baseline C)
 *   P  raw @platformatic/kafka, pre-built batches of 500                      (the second driver's own client)
 *   T1 Publisher.publish per event (retry, dead-letter, metrics, spans on), CALLERS concurrent fibers
 *   T2 the same with the Batcher (linger 5 ms)
 *   T3 the toolkit's kafkajs driver with the same pre-built batches as B (driver overhead)
 *   T4 Publisher.publish + Batcher on the @platformatic/kafka driver
 *   T5 the toolkit's @platformatic/kafka driver with the same pre-built batches (driver overhead vs P)
 *   L  Publisher.publish + Batcher at a steady 1,000 events/s (latency, both drivers; 100 B), in a process
 *      of its own (bench/latency.bench.ts)
 *
 * Then the memory benchmark (bench/memory.bench.ts, in a process of its own so its peak RSS is its own):
 * 1,000,000 events offered as fast as the API accepts them (Publisher + Batcher). Writes
 * bench/results/latest.{md,json,png}. Last, the transactions benchmark (bench/transactions.bench.ts, own
 * process, same broker), which writes bench/results/transactions.{md,json}. EVENTS (per-event scenarios, default 10,000; the Batcher's get 5x,
 * pre-built batches 10x), CALLERS (default 256), RATE_SECONDS (default 10), MEMORY_EVENTS (default
 * 1,000,000) and KAFKA_VERSION tune it.
 */
import { execFile } from "node:child_process"
import fs from "node:fs"
import os from "node:os"
import { promisify } from "node:util"
import { Producer as PlatformaticClient } from "@platformatic/kafka"
import { Effect, Layer } from "effect"
import { Batcher, Publisher, Topic } from "effect-kafka-publisher"
import * as hdr from "hdr-histogram-js"
import kafkajs from "kafkajs"
import { Producer, type ProducerRecord } from "../src/Producer.ts"
import type { ProducerConfig } from "../src/ProducerConfig.ts"
import type { PublishError } from "../src/PublishError.ts"
import { type KafkaCluster, kafkaVersionFromEnv, startCluster } from "../testbed/KafkaCluster.ts"
import { createTopics } from "../testbed/topics.ts"
import { type Bar, barChartPng } from "./chart.ts"
import { producerPerformance } from "./java.ts"
import { BenchEvent, drivers } from "./shared.ts"

const execFileAsync = promisify(execFile)
const events = Number(process.env.EVENTS ?? 10_000)
const batcherEvents = events * 5
const batchEvents = events * 10
const callers = Number(process.env.CALLERS ?? 256)
const rateSeconds = Number(process.env.RATE_SECONDS ?? 10)
const memoryEvents = Number(process.env.MEMORY_EVENTS ?? 1_000_000)
const sizes = [100, 1024] as const

interface Result {
  readonly scenario: string
  readonly size: number
  readonly records: number
  readonly seconds: number
  readonly recordsPerSecond: number
  readonly mbPerSecond: number
  readonly latencyMs: { readonly p50: number; readonly p95: number; readonly p99: number; readonly max: number }
  readonly peakRssMb: number
  readonly note?: string
}

const log = (line: string) => console.error(`[bench] ${line}`)

/** Samples this process's RSS while `run` runs; returns the peak in MB. */
const withPeakRss = async <A>(run: () => Promise<A>): Promise<[A, number]> => {
  let peak = process.memoryUsage().rss
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }, 25)
  try {
    const value = await run()
    return [value, Math.round(Math.max(peak, process.memoryUsage().rss) / 1048576)]
  } finally {
    clearInterval(timer)
  }
}

const histogram = () =>
  hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 })

const percentiles = (h: hdr.Histogram) => ({
  p50: h.getValueAtPercentile(50) / 1000,
  p95: h.getValueAtPercentile(95) / 1000,
  p99: h.getValueAtPercentile(99) / 1000,
  max: h.maxValue / 1000
})

const result = (
  scenario: string,
  size: number,
  records: number,
  ms: number,
  h: hdr.Histogram,
  rss: number,
  note?: string
): Result => ({
  scenario,
  size,
  records,
  seconds: ms / 1000,
  recordsPerSecond: Math.round((records / ms) * 1000),
  mbPerSecond: Number(((records * size) / 1048576 / (ms / 1000)).toFixed(2)),
  latencyMs: percentiles(h),
  peakRssMb: rss,
  ...(note === undefined ? {} : { note })
})

const payload = (size: number, i: number) => {
  const value = Buffer.alloc(size, 120)
  value.write(String(i))
  return value
}

const micros = (start: bigint) => Number((process.hrtime.bigint() - start) / 1000n)

/** Runs `work(i)` for i in [0, total) from `concurrency` workers; records each call's latency (µs). */
const runCallers = async (
  total: number,
  concurrency: number,
  work: (i: number) => Promise<unknown>,
  h: hdr.Histogram
) => {
  let next = 0
  const worker = async () => {
    while (next < total) {
      const i = next++
      const start = process.hrtime.bigint()
      await work(i)
      h.recordValue(micros(start))
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
}

/** Sends pre-built batches one after the other; records each batch's latency (µs). */
const runBatches = async <B>(batches: ReadonlyArray<B>, send: (batch: B) => Promise<unknown>, h: hdr.Histogram) => {
  for (const batch of batches) {
    const start = process.hrtime.bigint()
    await send(batch)
    h.recordValue(micros(start))
  }
}

const newTopic = async (cluster: KafkaCluster, label: string) => {
  const topic = `bench-${label}-${Date.now()}`
  await createTopics(cluster.brokers, [{ topic, numPartitions: 6, replicationFactor: 1 }])
  return topic
}

const kafkaClient = (cluster: KafkaCluster) =>
  new kafkajs.Kafka({ clientId: "bench", brokers: cluster.brokers, logLevel: kafkajs.logLevel.NOTHING })

const baselineA = async (cluster: KafkaCluster, size: number) => {
  const topic = await newTopic(cluster, `a-${size}`)
  const producer = kafkaClient(cluster).producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const h = histogram()
  const started = performance.now()
  const [, rss] = await withPeakRss(() =>
    runCallers(
      events,
      callers,
      (i) => producer.send({ topic, acks: -1, messages: [{ key: `k${i % 1000}`, value: payload(size, i) }] }),
      h
    )
  )
  const ms = performance.now() - started
  await producer.disconnect()
  return result("A: raw kafkajs, send per event", size, events, ms, h, rss, `${callers} callers`)
}

/** The same keys and values for every pre-built-batch scenario, in batches of 500. */
const prebuilt = (size: number) =>
  Array.from({ length: Math.ceil(batchEvents / 500) }, (_, b) =>
    Array.from({ length: Math.min(500, batchEvents - b * 500) }, (_, j) => ({
      key: `k${(b * 500 + j) % 1000}`,
      value: payload(size, b * 500 + j)
    }))
  )

const baselineB = async (cluster: KafkaCluster, size: number) => {
  const topic = await newTopic(cluster, `b-${size}`)
  const producer = kafkaClient(cluster).producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const batches = prebuilt(size)
  const h = histogram()
  const started = performance.now()
  const [, rss] = await withPeakRss(() =>
    runBatches(batches, (batch) => producer.send({ topic, acks: -1, messages: batch }), h)
  )
  const ms = performance.now() - started
  await producer.disconnect()
  return result("B: raw kafkajs, batches of 500", size, batchEvents, ms, h, rss, "latency per batch")
}

const baselineP = async (cluster: KafkaCluster, size: number) => {
  const topic = await newTopic(cluster, `p-${size}`)
  const client = new PlatformaticClient({ clientId: "bench", bootstrapBrokers: cluster.brokers, idempotent: true })
  const batches = prebuilt(size).map((batch) =>
    batch.map(({ key, value }) => ({ topic, key: Buffer.from(key), value }))
  )
  const h = histogram()
  const started = performance.now()
  const [, rss] = await withPeakRss(() => runBatches(batches, (messages) => client.send({ messages }), h))
  const ms = performance.now() - started
  await client.close()
  return result("P: raw @platformatic/kafka, batches of 500", size, batchEvents, ms, h, rss, "latency per batch")
}

const baselineC = async (cluster: KafkaCluster, size: number): Promise<Result> => {
  const topic = await newTopic(cluster, `c-${size}`)
  const java = await producerPerformance([
    "--topic",
    topic,
    "--num-records",
    String(batchEvents * 2), // the JVM needs a longer run to warm up; rates stay comparable
    "--record-size",
    String(size),
    "--throughput",
    "-1",
    "--producer-props",
    `bootstrap.servers=${cluster.bootstrap}`,
    "acks=all",
    "enable.idempotence=true",
    "linger.ms=5"
  ])
  return {
    scenario: "C: Java ProducerPerformance, linger 5 ms",
    size,
    records: java.records,
    seconds: java.wallMs / 1000,
    recordsPerSecond: Math.round(java.recordsPerSecond),
    mbPerSecond: java.mbPerSecond,
    latencyMs: java.latencyMs,
    peakRssMb: 0,
    note: "JVM process; latency in whole ms"
  }
}

type Driver = (config: ProducerConfig) => Layer.Layer<Producer, PublishError>

const publisherLayer = (cluster: KafkaCluster, driver: Driver, batched: boolean) => {
  const producer = driver({ brokers: cluster.brokers, clientId: "bench" })
  return Publisher.layer().pipe(Layer.provide(batched ? Batcher.layer().pipe(Layer.provide(producer)) : producer))
}

/** JSON framing makes up the rest of the record size. */
const bodyFor = (size: number) => "x".repeat(Math.max(0, size - 40))

/** `Publisher.publish` per event from `callers` concurrent fibers, as an Effect program would call it. */
const toolkitPublish = async (
  cluster: KafkaCluster,
  size: number,
  options: { readonly scenario: string; readonly driver: Driver; readonly batched: boolean; readonly total: number }
) => {
  const name = await newTopic(cluster, `t-${size}`)
  const topic = Topic.make({ name, schema: BenchEvent, key: (e) => e.key })
  const body = bodyFor(size)
  const h = histogram()
  const program = Effect.gen(function* () {
    const publisher = yield* Publisher.Publisher
    const publishOne = (i: number) =>
      Effect.suspend(() => {
        const start = process.hrtime.bigint()
        return publisher
          .publish(topic, new BenchEvent({ id: i, key: `k${i % 1000}`, body }))
          .pipe(Effect.tap(() => Effect.sync(() => h.recordValue(micros(start)))))
      })
    const started = performance.now()
    const [, rss] = yield* Effect.promise(() =>
      withPeakRss(() =>
        Effect.runPromise(Effect.forEach(indices(options.total), publishOne, { concurrency: callers, discard: true }))
      )
    )
    return [performance.now() - started, rss] as const
  }).pipe(Effect.provide(publisherLayer(cluster, options.driver, options.batched)))
  const [ms, rss] = await Effect.runPromise(program)
  return result(options.scenario, size, options.total, ms, h, rss, `${callers} callers`)
}

function* indices(total: number) {
  for (let i = 0; i < total; i++) yield i
}

/** The toolkit's driver alone (no Publisher) with the same pre-built batches as B and P. */
const toolkitBatches = async (cluster: KafkaCluster, size: number, scenario: string, driver: Driver) => {
  const topic = await newTopic(cluster, `d-${size}`)
  const batches = prebuilt(size).map((batch) =>
    batch.map(({ key, value }): ProducerRecord => ({ topic, key: Buffer.from(key), value, headers: {} }))
  )
  const h = histogram()
  const program = Effect.gen(function* () {
    const producer = yield* Producer
    const started = performance.now()
    const [, rss] = yield* Effect.promise(() =>
      withPeakRss(() => runBatches(batches, (batch) => Effect.runPromise(producer.send(batch)), h))
    )
    return [performance.now() - started, rss] as const
  }).pipe(Effect.provide(driver({ brokers: cluster.brokers, clientId: "bench" })))
  const [ms, rss] = await Effect.runPromise(program)
  return result(scenario, size, batchEvents, ms, h, rss, "latency per batch")
}

/** bench/latency.bench.ts in a fresh Node process: a steady 1,000 events/s, no earlier scenario's garbage. */
const steadyRate = async (cluster: KafkaCluster, scenario: string, driver: keyof typeof drivers): Promise<Result> => {
  const topic = await newTopic(cluster, `rate-${driver}`)
  const { stdout } = await execFileAsync(process.execPath, [...process.execArgv, "bench/latency.bench.ts"], {
    env: {
      ...process.env,
      KAFKA_BROKERS: cluster.bootstrap,
      LATENCY_TOPIC: topic,
      LATENCY_DRIVER: driver,
      RATE_SECONDS: String(rateSeconds)
    },
    maxBuffer: 16 * 1024 * 1024
  })
  const measured = JSON.parse(stdout.trim().split("\n").at(-1)!) as {
    records: number
    recordsPerSecond: number
    latencyMs: Result["latencyMs"]
  }
  return {
    scenario,
    size: 100,
    records: measured.records,
    seconds: measured.records / measured.recordsPerSecond,
    recordsPerSecond: measured.recordsPerSecond,
    mbPerSecond: Number(((measured.recordsPerSecond * 100) / 1048576).toFixed(2)),
    latencyMs: measured.latencyMs,
    peakRssMb: 0,
    note: "1,000 events/s offered; own process"
  }
}

interface MemoryResult {
  readonly driver: string
  readonly concurrency: number
  readonly events: number
  readonly seconds: number
  readonly peakRssMb: number
  readonly peakHeapMb: number
  readonly delivered: number
}

/** The memory benchmark in a fresh Node process: its peak RSS is its own, not this run's garbage. */
const memoryBenchmark = async (
  cluster: KafkaCluster,
  driver: keyof typeof drivers,
  concurrency: number
): Promise<MemoryResult> => {
  const topic = await newTopic(cluster, `memory-${driver}`)
  const { stdout } = await execFileAsync(process.execPath, [...process.execArgv, "bench/memory.bench.ts"], {
    env: {
      ...process.env,
      KAFKA_BROKERS: cluster.bootstrap,
      MEMORY_TOPIC: topic,
      MEMORY_DRIVER: driver,
      MEMORY_EVENTS: String(memoryEvents),
      MEMORY_CONCURRENCY: String(concurrency)
    },
    maxBuffer: 16 * 1024 * 1024
  })
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as MemoryResult
}

/** bench/transactions.bench.ts in a process of its own, on this broker: writes bench/results/transactions.md. */
const transactionsBenchmark = async (cluster: KafkaCluster) => {
  log("transactions of 1, 10 and 100 records vs publishAll vs Java, own process ...")
  await execFileAsync(process.execPath, [...process.execArgv, "bench/transactions.bench.ts"], {
    env: { ...process.env, KAFKA_BROKERS: cluster.bootstrap, BENCH_COMMAND: "npm run bench" },
    maxBuffer: 16 * 1024 * 1024
  })
}

const fmt = (n: number) => n.toLocaleString("en-US")

const main = async () => {
  log(`starting Kafka ${kafkaVersionFromEnv()} (test bed) ...`)
  const cluster = await startCluster({ nodes: 1 })
  const results: Array<Result> = []
  const memory: Array<MemoryResult> = []
  const run = async (label: string, scenario: () => Promise<Result>) => {
    log(`${label} ...`)
    const r = await scenario()
    log(`${r.scenario} (${r.size} B): ${fmt(r.recordsPerSecond)} records/s, p99 ${r.latencyMs.p99.toFixed(2)} ms`)
    results.push(r)
  }
  try {
    for (const size of sizes) {
      await run(`A, ${size} B, ${fmt(events)} events`, () => baselineA(cluster, size))
      await run(`B, ${size} B, ${fmt(batchEvents)} events`, () => baselineB(cluster, size))
      await run(`C, ${size} B, ${fmt(batchEvents * 2)} events`, () => baselineC(cluster, size))
      await run(`P, ${size} B, ${fmt(batchEvents)} events`, () => baselineP(cluster, size))
      await run(`T1, ${size} B, ${fmt(events)} events`, () =>
        toolkitPublish(cluster, size, {
          scenario: "T1: toolkit publish per event",
          driver: drivers.kafkajs,
          batched: false,
          total: events
        })
      )
      await run(`T2, ${size} B, ${fmt(batcherEvents)} events`, () =>
        toolkitPublish(cluster, size, {
          scenario: "T2: toolkit publish + Batcher (linger 5 ms)",
          driver: drivers.kafkajs,
          batched: true,
          total: batcherEvents
        })
      )
      await run(`T3, ${size} B, ${fmt(batchEvents)} events`, () =>
        toolkitBatches(cluster, size, "T3: toolkit kafkajs driver, batches of 500", drivers.kafkajs)
      )
      await run(`T4, ${size} B, ${fmt(batcherEvents)} events`, () =>
        toolkitPublish(cluster, size, {
          scenario: "T4: toolkit publish + Batcher, platformatic driver",
          driver: drivers.platformatic,
          batched: true,
          total: batcherEvents
        })
      )
      await run(`T5, ${size} B, ${fmt(batchEvents)} events`, () =>
        toolkitBatches(cluster, size, "T5: toolkit platformatic driver, batches of 500", drivers.platformatic)
      )
    }
    for (const name of Object.keys(drivers) as Array<keyof typeof drivers>) {
      await run(`L (${name}), ${rateSeconds} s at 1,000 events/s, own process`, () =>
        steadyRate(cluster, `L: publish + Batcher at 1,000/s, ${name} driver`, name)
      )
    }
    // 10,000 in flight fills the Batcher's queue (maxQueued); 1,000 still keeps two batches of 500 ahead
    const memoryRuns = [
      ["kafkajs", 10_000],
      ["platformatic", 10_000],
      ["kafkajs", 1_000]
    ] as const
    for (const [driver, concurrency] of memoryRuns) {
      log(`memory: ${fmt(memoryEvents)} events, ${fmt(concurrency)} in flight, ${driver} driver, own process ...`)
      const m = await memoryBenchmark(cluster, driver, concurrency)
      log(`memory (${driver}): peak RSS ${m.peakRssMb} MB, heap ${m.peakHeapMb} MB, ${m.seconds.toFixed(1)} s`)
      memory.push(m)
    }
    write(results, memory)
    await transactionsBenchmark(cluster)
  } finally {
    await cluster.stop()
  }
}

const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`

/** Each goal of the performance issue, with the figure that decides it. */
const goals = (results: ReadonlyArray<Result>, memory: ReadonlyArray<MemoryResult>) => {
  const rate = (prefix: string, size: number) =>
    results.find((r) => r.scenario.startsWith(prefix) && r.size === size)?.recordsPerSecond ?? Number.NaN
  const lines: Array<string> = []
  const goal = (text: string, value: number, target: number, shown: string) =>
    lines.push(`| ${text} | ${shown} | ${value >= target ? "met" : "not met"} |`)
  for (const size of sizes) {
    goal(
      `${size} B: toolkit kafkajs driver vs raw kafkajs, same batches (T3 / B) >= 0.95x`,
      rate("T3:", size) / rate("B:", size),
      0.95,
      ratio(rate("T3:", size), rate("B:", size))
    )
    goal(
      `${size} B: toolkit platformatic driver vs raw platformatic, same batches (T5 / P) >= 0.95x`,
      rate("T5:", size) / rate("P:", size),
      0.95,
      ratio(rate("T5:", size), rate("P:", size))
    )
    const batcher = Math.max(rate("T2:", size), rate("T4:", size))
    goal(
      `${size} B: toolkit with the Batcher vs A (best of T2, T4) >= 5x`,
      batcher / rate("A:", size),
      5,
      ratio(batcher, rate("A:", size))
    )
    const best = Math.max(...["T1:", "T2:", "T3:", "T4:", "T5:"].map((p) => rate(p, size)))
    goal(
      `${size} B: best toolkit configuration vs the Java producer (C) >= 0.5x`,
      best / rate("C:", size),
      0.5,
      ratio(best, rate("C:", size))
    )
  }
  for (const r of results.filter((r) => r.scenario.startsWith("L:"))) {
    goal(
      `p99 at 1,000 events/s, Batcher default linger, ${r.scenario.split(", ")[1]} <= 10 ms`,
      10 - r.latencyMs.p99,
      0,
      `${r.latencyMs.p99.toFixed(2)} ms`
    )
  }
  for (const m of memory) {
    goal(
      `${fmt(m.events)} events, ${fmt(m.concurrency)} in flight, ${m.driver} driver: peak RSS < 300 MB`,
      300 - m.peakRssMb,
      1e-9,
      `${m.peakRssMb} MB`
    )
  }
  return lines
}

const write = (results: ReadonlyArray<Result>, memory: ReadonlyArray<MemoryResult>) => {
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 1073741824)} GiB, Node ${process.version}, Kafka ${kafkaVersionFromEnv()} (1 broker, loopback)`
  const rate = (scenario: string, size: number) =>
    results.find((r) => r.scenario.startsWith(scenario) && r.size === size)?.recordsPerSecond ?? Number.NaN
  const rows = results.map((r) => {
    const a = rate("A:", r.size)
    const c = rate("C:", r.size)
    return `| ${r.scenario} | ${r.size} | ${fmt(r.records)} | ${fmt(r.recordsPerSecond)} | ${r.mbPerSecond} | ${r.latencyMs.p50.toFixed(2)} / ${r.latencyMs.p95.toFixed(2)} / ${r.latencyMs.p99.toFixed(2)} / ${r.latencyMs.max.toFixed(2)} | ${r.peakRssMb || "-"} | ${ratio(r.recordsPerSecond, a)} | ${ratio(r.recordsPerSecond, c)} | ${r.note ?? ""} |`
  })
  const memoryRows = memory.map(
    (m) =>
      `| ${m.driver} | ${fmt(m.concurrency)} | ${fmt(m.events)} | ${fmt(m.delivered)} | ${m.seconds.toFixed(1)} | ${fmt(Math.round(m.events / m.seconds))} | ${m.peakRssMb} | ${m.peakHeapMb} |`
  )
  const md = `# Publishing benchmark

Machine: ${machine}. acks=all, idempotence on, 6 partitions; ${fmt(events)} events per per-event scenario, ${fmt(batcherEvents)} with the Batcher, ${fmt(batchEvents)} in pre-built batches (C: ${fmt(batchEvents * 2)}).
Command: \`npm run bench\` (${new Date().toISOString()}).

| scenario | bytes | records | records/s | MB/s | latency ms p50 / p95 / p99 / max | peak RSS MB | vs A | vs C | note |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows.join("\n")}

Peak RSS above is this Node process's (it holds every scenario run so far); the Java baseline runs in its own JVM.

## Memory: ${fmt(memoryEvents)} events offered as fast as the API accepts them (Publisher + Batcher), each driver in a process of its own

| driver | in flight | events | delivered | seconds | records/s | peak RSS MB | peak heap MB |
| --- | --- | --- | --- | --- | --- | --- | --- |
${memoryRows.join("\n")}

## Goals

| goal | measured | |
| --- | --- | --- |
${goals(results, memory).join("\n")}
`
  fs.mkdirSync("bench/results", { recursive: true })
  fs.writeFileSync("bench/results/latest.md", md)
  fs.writeFileSync(
    "bench/results/latest.json",
    `${JSON.stringify({ machine, events, batcherEvents, batchEvents, callers, results, memory }, null, 2)}\n`
  )
  const bars: Array<Bar> = results.map((r) => ({
    label: `${r.scenario.split(":")[0]} ${r.size} B ${r.scenario.split(":")[1]?.trim().slice(0, 34) ?? ""}`,
    value: r.recordsPerSecond,
    note: `${fmt(r.recordsPerSecond)}/s, p99 ${r.latencyMs.p99.toFixed(1)} ms`
  }))
  fs.writeFileSync("bench/results/latest.png", barChartPng("records/s, acks=all, idempotence on", machine, bars))
  console.log(md)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
