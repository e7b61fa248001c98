/**
 * FakeKafka throughput: records/s through the in-memory broker's `Producer`, in batches of 500 and one
 * record per send, for three kinds of keys, against a baseline measured in the same run (a bare loop that
 * pushes the same records' metadata into an array).
 *
 *   node bench/fake-kafka.bench.ts            (or npm run bench:fake; RECORDS=n to change the count)
 *
 * Keys: "100 keys" repeats 100 user ids (the fake remembers a key's partition, as most real keys repeat);
 * "distinct keys" cycles through 100,000 keys, more than the fake remembers, so every record runs kafkajs's
 * murmur2; "no key" is kafkajs's round-robin.
 */
import { Effect } from "effect"
import { FakeKafka } from "effect-kafka-publisher/testing"
import type { ProducerRecord, RecordMetadata } from "../src/Producer.ts"

const total = Number(process.env.RECORDS ?? 2_000_000)
const batch = 500
const value = new Uint8Array(100).fill(120)
const encoder = new TextEncoder()

/** `count` records whose keys come from `keyOf`, cut into sends of `perSend`. */
const sends = (count: number, perSend: number, keyOf: (i: number) => Uint8Array | null) => {
  const records: Array<ProducerRecord> = Array.from({ length: count }, (_, i) => ({
    topic: "bench",
    key: keyOf(i),
    value,
    headers: {}
  }))
  const out: Array<ReadonlyArray<ProducerRecord>> = []
  for (let i = 0; i < count; i += perSend) out.push(records.slice(i, i + perSend))
  return out
}

const workloads = {
  "100 keys": (perSend: number) => sends(batch, perSend, (i) => encoder.encode(`user-${i % 100}`)),
  "distinct keys": (perSend: number) => sends(100_000, perSend, (i) => encoder.encode(`order-${i}`)),
  "no key": (perSend: number) => sends(batch, perSend, () => null)
}

const rate = (records: number, ms: number) => Math.round((records / ms) * 1000)

/** The same records' metadata pushed into an array: the least any in-memory log can do. */
const baseline = (): number => {
  const chunks = workloads["100 keys"](batch)
  let sink: Array<RecordMetadata> = []
  const start = performance.now()
  for (let sent = 0; sent < total; ) {
    for (const chunk of chunks) {
      for (const record of chunk) {
        sink.push({ topic: record.topic, partition: 0, offset: String(sink.length), timestamp: Date.now() })
      }
      sent += chunk.length
    }
    if (sink.length >= 1_000_000) sink = []
  }
  return rate(total, performance.now() - start)
}

const throughFake = (chunks: ReadonlyArray<ReadonlyArray<ProducerRecord>>) =>
  Effect.gen(function* () {
    const fake = yield* FakeKafka.make({ topics: { bench: { partitions: 6 } } })
    const send = fake.producer.send
    let sent = 0
    let sinceReset = 0
    const start = performance.now()
    while (sent < total) {
      for (const chunk of chunks) {
        yield* send(chunk)
        sent += chunk.length
        sinceReset += chunk.length
      }
      // keep memory bounded: the bench measures the send path, not a growing heap
      if (sinceReset >= 1_000_000) {
        yield* fake.reset
        sinceReset = 0
      }
    }
    return rate(sent, performance.now() - start)
  })

const main = Effect.gen(function* () {
  console.log(
    `FakeKafka: ${total.toLocaleString("en")} records of ${value.length} bytes, 6 partitions, node ${process.version}`
  )
  baseline() // warm-up
  yield* throughFake(workloads["100 keys"](batch))
  const base = baseline()
  console.log(
    `${"baseline (push metadata into an array)".padEnd(40)} ${base.toLocaleString("en").padStart(11)} records/s`
  )
  for (const [name, workload] of Object.entries(workloads)) {
    for (const perSend of [batch, 1]) {
      const perSecond = yield* throughFake(workload(perSend))
      const label = `${name}, ${perSend === 1 ? "1 record per send" : `batches of ${perSend}`}`
      console.log(
        `${label.padEnd(40)} ${perSecond.toLocaleString("en").padStart(11)} records/s  (${(perSecond / base).toFixed(2)}x baseline)`
      )
    }
  }
})

Effect.runPromise(main)
