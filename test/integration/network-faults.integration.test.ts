// Issue 12: network faults between the client and a single broker, injected by toxiproxy (testbed/toxiproxy.ts,
// `startCluster({ proxy: true })`). Per fault, the variants (driver x Batcher) run at the same time against the
// same faulty proxy, each on its own topic, and every event is accounted for by reading both topics back.
// The short timeouts (a publish's bound is 25 s), the publisher and the invariants are networkFaults.ts's.
import { spawnSync } from "node:child_process"
import { afterAll, assert, beforeAll, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { Publisher, Topic } from "effect-kafka-publisher"
import { TopicReader } from "effect-kafka-publisher/testing"
import { type KafkaCluster, startCluster } from "../../testbed/KafkaCluster.ts"
import type { ToxicProxy } from "../../testbed/toxiproxy.ts"
import { kafkaVersion } from "./broker.ts"
import {
  assertFaultInvariants,
  describeWithToxiproxy,
  faultDriverLayer,
  faultPublisherLayer,
  label,
  pacedPublishes,
  type Variant
} from "./networkFaults.ts"
import { assertSendInvariants, runPipelined, sendSummary } from "./pipelinedSends.ts"
import { createTopic } from "./realHarness.ts"
import { type Counts, count, summary } from "./reliabilityCounts.ts"

class Event extends Schema.Class<Event>("Event")({ id: Schema.Int, userId: Schema.String }) {}

const kcatProblem = (): string | undefined =>
  spawnSync("kcat", ["-V"], { stdio: "ignore" }).status === 0 ? undefined : "kcat is not installed"

/** The ids of the topic as kcat reads them (a reader nobody here wrote). */
const kcatIds = (bootstrap: string, topic: string): Array<number> => {
  const result = spawnSync("kcat", ["-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\\n"], {
    encoding: "utf8",
    timeout: 60_000
  })
  if (result.status !== 0) throw new Error(`kcat failed: ${result.stderr}`)
  return result.stdout
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => (JSON.parse(line) as { id: number }).id)
}

