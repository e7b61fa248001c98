/**
 * Property-based fault runs against a real single-node cluster whose client listener is behind toxiproxy
 * (issue 12 item 4): fast-check picks a load and a sequence of 1-3 faults (toxics, a SIGSTOP, a kill -9 and
 * restart); `runFaultCase` publishes while the faults happen one after the other (and sends through the same
 * driver with several sends in flight, pipelinedSends.ts), heals everything, waits for the publishes to end, reads
 * the topics back (reliabilityCounts.ts) and returns the counts the invariants of networkFaults.ts and
 * pipelinedSends.ts are checked on. `faultRunSettings` reads the seed, the number of runs and the time limit from
 * the environment, so a failing sequence can be replayed.
 */
import { Effect, Exit, References, Schema } from "effect"
import { Publisher, Topic } from "effect-kafka-publisher"
import fc from "fast-check"
import type { KafkaCluster } from "../../testbed/KafkaCluster.ts"
import type { Direction, ToxicProxy } from "../../testbed/toxiproxy.ts"
import { faultDriverLayer, faultPublisherLayer, label, pacedPublishes, type Variant } from "./networkFaults.ts"
import { runPipelined, type SendAudit } from "./pipelinedSends.ts"
import { createTopic } from "./realHarness.ts"
import { type Counts, count } from "./reliabilityCounts.ts"

/** Which way a toxic acts, or both ways at once. */
export type Way = Direction | "both"

/** One fault, held for `ms` and then healed (a kill is healed by the restart, which takes what it takes). */
export type FaultStep =
  | {
      readonly _tag: "latency"
      readonly latencyMs: number
      readonly jitterMs: number
      readonly way: Way
      readonly ms: number
    }
  | { readonly _tag: "blackHole"; readonly way: Way; readonly ms: number }
  | { readonly _tag: "resetPeer"; readonly way: Way; readonly ms: number }
  | { readonly _tag: "slowLink"; readonly rateKBps: number; readonly sliceBytes: number; readonly ms: number }
  | { readonly _tag: "down"; readonly ms: number }
  | { readonly _tag: "pause"; readonly ms: number }
  | { readonly _tag: "kill"; readonly ms: number }

/** The load one run publishes: `rate` a second from `fibers` fibers through the variant's driver. */
export interface Load extends Variant {
  readonly fibers: number
  readonly rate: number
}

/** One generated case: a load and the faults it meets, in order. */
export interface FaultCase {
  readonly load: Load
  readonly steps: ReadonlyArray<FaultStep>
}

/** A kill's restart waits for the old broker session to expire (6 s with `quickRestart`): what a kill costs. */
const restartEstimateMs = 8_000
/** Time between two faults, and publishing before the first and after the last one. */
const gapMs = 500
/** At most this much fault time in one case (restart estimate included): keeps a CI run short. */
const maxFaultMs = 10_000
/** Long cases (FAULT_LONG=1): stalls up to 30 s, past the delivery timeout, so dead-letter paths are taken too. */
const longStallMs = 30_000
const maxLongFaultMs = 45_000

const way: fc.Arbitrary<Way> = fc.constantFrom("downstream", "upstream", "both")
const held = (min: number, max: number) => fc.integer({ min, max }).map((s) => s * 500)

/**
 * A fault step: its kind and how long it is held, in steps of 0.5 s. `long`: a black hole, the proxy down or a
 * SIGSTOP may last up to 30 s instead of 4, 3 and 5 s.
 */
export const faultStep = (long: boolean): fc.Arbitrary<FaultStep> => {
  const stall = (maxMs: number) => held(2, (long ? longStallMs : maxMs) / 500)
  return fc.oneof(
    fc.record({
      _tag: fc.constant("latency" as const),
      latencyMs: fc.integer({ min: 10, max: 300 }),
      jitterMs: fc.integer({ min: 0, max: 100 }),
      way,
      ms: held(2, 6)
    }),
    fc.record({ _tag: fc.constant("blackHole" as const), way, ms: stall(4_000) }),
    fc.record({ _tag: fc.constant("resetPeer" as const), way, ms: held(2, 6) }),
    fc.record({
      _tag: fc.constant("slowLink" as const),
      rateKBps: fc.integer({ min: 16, max: 256 }),
      sliceBytes: fc.integer({ min: 16, max: 256 }),
      ms: held(2, 6)
    }),
    fc.record({ _tag: fc.constant("down" as const), ms: stall(3_000) }),
    fc.record({ _tag: fc.constant("pause" as const), ms: stall(5_000) }),
    fc.record({ _tag: fc.constant("kill" as const), ms: held(0, 4) })
  )
}

const costMs = (step: FaultStep) => step.ms + (step._tag === "kill" ? restartEstimateMs : 0)
/** How long a case's faults are expected to take, gaps and the restarts included. */
export const plannedMs = (steps: ReadonlyArray<FaultStep>) =>
  steps.reduce((total, step) => total + costMs(step) + gapMs, gapMs)

