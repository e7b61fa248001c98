/**
 * `npm run bench`: publishing throughput and latency against a real broker started by the test bed, every
 * scenario in one run so the figures compare. acks=all, idempotence on, one topic of 6 partitions per
 * scenario, records of 100 B and 1 KiB.
 *
 *   A  raw kafkajs, one send() per event, CALLERS concurrent callers          (baseline A)
 *   B  raw kafkajs, pre-built batches of 500                                  (baseline B)
 *   C  the Java client's ProducerPerformance, linger.ms=5                     (baseline C)
 *   T1 Publisher.publish per event (retry, dead-letter, metrics, spans on)
 *   T2 the same with the Batcher (linger 5 ms)
 *   T3 the toolkit's kafkajs driver with the same pre-built batches as B (driver overhead)
 *
 * Then the memory benchmark: 1,000,000 events offered as fast as the API accepts them (Publisher + Batcher),
 * peak RSS. Writes bench/results/latest.{md,json,png}. EVENTS (default 20000), CALLERS (default 64),
 * MEMORY_EVENTS (default 1000000) and KAFKA_VERSION tune it.
 */
import { execFile } from "node:child_process"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { promisify } from "node:util"
import { Effect, Layer, Schema } from "effect"
import * as hdr from "hdr-histogram-js"
import kafkajs from "kafkajs"
import * as Batcher from "../src/Batcher.ts"
import * as KafkaJsProducer from "../src/KafkaJsProducer.ts"
import { Producer, type ProducerRecord } from "../src/Producer.ts"
import * as Publisher from "../src/Publisher.ts"
import * as Topic from "../src/Topic.ts"
import { type KafkaCluster, kafkaVersionFromEnv, startCluster } from "../testbed/KafkaCluster.ts"
import { libsDir } from "../testbed/layout.ts"
import { createTopics } from "../testbed/topics.ts"
import { type Bar, barChartPng } from "./chart.ts"

const execFileAsync = promisify(execFile)
const events = Number(process.env.EVENTS ?? 20_000)
const callers = Number(process.env.CALLERS ?? 64)
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
      h.recordValue(Number((process.hrtime.bigint() - start) / 1000n))
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
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

const prebuilt = (topic: string, size: number) =>
  Array.from({ length: Math.ceil(events / 500) }, (_, b) =>
    Array.from({ length: Math.min(500, events - b * 500) }, (_, j) => ({
      topic,
      key: `k${(b * 500 + j) % 1000}`,
      value: payload(size, b * 500 + j)
    }))
  )

const baselineB = async (cluster: KafkaCluster, size: number) => {
  const topic = await newTopic(cluster, `b-${size}`)
  const producer = kafkaClient(cluster).producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const batches = prebuilt(topic, size)
  const h = histogram()
  const started = performance.now()
  const [, rss] = await withPeakRss(async () => {
    for (const batch of batches) {
      const start = process.hrtime.bigint()
      await producer.send({ topic, acks: -1, messages: batch.map(({ key, value }) => ({ key, value })) })
      h.recordValue(Number((process.hrtime.bigint() - start) / 1000n))
    }
  })
  const ms = performance.now() - started
  await producer.disconnect()
  return result("B: raw kafkajs, batches of 500", size, events, ms, h, rss, "latency per batch")
}

