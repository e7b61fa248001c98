/**
 * FakeKafka throughput: records/s through the in-memory broker's Producer, in batches of 500 and one record
 * per send, against a baseline measured in the same run (the same records pushed into an array).
 *
 *   node bench/fake-kafka.bench.ts            (or npm run bench:fake)
 */
import { Effect } from "effect"
import { Producer, type ProducerRecord } from "../src/Producer.ts"
import * as FakeKafka from "../src/testing/FakeKafka.ts"

const total = Number(process.env.RECORDS ?? 2_000_000)
const batch = 500
const value = new Uint8Array(100).fill(120)
const records: Array<ProducerRecord> = Array.from({ length: batch }, (_, i) => ({
  topic: "bench",
  key: new TextEncoder().encode(`user-${i % 100}`),
  value,
  headers: {}
}))

const rate = (n: number, ms: number) => Math.round((n / ms) * 1000)

const baseline = () => {
  const sink: Array<unknown> = []
  const start = performance.now()
  for (let sent = 0; sent < total; sent += batch) {
    for (const r of records) sink.push({ ...r, partition: 0, offset: String(sink.length) })
    if (sink.length > 1_000_000) sink.length = 0
  }
  return rate(total, performance.now() - start)
}

const throughFake = (perSend: number) =>
  Effect.gen(function* () {
    const producer = yield* Producer
    const fake = yield* FakeKafka.FakeKafka
    const chunk = records.slice(0, perSend)
    const start = performance.now()
    for (let sent = 0; sent < total; sent += perSend) {
      yield* producer.send(chunk)
      if (sent % 1_000_000 === 0) yield* fake.reset // keep memory bounded: the bench measures the send path
    }
    return rate(total, performance.now() - start)
  }).pipe(Effect.provide(FakeKafka.layer({ topics: { bench: { partitions: 6 } } })))

const main = Effect.gen(function* () {
  console.log(`FakeKafka: ${total.toLocaleString()} records of ${value.length} bytes, 6 partitions`)
  const base = baseline()
  const batched = yield* throughFake(batch)
  const single = yield* throughFake(1)
  console.log(`baseline (array push)        ${base.toLocaleString().padStart(12)} records/s`)
  console.log(
    `FakeKafka, batches of ${batch}    ${batched.toLocaleString().padStart(12)} records/s  (${(batched / base).toFixed(2)}x baseline)`
  )
  console.log(
    `FakeKafka, 1 record per send ${single.toLocaleString().padStart(12)} records/s  (${(single / base).toFixed(2)}x baseline)`
  )
})

Effect.runPromise(main)