describeWithToxiproxy("network faults (toxiproxy, one broker)", "client <-> broker", () => {
  let cluster: KafkaCluster
  beforeAll(async () => {
    cluster = await startCluster({ version: kafkaVersion(), proxy: true })
  }, 180_000)
  afterAll(async () => {
    await cluster?.stop()
  })
  const proxy = (): ToxicProxy => cluster.proxies!.get(1)!.client

  /** One variant's load: `total` publishes from 16 fibers, about 300/s; each publish's duration is kept. */
  const load = (v: Variant, name: string, total: number) =>
    Effect.gen(function* () {
      yield* createTopic(cluster.brokers, name, { partitions: 3 })
      yield* createTopic(cluster.brokers, `${name}.dlt`, { partitions: 1 })
      const topic = Topic.make({ name, schema: Event, key: (e) => e.userId })
      const events = Array.from({ length: total }, (_, id) => new Event({ id, userId: `user-${id % 11}` }))
      return yield* pacedPublishes(yield* Publisher.Publisher, topic, events)
    }).pipe(Effect.provide(faultPublisherLayer(v, cluster.proxyBrokers!, `${name}-client`)))

  /** Both drivers' sends, several in flight (pipelinedSends.ts), on a topic each: what the Producer contract keeps. */
  const pipelined = (fault: string, stamp: number) =>
    Effect.forEach(
      ["kafkajs", "platformatic"] as const,
      (driver) =>
        Effect.gen(function* () {
          const name = `net-${fault}-sends-${driver}-${stamp}`.replace(/[^A-Za-z0-9.-]+/g, "-")
          yield* createTopic(cluster.brokers, name, { partitions: 3 })
          const layer = faultDriverLayer(driver, cluster.proxyBrokers!, `${name}-client`)
          return { driver, audit: yield* runPipelined(layer, cluster.brokers, name) }
        }),
      { concurrency: "unbounded" }
    )

  /**
   * Runs the variants at once while `fault` runs beside them, and both drivers' pipelined sends; prints and
   * returns each variant's counts, after checking every invariant.
   */
  const scenario = (fault: string, variants: ReadonlyArray<Variant>, total: number, inject: Effect.Effect<void>) =>
    Effect.gen(function* () {
      const stamp = Date.now()
      const named = variants.map((v) => ({
        v,
        name: `net-${fault}-${label(v)}-${stamp}`.replace(/[^A-Za-z0-9.-]+/g, "-")
      }))
      const [results, , sends] = yield* Effect.all(
        [
          Effect.forEach(named, ({ v, name }) => load(v, name, total), { concurrency: "unbounded" }),
          Effect.sleep("300 millis").pipe(Effect.andThen(inject)),
          pipelined(fault, stamp)
        ],
        { concurrency: 3 }
      ).pipe(Effect.ensuring(Effect.promise(() => cluster.toxiproxy!.reset())))
      for (const { driver, audit } of sends)
        console.log(sendSummary(`${fault}, ${driver} sends, Kafka ${kafkaVersion()}`, audit))
      for (const { driver, audit } of sends) assertSendInvariants(`${driver} sends`, audit)
      const rows: Array<{ variant: string; name: string; counts: Counts; longestMs: number }> = []
      for (const [i, { v, name }] of named.entries()) {
        const { outcomes, longestMs } = results[i]!
        const counts = yield* count(cluster.brokers, name, `${name}.dlt`, outcomes)
        console.log(
          `${summary(`${fault}, ${label(v)}, Kafka ${kafkaVersion()}`, counts)}, longest publish ${longestMs} ms`
        )
        rows.push({ variant: label(v), name, counts, longestMs })
      }
      for (const row of rows) assertFaultInvariants(row.variant, row.counts, row.longestMs)
      return rows
    })

  const faultFor = (ms: number, apply: () => Promise<void>) =>
    Effect.promise(apply).pipe(
      Effect.andThen(Effect.sleep(`${ms} millis`)),
      Effect.andThen(Effect.promise(() => cluster.toxiproxy!.reset()))
    )

  it.live(
    "latency 50 ms +- 20 ms both ways: everything delivered",
    () =>
      Effect.gen(function* () {
        const rows = yield* scenario(
          "latency 50 ms",
          [
            { driver: "kafkajs", batcher: false },
            { driver: "platformatic", batcher: true }
          ],
          400,
          faultFor(4_000, async () => {
            await proxy().latency({ latencyMs: 50, jitterMs: 20 })
            await proxy().latency({ latencyMs: 50, jitterMs: 20, direction: "upstream" })
          })
        )
        for (const row of rows) assert.strictEqual(row.counts.delivered, 400, row.variant)
        // a reader nobody here wrote agrees with the project's reader
        const kcat = kcatProblem()
        if (kcat !== undefined && process.env.CI === "true") throw new Error(`CI=true and ${kcat}`)
        if (kcat === undefined) {
          const name = rows[0]!.name
          const ours = (yield* TopicReader.readAll({ brokers: cluster.brokers, topic: name })).length
          const theirs = kcatIds(cluster.bootstrap, name)
          assert.strictEqual(theirs.length, ours)
          assert.strictEqual(new Set(theirs).size, 400)
        } else console.warn(`kcat read-back skipped: ${kcat}`)
      }),
    { timeout: 120_000 }
  )

  it.live(
    "black hole 3 s (shorter than the request timeout), then 8 s (longer)",
    () =>
      Effect.gen(function* () {
        const variants: Array<Variant> = [
          { driver: "kafkajs", batcher: true },
          { driver: "platformatic", batcher: false }
        ]
        for (const ms of [3_000, 8_000]) {
          const rows = yield* scenario(
            `black hole ${ms / 1000} s`,
            variants,
            300,
            faultFor(ms, () => proxy().blackHole())
          )
          for (const row of rows) assert.strictEqual(row.counts.published, 300)
        }
      }),
    { timeout: 180_000 }
  )

  it.live(
    "reset_peer for 3 s, then connection refused (proxy down) for 3 s",
    () =>
      Effect.gen(function* () {
        const variants: Array<Variant> = [
          { driver: "kafkajs", batcher: false },
          { driver: "platformatic", batcher: true }
        ]
        yield* scenario(
          "reset_peer 3 s",
          variants,
          300,
          faultFor(3_000, () => proxy().resetPeer())
        )
        yield* scenario(
          "connection refused 3 s",
          variants,
          300,
          faultFor(3_000, () => proxy().down())
        )
      }),
    { timeout: 180_000 }
  )

  it.live(
    "slicer and bandwidth limit (64 KB/s) for 4 s",
    () =>
      Effect.gen(function* () {
        yield* scenario(
          "slicer + bandwidth",
          [
            { driver: "kafkajs", batcher: true },
            { driver: "platformatic", batcher: false }
          ],
          300,
          faultFor(4_000, async () => {
            await proxy().slicer({ averageSize: 64, sizeVariation: 32, delayUs: 100, direction: "upstream" })
            await proxy().bandwidth({ rateKBps: 64 })
          })
        )
      }),
    { timeout: 120_000 }
  )

  it.live(
    "black hole longer than the delivery timeout: dead-letter marked possiblyDelivered or an ambiguous typed error",
    () =>
      Effect.gen(function* () {
        const rows = yield* scenario(
          "black hole 30 s",
          // all four: an earlier kafkajs + Batcher run held a caller 36.5 s past this bound (not reproduced since)
          [
            { driver: "kafkajs", batcher: false },
            { driver: "kafkajs", batcher: true },
            { driver: "platformatic", batcher: false },
            { driver: "platformatic", batcher: true }
          ],
          200,
          faultFor(30_000, () => proxy().blackHole())
        )
        // the dead-letter topic is behind the same black hole: the publishes in flight end as an ambiguous error
        for (const row of rows) assert.isAbove(row.counts.errors + row.counts.deadLettered, 0, row.variant)
        for (const row of rows) assert.strictEqual(row.counts.errors, row.counts.ambiguousErrors, row.variant)
      }),
    { timeout: 180_000 }
  )
})