const baselineC = async (cluster: KafkaCluster, size: number): Promise<Result> => {
  const topic = await newTopic(cluster, `c-${size}`)
  const version = kafkaVersionFromEnv()
  const logConfig = version.startsWith("3.")
    ? [`-Dlog4j.configuration=file:${path.resolve("bench/tools-log4j.properties")}`]
    : [`-Dlog4j2.configurationFile=${path.resolve("bench/tools-log4j2.properties")}`]
  const args = [
    "-Xmx512m",
    ...logConfig,
    "-cp",
    path.join(libsDir(version), "*"),
    "org.apache.kafka.tools.ProducerPerformance",
    "--topic",
    topic,
    "--num-records",
    String(events * 5), // the JVM needs a longer run to warm up; rates stay comparable
    "--record-size",
    String(size),
    "--throughput",
    "-1",
    "--producer-props",
    `bootstrap.servers=${cluster.bootstrap}`,
    "acks=all",
    "enable.idempotence=true",
    "linger.ms=5"
  ]
  const started = performance.now()
  const { stdout } = await execFileAsync("java", args, { maxBuffer: 16 * 1024 * 1024 })
  const ms = performance.now() - started
  // "N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency, P50 ms 50th, P95 ms 95th, P99 ms 99th, ..."
  const last = stdout.trim().split("\n").at(-1)!
  const m =
    /(\d+) records sent, ([\d.]+) records\/sec \(([\d.]+) MB\/sec\), [\d.]+ ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th/.exec(
      last
    )
  if (!m) throw new Error(`cannot read ProducerPerformance output: ${last}`)
  return {
    scenario: "C: Java ProducerPerformance, linger 5 ms",
    size,
    records: Number(m[1]),
    seconds: ms / 1000,
    recordsPerSecond: Math.round(Number(m[2])),
    mbPerSecond: Number(m[3]),
    latencyMs: { p50: Number(m[5]), p95: Number(m[6]), p99: Number(m[7]), max: Number(m[4]) },
    peakRssMb: 0,
    note: "JVM process; latency in whole ms"
  }
}

class BenchEvent extends Schema.Class<BenchEvent>("BenchEvent")({
  id: Schema.Int,
  key: Schema.String,
  body: Schema.String
}) {}

const toolkitPublish = async (cluster: KafkaCluster, size: number, batched: boolean) => {
  const name = await newTopic(cluster, `t${batched ? 2 : 1}-${size}`)
  const topic = Topic.make({ name, schema: BenchEvent, key: (e) => e.key })
  const body = "x".repeat(Math.max(0, size - 40)) // JSON framing makes up the rest of the record size
  const driver = KafkaJsProducer.layer({ brokers: cluster.brokers, clientId: "bench" })
  const producerLayer = batched ? Batcher.layer().pipe(Layer.provide(driver)) : driver
  const h = histogram()
  const program = Effect.gen(function* () {
    const publisher = yield* Publisher.Publisher
    const started = performance.now()
    const [, rss] = yield* Effect.promise(() =>
      withPeakRss(() =>
        runCallers(
          events,
          callers,
          (i) => Effect.runPromise(publisher.publish(topic, new BenchEvent({ id: i, key: `k${i % 1000}`, body }))),
          h
        )
      )
    )
    return [performance.now() - started, rss] as const
  }).pipe(Effect.provide(Publisher.layer().pipe(Layer.provide(producerLayer))))
  const [ms, rss] = await Effect.runPromise(program)
  return result(
    batched ? "T2: toolkit publish + Batcher (linger 5 ms)" : "T1: toolkit publish per event",
    size,
    events,
    ms,
    h,
    rss,
    `${callers} callers`
  )
}

const toolkitBatches = async (cluster: KafkaCluster, size: number) => {
  const topic = await newTopic(cluster, `t3-${size}`)
  const batches = prebuilt(topic, size).map((batch) =>
    batch.map(({ key, value }): ProducerRecord => ({ topic, key: Buffer.from(key), value, headers: {} }))
  )
  const h = histogram()
  const program = Effect.gen(function* () {
    const producer = yield* Producer
    const started = performance.now()
    const [, rss] = yield* Effect.promise(() =>
      withPeakRss(async () => {
        for (const batch of batches) {
          const start = process.hrtime.bigint()
          await Effect.runPromise(producer.send(batch))
          h.recordValue(Number((process.hrtime.bigint() - start) / 1000n))
        }
      })
    )
    return [performance.now() - started, rss] as const
  }).pipe(Effect.provide(KafkaJsProducer.layer({ brokers: cluster.brokers, clientId: "bench" })))
  const [ms, rss] = await Effect.runPromise(program)
  return result("T3: toolkit driver, batches of 500", size, events, ms, h, rss, "latency per batch")
}

