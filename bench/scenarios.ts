/**
 * The throughput scenarios of `npm run bench`, each one run of one scenario against brokers it is given: raw
 * kafkajs and raw @platformatic/kafka on pre-built batches, the toolkit's drivers on the same batches,
 * `Publisher.publish` per event (+ Batcher) from many callers, `Publisher.publishAll` (in chunks, or one call),
 * the stream sink, and the Java producer. Connecting is outside the timed part; topics are made by the caller.
 *
 * @module
 */
import { Producer as PlatformaticClient } from "@platformatic/kafka"
import { Effect, Layer, Stream } from "effect"
import { Batcher, Publisher, Topic } from "effect-kafka-publisher"
import type * as hdr from "hdr-histogram-js"
import kafkajs from "kafkajs"
import { Producer, type ProducerRecord } from "../src/Producer.ts"
import { producerPerformance } from "./java.ts"
import { BenchEvent, type DriverName, drivers, histogram, percentiles } from "./shared.ts"

/** Latency percentiles of one run, ms. */
export interface Latency {
  readonly p50: number
  readonly p95: number
  readonly p99: number
  readonly max: number
}

/** One run of one scenario. */
export interface Measured {
  readonly records: number
  readonly ms: number
  readonly recordsPerSecond: number
  readonly latencyMs: Latency
}

/** Where a run publishes, and how much. */
export interface Target {
  readonly brokers: ReadonlyArray<string>
  readonly topic: string
  readonly size: number
  readonly records: number
}

const micros = (start: bigint) => Number((process.hrtime.bigint() - start) / 1000n)

const measured = (records: number, ms: number, h: hdr.Histogram): Measured => ({
  records,
  ms,
  recordsPerSecond: Math.round((records / ms) * 1000),
  latencyMs: percentiles(h)
})

/** Times `run`; `h` gets the latencies `run` records. */
const timed = async (records: number, run: (h: hdr.Histogram) => Promise<unknown>): Promise<Measured> => {
  const h = histogram()
  const started = performance.now()
  await run(h)
  return measured(records, performance.now() - started, h)
}

const payload = (size: number, i: number) => {
  const value = Buffer.alloc(size, 120)
  value.write(String(i))
  return value
}

/** Every pre-built-batch scenario sends these keys and values, in batches of 500. */
const prebuilt = (size: number, records: number) =>
  Array.from({ length: Math.ceil(records / 500) }, (_, b) =>
    Array.from({ length: Math.min(500, records - b * 500) }, (_, j) => ({
      key: `k${(b * 500 + j) % 1000}`,
      value: payload(size, b * 500 + j)
    }))
  )

/** Sends the batches one after the other; records each batch's latency. */
const runBatches = async <B>(batches: ReadonlyArray<B>, send: (batch: B) => Promise<unknown>, h: hdr.Histogram) => {
  for (const batch of batches) {
    const start = process.hrtime.bigint()
    await send(batch)
    h.recordValue(micros(start))
  }
}

/** Raw kafkajs, idempotent, one request in flight, the pre-built batches. */
export const rawKafkajs = async (t: Target): Promise<Measured> => {
  const kafka = new kafkajs.Kafka({ clientId: "bench", brokers: [...t.brokers], logLevel: kafkajs.logLevel.NOTHING })
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const batches = prebuilt(t.size, t.records)
  try {
    return await timed(t.records, (h) =>
      runBatches(batches, (messages) => producer.send({ topic: t.topic, acks: -1, messages }), h)
    )
  } finally {
    await producer.disconnect()
  }
}

/** Raw @platformatic/kafka, idempotent, the pre-built batches. */
export const rawPlatformatic = async (t: Target): Promise<Measured> => {
  const client = new PlatformaticClient({ clientId: "bench", bootstrapBrokers: [...t.brokers], idempotent: true })
  const batches = prebuilt(t.size, t.records).map((batch) =>
    batch.map(({ key, value }) => ({ topic: t.topic, key: Buffer.from(key), value }))
  )
  await client.metadata({ topics: [t.topic] }) // connect outside the timed part, as kafkajs does
  try {
    return await timed(t.records, (h) => runBatches(batches, (messages) => client.send({ messages }), h))
  } finally {
    await client.close()
  }
}

/** The toolkit's driver alone (no Publisher), the same pre-built batches. */
export const driverBatches = (driver: DriverName) => async (t: Target) => {
  const batches = prebuilt(t.size, t.records).map((batch) =>
    batch.map(({ key, value }): ProducerRecord => ({ topic: t.topic, key: Buffer.from(key), value, headers: {} }))
  )
  const program = Effect.gen(function* () {
    const producer = yield* Producer
    yield* producer.send(batches[0]!.slice(0, 1)) // connect and fetch metadata outside the timed part
    return yield* Effect.promise(() =>
      timed(t.records, (h) => runBatches(batches, (batch) => Effect.runPromise(producer.send(batch)), h))
    )
  }).pipe(Effect.provide(drivers[driver]({ brokers: [...t.brokers], clientId: "bench" })))
  return Effect.runPromise(program)
}

