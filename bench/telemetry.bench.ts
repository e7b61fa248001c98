/**
 * What exporting costs on the hot path: `npm run bench:hotpath`'s publish path (Publisher + Batcher, linger
 * 5 ms, over FakeKafka with a 2 ms send latency, CALLERS fibers) in three variants, alternated per round so a
 * noisy neighbour hits all three; the first round is a warm-up, the median of the others is reported.
 *
 *   node --conditions=effect-kafka-publisher-source bench/telemetry.bench.ts
 *                           EVENTS (100000), CALLERS (256), ROUNDS (3)
 *
 * - none:  no telemetry layer (Effect's own in-process tracer: spans are made, nothing leaves)
 * - off:   `Telemetry.layerConfig` with no OTEL_* endpoint (must be the same as none: an empty layer)
 * - on:    `Telemetry.layer` exporting traces, metrics and logs over OTLP/HTTP (the SDK's defaults: batch span
 *          processor, 2,048 spans queued at most, spans beyond that dropped) to a receiver in another process
 *          that answers 200 to everything, so its CPU is not counted
 *
 * CPU µs per publish: process CPU time (user + system, every thread: GC and the exporter's JSON encoding
 * included) over the publishes of the round.
 */
import { spawn } from "node:child_process"
import { Effect, Layer } from "effect"
import { Batcher, Publisher, Topic } from "effect-kafka-publisher"
import { Telemetry } from "effect-kafka-publisher/opentelemetry"
import { FakeKafka } from "effect-kafka-publisher/testing"
import { BenchEvent } from "./shared.ts"

const events = Number(process.env.EVENTS ?? 100_000)
const callers = Number(process.env.CALLERS ?? 256)
const rounds = Number(process.env.ROUNDS ?? 3)

const topic = Topic.make({ name: "bench", schema: BenchEvent, key: (e) => e.key })
const pool = Array.from({ length: 1000 }, (_, i) => new BenchEvent({ id: i, key: `k${i}`, body: "x".repeat(60) }))

/** An OTLP sink in its own process: answers 200 `{}` to every POST; resolves with its URL and a stop. */
const startSink = () =>
  new Promise<{ url: string; stop: () => void }>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        "-e",
        `const s = require("node:http").createServer((q, r) => { q.resume(); q.on("end", () => r.writeHead(200, { "content-type": "application/json" }).end("{}")) });
         s.listen(0, "127.0.0.1", () => console.log(s.address().port))`
      ],
      { stdio: ["ignore", "pipe", "inherit"] }
    )
    child.once("error", reject)
    child.stdout.once("data", (chunk: Buffer) =>
      resolve({ url: `http://127.0.0.1:${chunk.toString().trim()}`, stop: () => child.kill("SIGKILL") })
    )
  })

const variants = (sink: string): ReadonlyArray<readonly [string, Layer.Layer<never>]> => [
  ["none", Layer.empty],
  ["off", Telemetry.layer({ serviceName: "bench" })],
  ["on", Telemetry.layer({ serviceName: "bench", endpoint: sink })]
]

/** One round of a variant: CALLERS fibers publish until `total` events are published, inside the telemetry layer. */
const round = (telemetry: Layer.Layer<never>, total: number) =>
  Effect.gen(function* () {
    const publisher = yield* Publisher.Publisher
    const fake = yield* FakeKafka.FakeKafka
    yield* fake.setLatency(2)
    let next = 0
    const caller = Effect.whileLoop({
      while: () => next < total,
      body: () =>
        publisher.publish(topic, pool[next++ % pool.length]!).pipe(
          // the fake forgets what it stored: the broker's memory is not the path's
          Effect.tap(() => (next % 10_000 === 0 ? Effect.andThen(fake.reset, fake.setLatency(2)) : Effect.void))
        ),
      step: () => {}
    })
    const cpu = process.cpuUsage()
    const started = performance.now()
    yield* Effect.forEach(Array.from({ length: callers }), () => caller, { concurrency: "unbounded", discard: true })
    const used = process.cpuUsage(cpu)
    return { ms: performance.now() - started, cpuMicros: used.user + used.system }
  }).pipe(
    Effect.provide(
      Publisher.layer().pipe(
        Layer.provide(Batcher.layer({ linger: "5 millis" })),
        Layer.provideMerge(FakeKafka.layer({ topics: { bench: { partitions: 6 } } }))
      )
    ),
    Effect.provide(telemetry)
  )

const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits })

const main = Effect.gen(function* () {
  const sink = yield* Effect.acquireRelease(
    Effect.promise(() => startSink()),
    (s) => Effect.sync(s.stop)
  )
  console.log(
    `telemetry on the hot path: Publisher + Batcher over FakeKafka (2 ms), ${fmt(events)} events, ${callers} callers, ${rounds} rounds, node ${process.version}`
  )
  const results = new Map<string, Array<{ ms: number; cpuMicros: number }>>()
  for (let r = 0; r <= rounds; r++) {
    for (const [name, layer] of variants(sink.url)) {
      const run = yield* round(layer, r === 0 ? Math.min(events, 30_000) : events)
      if (r === 0) continue
      results.set(name, [...(results.get(name) ?? []), run])
      console.log(
        `  round ${r} ${name.padEnd(4)} ${fmt((events / run.ms) * 1000).padStart(9)} publishes/s ${fmt(run.cpuMicros / events, 1).padStart(6)} µs CPU/publish`
      )
    }
  }
  const medianCpu = (name: string) => {
    const sorted = [...(results.get(name) ?? [])].sort((a, b) => a.cpuMicros - b.cpuMicros)
    return sorted[sorted.length >> 1]!
  }
  const none = medianCpu("none")
  console.log("median round (by CPU per publish):")
  for (const name of ["none", "off", "on"]) {
    const m = medianCpu(name)
    console.log(
      `  ${name.padEnd(4)} ${fmt((events / m.ms) * 1000).padStart(9)} publishes/s ${fmt(m.cpuMicros / events, 1).padStart(6)} µs CPU/publish` +
        `  (${(m.cpuMicros / none.cpuMicros).toFixed(2)}x none, ${m.cpuMicros >= none.cpuMicros ? "+" : ""}${fmt((m.cpuMicros - none.cpuMicros) / events, 1)} µs)`
    )
  }
})

Effect.runPromise(Effect.scoped(main)).catch((error) => {
  console.error(error)
  process.exit(1)
})
