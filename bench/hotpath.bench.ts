/**
 * The per-publish cost of `Publisher` + `Batcher`, without a broker: the same path as `npm run bench`'s T2,
 * over `FakeKafka` with a small per-send latency (so batches form as they do on a real broker).
 *
 *   node bench/hotpath.bench.ts                       (npm run bench:hotpath) throughput, then both memory runs
 *   node bench/hotpath.bench.ts throughput            EVENTS (200000), CALLERS (256), LATENCY_MS (2), ROUNDS (3)
 *   node bench/hotpath.bench.ts memory [publisher|baseline]
 *                                                     MEMORY_EVENTS (1000000); HEAP_SNAPSHOT=n writes a heap
 *                                                     snapshot (node:v8) when event n is offered
 *
 * Throughput: CALLERS fibers publish small Schema.Class events (about 100 B as JSON; a pool of 1,000 built
 * beforehand, building them is the caller's cost) until EVENTS are published: records/s and CPU µs per
 * publish (process CPU time, user + system: GC included). The baseline, in the same round: the same records,
 * encoded beforehand, sent straight to FakeKafka's `Producer` in the batch sizes the Batcher formed, one
 * batch at a time as the Batcher sends them. Rounds alternate the two, so a noisy neighbour hits both; the
 * first round is a warm-up, the median of the others is reported.
 *
 * Memory: MEMORY_EVENTS events, each built when offered, through
 * `Effect.forEach(range, publish, { concurrency: 10_000, discard: true })`: peak RSS and heap used (sampled
 * every 25 ms), then the heap after a full GC (what stayed behind). The baseline gives the same events,
 * encoded, to the same Batcher without the Publisher. Each runs in a fresh process of its own.
 *
 * The fake forgets its records as the run goes: they are the broker's memory, not the publisher's.
 */
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import v8 from "node:v8"
import { Effect, Layer, Schema } from "effect"
import { Batcher, Publisher, Topic } from "effect-kafka-publisher"
import { FakeKafka } from "effect-kafka-publisher/testing"
import { Producer, type ProducerRecord, type RecordMetadata } from "../src/Producer.ts"

const events = Number(process.env.EVENTS ?? 200_000)
const callers = Number(process.env.CALLERS ?? 256)
const latencyMs = Number(process.env.LATENCY_MS ?? 2)
const rounds = Number(process.env.ROUNDS ?? 3)
const memoryEvents = Number(process.env.MEMORY_EVENTS ?? 1_000_000)
/** HEAP_SNAPSHOT=n: the memory run writes a heap snapshot (node:v8) when it offers event n. */
const snapshotAt = Number(process.env.HEAP_SNAPSHOT ?? Number.NaN)
/** The fake forgets its records past this many: a broker's storage is not the publisher's memory. */
const keepRecords = 10_000

class BenchEvent extends Schema.Class<BenchEvent>("BenchEvent")({
  id: Schema.Int,
  key: Schema.String,
  body: Schema.String
}) {}

const topic = Topic.make({ name: "bench", schema: BenchEvent, key: (e) => e.key })
const body = "x".repeat(60) // with the JSON framing, about 100 B a record
const event = (i: number) => new BenchEvent({ id: i, key: `k${i % 1000}`, body })
/** The throughput rounds publish these over and over: building an event is the caller's cost, not the path's. */
const pool = Array.from({ length: 1000 }, (_, i) => event(i))

/** FakeKafka with latency, behind a `Producer` that records batch sizes and drops stored records. */
const makeBroker = Effect.gen(function* () {
  const fake = yield* FakeKafka.make({ topics: { bench: { partitions: 6 } } })
  yield* fake.setLatency(latencyMs)
  const batchSizes: Array<number> = []
  const send = (records: ReadonlyArray<ProducerRecord>): Effect.Effect<ReadonlyArray<RecordMetadata>, never> =>
    fake.producer.send(records).pipe(
      Effect.orDie,
      Effect.tap(() =>
        Effect.suspend(() => {
          batchSizes.push(records.length)
          return Effect.flatMap(fake.recordCount, (n) =>
            n < keepRecords ? Effect.void : Effect.andThen(fake.reset, fake.setLatency(latencyMs))
          )
        })
      )
    )
  const producer = Producer.of({ send, inFlight: fake.producer.inFlight })
  return { producer, batchSizes }
})

type Broker = Effect.Success<typeof makeBroker>

const publisherLayer = (broker: Broker) =>
  Publisher.layer().pipe(
    Layer.provide(Batcher.layer({ linger: "5 millis" })),
    Layer.provide(Layer.succeed(Producer, broker.producer))
  )

interface Run {
  readonly records: number
  readonly ms: number
  readonly cpuMicros: number
}