/** How the Publisher is set up: over the driver alone, or over a Batcher with this many batches in flight. */
export interface Stack {
  readonly driver: DriverName
  readonly batcher?: { readonly maxInFlightBatches: number } | undefined
}

const publisherLayer = (brokers: ReadonlyArray<string>, stack: Stack) => {
  const producer = drivers[stack.driver]({ brokers: [...brokers], clientId: "bench" })
  const below = stack.batcher === undefined ? producer : Batcher.layer(stack.batcher).pipe(Layer.provide(producer))
  return Publisher.layer().pipe(Layer.provide(below))
}

/** JSON framing makes up the rest of the record size. */
const bodyFor = (size: number) => "x".repeat(Math.max(0, size - 40))

const benchTopic = (name: string) => Topic.make({ name, schema: BenchEvent, key: (e: BenchEvent) => e.key })

const eventsFor = (size: number, records: number) => {
  const body = bodyFor(size)
  return Array.from({ length: records }, (_, i) => new BenchEvent({ id: i, key: `k${i % 1000}`, body }))
}

/** Runs `body` with a connected Publisher (one publish first, outside the timed part). */
const withPublisher = (
  t: Target,
  stack: Stack,
  body: (publisher: Publisher.Publisher, topic: Topic.Topic<BenchEvent, unknown>) => Promise<Measured>
) => {
  const topic = benchTopic(t.topic) as Topic.Topic<BenchEvent, unknown>
  const program = Effect.gen(function* () {
    const publisher = yield* Publisher.Publisher
    yield* publisher.publish(topic, new BenchEvent({ id: -1, key: "warm", body: "" }))
    return yield* Effect.promise(() => body(publisher, topic))
  }).pipe(Effect.provide(publisherLayer(t.brokers, stack)))
  return Effect.runPromise(program)
}

/** `Publisher.publish` per event from `callers` concurrent fibers, as an Effect program calls it. */
export const perEvent = (stack: Stack, callers: number) => (t: Target) =>
  withPublisher(t, stack, (publisher, topic) => {
    const events = eventsFor(t.size, t.records)
    return timed(t.records, (h) => {
      const publishOne = (event: BenchEvent) =>
        Effect.suspend(() => {
          const start = process.hrtime.bigint()
          return publisher.publish(topic, event).pipe(Effect.tap(() => Effect.sync(() => h.recordValue(micros(start)))))
        })
      return Effect.runPromise(Effect.forEach(events, publishOne, { concurrency: callers, discard: true }))
    })
  })

/** `Publisher.publishAll` of the same events, one call per `chunk` events (one after the other). */
export const publishAll = (stack: Stack, chunk: number) => (t: Target) =>
  withPublisher(t, stack, (publisher, topic) => {
    const events = eventsFor(t.size, t.records)
    const chunks = Array.from({ length: Math.ceil(events.length / chunk) }, (_, i) =>
      events.slice(i * chunk, (i + 1) * chunk)
    )
    return timed(t.records, (h) =>
      runBatches(chunks, (events) => Effect.runPromise(publisher.publishAll(topic, events)), h)
    )
  })

/** `Stream.run(events, Publisher.sink(topic))`: the stream emits arrays of 500. */
export const sink = (stack: Stack) => (t: Target) =>
  withPublisher(t, stack, (publisher, topic) => {
    const events = eventsFor(t.size, t.records)
    return timed(t.records, async () => {
      const summary = await Effect.runPromise(
        Stream.run(Stream.fromIterable(events, { chunkSize: 500 }), Publisher.sink(topic)).pipe(
          Effect.provideService(Publisher.Publisher, publisher)
        )
      )
      if (summary.delivered !== t.records) throw new Error(`sink delivered ${summary.delivered} of ${t.records}`)
    })
  })

/** Java's ProducerPerformance: per-record send, acks=all, idempotence on, linger 5 ms (its own timing). */
export const java = async (t: Target): Promise<Measured> => {
  const run = await producerPerformance([
    "--topic",
    t.topic,
    "--num-records",
    String(t.records),
    "--record-size",
    String(t.size),
    "--throughput",
    "-1",
    "--producer-props",
    `bootstrap.servers=${t.brokers.join(",")}`,
    "acks=all",
    "enable.idempotence=true",
    "linger.ms=5"
  ])
  return {
    records: run.records,
    ms: (run.records / run.recordsPerSecond) * 1000,
    recordsPerSecond: Math.round(run.recordsPerSecond),
    latencyMs: run.latencyMs
  }
}

/** Median ms of 20 one-record sends, one after the other: shows the proxy's added latency is on. */
export const probeRoundTrip = async (brokers: ReadonlyArray<string>, topic: string): Promise<number> => {
  const kafka = new kafkajs.Kafka({
    clientId: "bench-probe",
    brokers: [...brokers],
    logLevel: kafkajs.logLevel.NOTHING
  })
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  try {
    const h = histogram()
    await runBatches(
      Array.from({ length: 21 }, (_, i) => [{ key: "probe", value: payload(100, i) }]),
      (messages) => producer.send({ topic, acks: -1, messages }),
      h
    )
    return percentiles(h).p50
  } finally {
    await producer.disconnect()
  }
}
