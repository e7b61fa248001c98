/**
 * The memory benchmark, run by `npm run bench` in a process of its own: MEMORY_EVENTS (default 1,000,000)
 * events offered to `Publisher.publish` as fast as the API accepts them (MEMORY_CONCURRENCY publishes in
 * flight, default 10,000: the Batcher's bounded queue, `maxQueued`, pushes back there), through the driver MEMORY_DRIVER names (kafkajs | platformatic)
 * to MEMORY_TOPIC on KAFKA_BROKERS. Prints one JSON line: peak RSS and heap of this process, seconds,
 * receipts delivered.
 */
import { Effect, Layer } from "effect"
import { Batcher, Publisher, Topic } from "effect-kafka-publisher"
import { BenchEvent, driverNamed, drivers } from "./shared.ts"

const brokers = (process.env.KAFKA_BROKERS ?? "").split(",")
const topicName = process.env.MEMORY_TOPIC ?? "bench-memory"
const driver = driverNamed(process.env.MEMORY_DRIVER)
const total = Number(process.env.MEMORY_EVENTS ?? 1_000_000)
const concurrency = Number(process.env.MEMORY_CONCURRENCY ?? 10_000)

const topic = Topic.make({ name: topicName, schema: BenchEvent, key: (e) => e.key })
const body = "x".repeat(60)

function* indices() {
  for (let i = 0; i < total; i++) yield i
}

let peakRss = 0
let peakHeap = 0
const sample = () => {
  const usage = process.memoryUsage()
  peakRss = Math.max(peakRss, usage.rss)
  peakHeap = Math.max(peakHeap, usage.heapUsed)
}
const sampler = setInterval(sample, 25)

const producer = drivers[driver]({ brokers, clientId: "bench-memory" })

let delivered = 0
const started = performance.now()
const progress = setInterval(() => {
  console.error(`[memory] ${delivered.toLocaleString("en-US")} delivered, RSS ${Math.round(peakRss / 1048576)} MB`)
}, 5000)

const program = Effect.gen(function* () {
  const publisher = yield* Publisher.Publisher
  yield* Effect.forEach(
    indices(),
    (i) =>
      publisher.publish(topic, new BenchEvent({ id: i, key: `k${i % 1000}`, body })).pipe(
        Effect.tap((receipt) =>
          Effect.sync(() => {
            if (receipt._tag === "Delivered") delivered++
          })
        )
      ),
    { concurrency, discard: true }
  )
}).pipe(Effect.provide(Publisher.layer().pipe(Layer.provide(Batcher.layer()), Layer.provide(producer))))

Effect.runPromise(program).then(
  () => {
    sample()
    clearInterval(sampler)
    clearInterval(progress)
    const mb = (bytes: number) => Math.round(bytes / 1048576)
    console.log(
      JSON.stringify({
        driver,
        concurrency,
        events: total,
        seconds: (performance.now() - started) / 1000,
        peakRssMb: mb(peakRss),
        peakHeapMb: mb(peakHeap),
        delivered
      })
    )
  },
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