/** Wall time and process CPU time (user + system, every thread: GC included) of `effect`. */
const measure = <E, R>(records: number, effect: Effect.Effect<unknown, E, R>): Effect.Effect<Run, E, R> =>
  Effect.suspend(() => {
    const cpu = process.cpuUsage()
    const started = performance.now()
    return Effect.map(effect, () => {
      const used = process.cpuUsage(cpu)
      return { records, ms: performance.now() - started, cpuMicros: used.user + used.system }
    })
  })

/** CALLERS fibers publish until `total` events are published. */
const publishAll = (publisher: Publisher.Publisher, total: number) => {
  let next = 0
  const caller = Effect.whileLoop({
    while: () => next < total,
    body: () => publisher.publish(topic, pool[next++ % pool.length]!),
    step: () => {}
  })
  return Effect.forEach(Array.from({ length: callers }), () => caller, { concurrency: "unbounded", discard: true })
}

/** The same records, encoded beforehand, sent in `sizes` batches one after the other. */
const sendBatches = (producer: Producer, sizes: ReadonlyArray<number>) =>
  Effect.gen(function* () {
    const batches: Array<Array<ProducerRecord>> = []
    let i = 0
    for (const size of sizes) {
      const batch: Array<ProducerRecord> = []
      for (let j = 0; j < size; j++) batch.push(yield* Topic.encode(topic, pool[i++ % pool.length]!))
      batches.push(batch)
    }
    return { records: i, run: Effect.forEach(batches, (batch) => producer.send(batch), { discard: true }) }
  })

const rate = (run: Run) => Math.round((run.records / run.ms) * 1000)
const cpuPer = (run: Run) => run.cpuMicros / run.records
const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits })
const median = <A>(xs: ReadonlyArray<A>, by: (a: A) => number): A =>
  [...xs].sort((a, b) => by(a) - by(b))[xs.length >> 1]!

const throughput = Effect.gen(function* () {
  console.log(
    `hot path: Publisher.publish + Batcher (linger 5 ms) over FakeKafka (latency ${latencyMs} ms), ` +
      `${fmt(events)} events, ${callers} callers, ${rounds} rounds, node ${process.version}`
  )
  const results: Array<{ publisher: Run; baseline: Run; batch: number }> = []
  for (let round = 0; round <= rounds; round++) {
    const broker = yield* makeBroker
    const publisher = yield* Effect.gen(function* () {
      const p = yield* Publisher.Publisher
      if (round === 0) yield* publishAll(p, Math.min(events, 50_000)) // warm-up, not reported
      broker.batchSizes.length = 0
      return yield* measure(events, publishAll(p, events))
    }).pipe(Effect.provide(publisherLayer(broker)))
    const sizes = [...broker.batchSizes]
    const baselineBroker = yield* makeBroker
    const prepared = yield* sendBatches(baselineBroker.producer, sizes)
    const baseline = yield* measure(prepared.records, prepared.run)
    if (round === 0) continue
    const batch = publisher.records / sizes.length
    results.push({ publisher, baseline, batch })
    console.log(
      `  round ${round}: publish ${fmt(rate(publisher))}/s, ${fmt(cpuPer(publisher), 1)} µs CPU/publish` +
        ` | baseline ${fmt(rate(baseline))}/s, ${fmt(cpuPer(baseline), 1)} µs CPU/record | avg batch ${fmt(batch, 1)}`
    )
  }
  const m = median(results, (r) => cpuPer(r.publisher))
  console.log(`median round (by CPU per publish):`)
  console.log(
    `  publish + Batcher            ${fmt(rate(m.publisher)).padStart(9)} records/s  ${fmt(cpuPer(m.publisher), 1).padStart(6)} µs CPU/publish`
  )
  console.log(
    `  baseline (same batches)      ${fmt(rate(m.baseline)).padStart(9)} records/s  ${fmt(cpuPer(m.baseline), 1).padStart(6)} µs CPU/record`
  )
  console.log(
    `  ratio                        ${(rate(m.publisher) / rate(m.baseline)).toFixed(2).padStart(9)}x baseline  ` +
      `${(cpuPer(m.publisher) / cpuPer(m.baseline)).toFixed(1)}x the CPU (+${fmt(cpuPer(m.publisher) - cpuPer(m.baseline), 1)} µs a publish), avg batch ${fmt(m.batch, 1)}`
  )
})

const mb = (bytes: number) => Math.round(bytes / 1048576)

interface MemoryResult {
  readonly variant: string
  readonly seconds: number
  readonly perSecond: number
  readonly cpuMicros: number
  readonly peakRssMb: number
  readonly peakHeapMb: number
  readonly heapAfterGcMb: number | undefined
}