const memoryBenchmark = async (cluster: KafkaCluster) => {
  const name = await newTopic(cluster, "memory")
  const topic = Topic.make({ name, schema: BenchEvent, key: (e) => e.key })
  const body = "x".repeat(60)
  const started = performance.now()
  const [, rss] = await withPeakRss(() =>
    Effect.runPromise(
      Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        // offer everything as fast as the API accepts it: the Batcher's bounded queue pushes back
        yield* Effect.forEach(
          Array.from({ length: memoryEvents }, (_, i) => i),
          (i) => publisher.publish(topic, new BenchEvent({ id: i, key: `k${i % 1000}`, body })),
          { concurrency: 10_000, discard: true }
        )
      }).pipe(
        Effect.provide(
          Publisher.layer().pipe(
            Layer.provide(Batcher.layer()),
            Layer.provide(KafkaJsProducer.layer({ brokers: cluster.brokers, clientId: "bench-memory" }))
          )
        )
      )
    )
  )
  return { events: memoryEvents, seconds: (performance.now() - started) / 1000, peakRssMb: rss }
}

const fmt = (n: number) => n.toLocaleString("en-US")

const main = async () => {
  log(`starting Kafka ${kafkaVersionFromEnv()} (test bed) ...`)
  const cluster = await startCluster({ nodes: 1 })
  const results: Array<Result> = []
  try {
    for (const size of sizes) {
      for (const [label, run] of [
        ["A", () => baselineA(cluster, size)],
        ["B", () => baselineB(cluster, size)],
        ["C", () => baselineC(cluster, size)],
        ["T1", () => toolkitPublish(cluster, size, false)],
        ["T2", () => toolkitPublish(cluster, size, true)],
        ["T3", () => toolkitBatches(cluster, size)]
      ] as const) {
        log(`${label}, ${size} B, ${fmt(events)} events ...`)
        const r = await run()
        log(`${r.scenario}: ${fmt(r.recordsPerSecond)} records/s, p99 ${r.latencyMs.p99.toFixed(2)} ms`)
        results.push(r)
      }
    }
    log(`memory: ${fmt(memoryEvents)} events through Publisher + Batcher ...`)
    const memory = await memoryBenchmark(cluster)
    log(`memory: peak RSS ${memory.peakRssMb} MB in ${memory.seconds.toFixed(1)} s`)
    write(results, memory)
  } finally {
    await cluster.stop()
  }
}

const write = (results: ReadonlyArray<Result>, memory: { events: number; seconds: number; peakRssMb: number }) => {
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 1073741824)} GiB, Node ${process.version}, Kafka ${kafkaVersionFromEnv()} (1 broker, loopback)`
  const rate = (scenario: string, size: number) =>
    results.find((r) => r.scenario.startsWith(scenario) && r.size === size)?.recordsPerSecond ?? Number.NaN
  const rows = results.map((r) => {
    const a = rate("A:", r.size)
    const c = rate("C:", r.size)
    return `| ${r.scenario} | ${r.size} | ${fmt(r.recordsPerSecond)} | ${r.mbPerSecond} | ${r.latencyMs.p50.toFixed(2)} / ${r.latencyMs.p95.toFixed(2)} / ${r.latencyMs.p99.toFixed(2)} / ${r.latencyMs.max.toFixed(2)} | ${r.peakRssMb || "-"} | ${(r.recordsPerSecond / a).toFixed(2)}x | ${(r.recordsPerSecond / c).toFixed(2)}x | ${r.note ?? ""} |`
  })
  const md = `# Publishing benchmark

Machine: ${machine}. ${fmt(events)} events per scenario, acks=all, idempotence on, 6 partitions.
Command: \`npm run bench\` (${new Date().toISOString()}).

| scenario | bytes | records/s | MB/s | latency ms p50 / p95 / p99 / max | peak RSS MB | vs A | vs C | note |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows.join("\n")}

Memory: ${fmt(memory.events)} events offered as fast as the API accepts them (Publisher + Batcher): peak RSS ${memory.peakRssMb} MB, ${memory.seconds.toFixed(1)} s.
Peak RSS is this Node process's (it holds every scenario run so far); the Java baseline runs in its own JVM.
`
  fs.mkdirSync("bench/results", { recursive: true })
  fs.writeFileSync("bench/results/latest.md", md)
  fs.writeFileSync(
    "bench/results/latest.json",
    `${JSON.stringify({ machine, events, callers, results, memory }, null, 2)}\n`
  )
  const bars: Array<Bar> = results.map((r) => ({
    label: `${r.scenario.split(":")[0]} ${r.size} B ${r.scenario.split(":")[1]?.trim().slice(0, 30) ?? ""}`,
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