/** A load: driver, Batcher, 4 to 32 fibers, 100 to 400 publishes a second. */
export const load: fc.Arbitrary<Load> = fc.record({
  driver: fc.constantFrom("kafkajs" as const, "platformatic" as const),
  batcher: fc.boolean(),
  fibers: fc.integer({ min: 4, max: 32 }),
  rate: fc.integer({ min: 10, max: 40 }).map((r) => r * 10)
})

/** A case: a load and 1 to 3 faults, at most 10 s of them (45 s when `long`). */
export const faultCase = (long: boolean): fc.Arbitrary<FaultCase> =>
  fc.record({
    load,
    steps: fc
      .array(faultStep(long), { minLength: 1, maxLength: 3 })
      .filter((steps) => steps.reduce((t, s) => t + costMs(s), 0) <= (long ? maxLongFaultMs : maxFaultMs))
  })

const ways = (w: Way): ReadonlyArray<Direction> => (w === "both" ? ["downstream", "upstream"] : [w])

/** What a step looks like in a counts line, e.g. "black hole upstream 2.5 s". */
export const describeStep = (step: FaultStep): string => {
  const s = `${step.ms / 1000} s`
  switch (step._tag) {
    case "latency":
      return `latency ${step.latencyMs}+-${step.jitterMs} ms ${step.way} ${s}`
    case "blackHole":
      return `black hole ${step.way} ${s}`
    case "resetPeer":
      return `reset_peer ${step.way} ${s}`
    case "slowLink":
      return `bandwidth ${step.rateKBps} KB/s + slicer ${step.sliceBytes} B ${s}`
    case "down":
      return `proxy down ${s}`
    case "pause":
      return `SIGSTOP ${s}`
    case "kill":
      return `kill -9, restart after ${s}`
  }
}

/** What a load looks like in a counts line, e.g. "kafkajs+Batcher, 16 fibers, 300/s". */
export const describeLoad = (l: Load): string => `${label(l)}, ${l.fibers} fibers, ${l.rate}/s`

const inject = (proxy: ToxicProxy, step: FaultStep) =>
  Effect.promise(async () => {
    switch (step._tag) {
      case "latency":
        for (const direction of ways(step.way))
          await proxy.latency({ latencyMs: step.latencyMs, jitterMs: step.jitterMs, direction })
        return
      case "blackHole":
        for (const direction of ways(step.way)) await proxy.blackHole({ direction })
        return
      case "resetPeer":
        for (const direction of ways(step.way)) await proxy.resetPeer({ direction })
        return
      case "slowLink":
        await proxy.bandwidth({ rateKBps: step.rateKBps })
        await proxy.slicer({
          averageSize: step.sliceBytes,
          sizeVariation: Math.floor(step.sliceBytes / 2),
          direction: "upstream"
        })
        return
      case "down":
        return proxy.down()
    }
  })

/** Every fault off: toxics removed, the proxy up, the broker resumed, or restarted when it is not running. */
export const healAll = (cluster: KafkaCluster) =>
  Effect.promise(async () => {
    await cluster.toxiproxy!.reset()
    const node = cluster.nodes[0]!
    if (node.state === "paused") cluster.resume(node.id)
    if (node.state === "exited") await cluster.restart(node.id)
  })

/** Applies one step, holds it, heals it. */
const applyStep = (cluster: KafkaCluster, step: FaultStep) =>
  Effect.gen(function* () {
    const id = cluster.nodes[0]!.id
    if (step._tag === "pause") cluster.pause(id)
    else if (step._tag === "kill") yield* Effect.promise(() => cluster.kill(id))
    else yield* inject(cluster.proxies!.get(id)!.client, step)
    yield* Effect.sleep(`${step.ms} millis`)
    yield* healAll(cluster)
  })

/** The steps one after the other, `gapMs` apart, everything healed at the end whatever happens. */
const applySteps = (cluster: KafkaCluster, steps: ReadonlyArray<FaultStep>) =>
  Effect.forEach(steps, (step) => Effect.sleep(`${gapMs} millis`).pipe(Effect.andThen(applyStep(cluster, step))), {
    discard: true
  }).pipe(Effect.ensuring(healAll(cluster)))

class Event extends Schema.Class<Event>("Event")({ id: Schema.Int, userId: Schema.String }) {}

/** What one run ended with. */
export interface FaultRunResult {
  readonly topic: string
  readonly counts: Counts
  /** The same driver's sends with several in flight, beside the publishes (pipelinedSends.ts). */
  readonly sends: SendAudit
  readonly longestMs: number
  /** Publishes that ended in a defect or an interruption instead of a receipt or a typed error. */
  readonly defects: number
  readonly elapsedMs: number
}

/**
 * Publishes the case's load through the proxy while its steps happen, heals, waits for every publish to end and
 * counts. The load is sized to outlast the planned faults (a fault that stalls the publishes stretches it).
 */
