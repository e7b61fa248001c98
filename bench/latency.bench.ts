/**
 * The latency benchmark, run by `npm run bench` in a process of its own (so no earlier scenario's garbage
 * is collected during it): a steady 1,000 events/s (10 per 10 ms tick) for RATE_SECONDS (default 10)
 * through Publisher + Batcher (default linger, 5 ms) on the driver LATENCY_DRIVER names (kafkajs |
 * platformatic), to LATENCY_TOPIC on KAFKA_BROKERS, after a 2 s warm-up at the same rate. Each publish's
 * latency from its start goes into an HDR histogram. Prints one JSON line: percentiles in ms, records/s.
 */
import { Effect, Layer } from "effect"
import { Batcher, Publisher, Topic } from "effect-kafka-publisher"
import type * as hdr from "hdr-histogram-js"
import { BenchEvent, driverNamed, drivers, histogram, percentiles } from "./shared.ts"

const brokers = (process.env.KAFKA_BROKERS ?? "").split(",")
const topicName = process.env.LATENCY_TOPIC ?? "bench-latency"
const driver = driverNamed(process.env.LATENCY_DRIVER)
const seconds = Number(process.env.RATE_SECONDS ?? 10)

const topic = Topic.make({ name: topicName, schema: BenchEvent, key: (e) => e.key })
const body = "x".repeat(60) // 100 B records

const producer = drivers[driver]({ brokers, clientId: "bench-latency" })

const program = Effect.gen(function* () {
  const publisher = yield* Publisher.Publisher
  /** `total` publishes at 1,000/s; latencies (µs) into `h` when given. */
  const steady = (total: number, first: number, h: hdr.Histogram | undefined) =>
    Effect.promise(async () => {
      const started = performance.now()
      const pending: Array<Promise<void>> = []
      for (let tick = 0; tick * 10 < total; tick++) {
        const wait = started + tick * 10 - performance.now()
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
        for (let j = 0; j < 10; j++) {
          const id = first + tick * 10 + j
          const start = process.hrtime.bigint()
          pending.push(
            Effect.runPromise(publisher.publish(topic, new BenchEvent({ id, key: `k${id % 1000}`, body }))).then(() =>
              h?.recordValue(Number((process.hrtime.bigint() - start) / 1000n))
            )
          )
        }
      }
      await Promise.all(pending)
      return performance.now() - started
    })
  yield* steady(2_000, 0, undefined) // warm-up: connections, metadata, JIT
  const h = histogram()
  const total = seconds * 1000
  const ms = yield* steady(total, 2_000, h)
  return {
    driver,
    records: total,
    recordsPerSecond: Math.round((total / ms) * 1000),
    latencyMs: percentiles(h)
  }
}).pipe(Effect.provide(Publisher.layer().pipe(Layer.provide(Batcher.layer()), Layer.provide(producer))))

Effect.runPromise(program).then(
  (result) => console.log(JSON.stringify(result)),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