/** `offer(i)` for every event at concurrency 10,000, RSS and heap sampled every 25 ms. */
const memoryRun = <E, R>(variant: string, offer: (i: number) => Effect.Effect<unknown, E, R>) =>
  Effect.gen(function* () {
    const gc = (globalThis as { gc?: () => void }).gc
    gc?.()
    let peakRss = process.memoryUsage().rss
    let peakHeap = process.memoryUsage().heapUsed
    const timer = setInterval(() => {
      const now = process.memoryUsage()
      peakRss = Math.max(peakRss, now.rss)
      peakHeap = Math.max(peakHeap, now.heapUsed)
    }, 25)
    const range = Array.from({ length: memoryEvents }, (_, i) => i)
    const run = yield* measure(
      memoryEvents,
      Effect.forEach(
        range,
        (i) => {
          if (i === snapshotAt) console.error(`heap snapshot at event ${fmt(i)}: ${v8.writeHeapSnapshot()}`)
          return offer(i)
        },
        { concurrency: 10_000, discard: true }
      )
    ).pipe(Effect.ensuring(Effect.sync(() => clearInterval(timer))))
    gc?.()
    const result: MemoryResult = {
      variant,
      seconds: run.ms / 1000,
      perSecond: rate(run),
      cpuMicros: cpuPer(run),
      peakRssMb: mb(peakRss),
      peakHeapMb: mb(peakHeap),
      heapAfterGcMb: gc === undefined ? undefined : mb(process.memoryUsage().heapUsed)
    }
    return result
  })

const memoryVariants = {
  /** The measured path: every event through `Publisher.publish` (+ Batcher). */
  publisher: Effect.gen(function* () {
    const broker = yield* makeBroker
    return yield* Effect.gen(function* () {
      const publisher = yield* Publisher.Publisher
      return yield* memoryRun("Publisher.publish + Batcher", (i) => publisher.publish(topic, event(i)))
    }).pipe(Effect.provide(publisherLayer(broker)))
  }),
  /** The baseline: the same events encoded and given to the same Batcher, without the Publisher. */
  baseline: Effect.gen(function* () {
    const broker = yield* makeBroker
    return yield* Effect.gen(function* () {
      const batcher = yield* Batcher.Batcher
      return yield* memoryRun("baseline: Topic.encode + Batcher.send", (i) =>
        Effect.flatMap(Topic.encode(topic, event(i)), (record) => batcher.send([record]))
      )
    }).pipe(
      Effect.provide(
        Batcher.layer({ linger: "5 millis" }).pipe(Layer.provide(Layer.succeed(Producer, broker.producer)))
      )
    )
  })
}

const describeMemory = (r: MemoryResult) =>
  `${r.variant}: ${fmt(memoryEvents)} events at concurrency 10,000 in ${r.seconds.toFixed(1)} s (${fmt(r.perSecond)}/s, ` +
  `${fmt(r.cpuMicros, 1)} µs CPU each): peak RSS ${r.peakRssMb} MB, peak heap used ${r.peakHeapMb} MB, ` +
  (r.heapAfterGcMb === undefined
    ? "(--expose-gc for the heap after a full GC)"
    : `heap used after a full GC ${r.heapAfterGcMb} MB`)

/** Each memory variant in a process of its own: no other run's garbage counts in its peak. */
const memoryInChild = (variant: keyof typeof memoryVariants): MemoryResult => {
  const child = spawnSync(
    process.execPath,
    [...process.execArgv, "--expose-gc", fileURLToPath(import.meta.url), "memory", variant],
    {
      stdio: ["ignore", "pipe", "pipe"],
      encoding: "utf8"
    }
  )
  if (child.status !== 0) throw new Error(`memory ${variant} exited with ${child.status}: ${child.stderr}`)
  return JSON.parse(child.stdout.trim().split("\n").at(-1)!) as MemoryResult
}

const mode = process.argv[2] ?? "all"
if (mode === "throughput") await Effect.runPromise(throughput)
else if (mode === "memory") {
  const variant = (process.argv[3] ?? "publisher") as keyof typeof memoryVariants
  const result = await Effect.runPromise(memoryVariants[variant])
  console.error(describeMemory(result))
  console.log(JSON.stringify(result))
} else {
  await Effect.runPromise(throughput)
  console.log("memory (each in its own process):")
  const publisher = memoryInChild("publisher")
  const baseline = memoryInChild("baseline")
  console.log(`  ${describeMemory(publisher)}`)
  console.log(`  ${describeMemory(baseline)}`)
  console.log(
    `  ratio: ${(publisher.peakRssMb / baseline.peakRssMb).toFixed(2)}x the baseline's peak RSS, ` +
      `${(publisher.peakHeapMb / baseline.peakHeapMb).toFixed(2)}x its peak heap`
  )
}
