/**
 * `npm run bench:heap`: what one accepted publish keeps alive. HEAP_EVENTS (default 200,000) events offered to
 * `Publisher.publish` + Batcher with HEAP_CONCURRENCY (default 10,000) in flight, over a producer that answers
 * at once (no broker, no client: only the toolkit's own memory). Every 50,000 receipts it runs a full GC
 * (`--expose-gc`) and prints the live heap and the RSS; the live heap at 10,000 in flight over the one at the
 * end is the toolkit's cost per publish in flight. HEAP_SNAPSHOT=<file> writes a heap snapshot at 100,000.
 */
import v8 from "node:v8"
import { Effect, Layer } from "effect"
import { Batcher, Publisher, Topic } from "effect-kafka-publisher"
import { Producer } from "../src/Producer.ts"
import { BenchEvent } from "./shared.ts"

const total = Number(process.env.HEAP_EVENTS ?? 200_000)
const concurrency = Number(process.env.HEAP_CONCURRENCY ?? 10_000)
const snapshot = process.env.HEAP_SNAPSHOT
const topic = Topic.make({ name: "bench-heap", schema: BenchEvent, key: (e) => e.key })
const body = "x".repeat(60)
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with node --expose-gc (npm run bench:heap does)")

function* indices() {
  for (let i = 0; i < total; i++) yield i
}

const mb = (bytes: number) => Math.round(bytes / 1048576)
let offset = 0
const instant = Layer.succeed(
  Producer,
  Producer.of({
    send: (records) =>
      Effect.succeed(records.map((r) => ({ topic: r.topic, partition: 0, offset: String(offset++), timestamp: 0 }))),
    inFlight: Effect.succeed(0)
  })
)

let done = 0
const report = () => {
  gc()
  const { heapUsed, rss } = process.memoryUsage()
  console.log(
    JSON.stringify({
      receipts: done,
      inFlight: Math.min(concurrency, total - done),
      liveHeapMb: mb(heapUsed),
      rssMb: mb(rss)
    })
  )
}

const program = Effect.gen(function* () {
  const publisher = yield* Publisher.Publisher
  yield* Effect.forEach(
    indices(),
    (i) =>
      publisher.publish(topic, new BenchEvent({ id: i, key: `k${i % 1000}`, body })).pipe(
        Effect.tap(() =>
          Effect.sync(() => {
            done++
            if (done === 100_000 && snapshot !== undefined) v8.writeHeapSnapshot(snapshot)
            if (done % 50_000 === 0) report()
          })
        )
      ),
    { concurrency, discard: true }
  )
}).pipe(Effect.provide(Publisher.layer().pipe(Layer.provide(Batcher.layer()), Layer.provide(instant))))

Effect.runPromise(program).then(report)