export const runFaultCase = (cluster: KafkaCluster, c: FaultCase, name: string) =>
  Effect.gen(function* () {
    const started = Date.now()
    yield* createTopic(cluster.brokers, name, { partitions: 3 })
    yield* createTopic(cluster.brokers, `${name}.dlt`, { partitions: 1 })
    const topic = Topic.make({ name, schema: Event, key: (e) => e.userId })
    const total = Math.ceil((c.load.rate * (plannedMs(c.steps) + gapMs)) / 1000)
    const events = Array.from({ length: total }, (_, id) => new Event({ id, userId: `user-${id % 11}` }))
    const pace = { fibers: c.load.fibers, pauseMs: Math.round((c.load.fibers * 1000) / c.load.rate) }
    // the same driver's sends, 8 at a time and about 200 a second, on a topic of their own
    yield* createTopic(cluster.brokers, `${name}-sends`, { partitions: 3 })
    const sendsLoad = runPipelined(
      faultDriverLayer(c.load.driver, cluster.proxyBrokers!, `${name}-sends-client`),
      cluster.brokers,
      `${name}-sends`,
      { sends: Math.ceil((200 * (plannedMs(c.steps) + gapMs)) / 1000) }
    )
    const [{ outcomes, longestMs }, , sends] = yield* Effect.all(
      [
        Effect.gen(function* () {
          return yield* pacedPublishes(yield* Publisher.Publisher, topic, events, pace)
        }).pipe(Effect.provide(faultPublisherLayer(c.load, cluster.proxyBrokers!, `${name}-client`))),
        applySteps(cluster, c.steps),
        sendsLoad
      ],
      { concurrency: 3 }
    )
    const counts = yield* count(cluster.brokers, name, `${name}.dlt`, outcomes)
    const defects = outcomes.filter(
      (exit) => Exit.isFailure(exit) && !exit.cause.reasons.some((r) => r._tag === "Fail")
    ).length
    return { topic: name, counts, sends, longestMs, defects, elapsedMs: Date.now() - started } satisfies FaultRunResult
  }).pipe(
    // thousands of retry warnings per run: the counts line is what matters
    Effect.provideService(References.MinimumLogLevel, "None")
  )

/** How a property run is driven: from FAULT_SEED, FAULT_PATH, FAULT_RUNS, FAULT_MINUTES and FAULT_LONG. */
export interface FaultRunSettings {
  readonly seed: number
  /** fast-check's replay path of a failing case (printed with it); needs the same seed. */
  readonly path: string | undefined
  readonly numRuns: number
  /** Runs that would start after this time pass at once (a time-boxed soak); Infinity when unbounded. */
  readonly deadline: number
  /** Long stalls (`faultCase(true)`). */
  readonly long: boolean
}

/** Reads the settings from the environment; `numRuns` is the default when neither FAULT_RUNS nor FAULT_MINUTES is set. */
export const faultRunSettings = (numRuns: number, env: NodeJS.ProcessEnv = process.env): FaultRunSettings => {
  const minutes = env.FAULT_MINUTES === undefined ? undefined : Number(env.FAULT_MINUTES)
  return {
    seed: env.FAULT_SEED === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(env.FAULT_SEED),
    path: env.FAULT_PATH,
    numRuns: env.FAULT_RUNS !== undefined ? Number(env.FAULT_RUNS) : minutes !== undefined ? 100_000 : numRuns,
    deadline: minutes === undefined ? Number.POSITIVE_INFINITY : Date.now() + minutes * 60_000,
    long: env.FAULT_LONG === "1"
  }
}

/** Totals over the runs of one property run, for the closing line of a soak. */
export const makeTally = () => {
  let runs = 0
  let longestMs = 0
  const sums = { published: 0, delivered: 0, deadLettered: 0, errors: 0, ambiguousErrors: 0, marked: 0 }
  const kinds = new Map<FaultStep["_tag"], number>()
  return {
    add: (c: FaultCase, r: FaultRunResult): void => {
      runs++
      longestMs = Math.max(longestMs, r.longestMs)
      sums.published += r.counts.published
      sums.delivered += r.counts.delivered
      sums.deadLettered += r.counts.deadLettered
      sums.errors += r.counts.errors
      sums.ambiguousErrors += r.counts.ambiguousErrors
      sums.marked += r.counts.markedPossibleDuplicates
      for (const step of c.steps) kinds.set(step._tag, (kinds.get(step._tag) ?? 0) + 1)
    },
    runs: () => runs,
    line: (): string =>
      `${runs} sequences (${[...kinds].map(([k, n]) => `${k} ${n}`).join(", ")}): published ${sums.published}, delivered ${sums.delivered}, dead-lettered ${sums.deadLettered}, errors ${sums.errors} (ambiguous ${sums.ambiguousErrors}), possible duplicates marked ${sums.marked}, longest publish ${longestMs} ms`
  }
}
