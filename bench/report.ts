/**
 * What `npm run bench` writes: the rounds of every scenario reduced to medians and spreads, ratios to the
 * baselines of the same run (per round, then the median of those), the goals of the performance issue
 * (issue 13) met or not, and bench/results/latest.{md,json,png}.
 *
 * @module
 */
import fs from "node:fs"
import { type Bar, barChartPng } from "./chart.ts"
import type { Measured } from "./scenarios.ts"

/** One scenario of the run and what it is compared with. */
export interface ScenarioInfo {
  /** Short id, unique per size (e.g. "EP", "EP1@2ms"). */
  readonly id: string
  readonly name: string
  readonly size: number
  /** Ids (same size) this scenario is a ratio to. */
  readonly against: ReadonlyArray<string>
  readonly section: "loopback" | "latency"
}

/** A scenario and its runs, one per round. */
export interface ScenarioRuns extends ScenarioInfo {
  readonly runs: Array<Measured>
}

/** The steady-rate latency run of one driver. */
export interface RateResult {
  readonly driver: string
  readonly records: number
  readonly recordsPerSecond: number
  readonly latencyMs: Measured["latencyMs"]
}

/** The memory run of one driver. */
export interface MemoryResult {
  readonly driver: string
  readonly concurrency: number
  readonly events: number
  readonly seconds: number
  readonly peakRssMb: number
  readonly peakHeapMb: number
  readonly delivered: number
}

/** Everything one run of the bench measured. */
export interface BenchResults {
  readonly machine: string
  readonly command: string
  readonly settings: Record<string, number | string | boolean>
  readonly scenarios: ReadonlyArray<ScenarioRuns>
  readonly latencyProblem: string | undefined
  /** Median ms of a one-record send through the proxy, by added latency ("0ms", "2ms"). */
  readonly roundTripMs: Record<string, number>
  readonly rate: ReadonlyArray<RateResult>
  readonly memory: ReadonlyArray<MemoryResult>
  /** bench/import.bench.ts's table, as it printed it. */
  readonly importTable: string
  readonly wallSeconds: number
  /** ISO time the report was written. */
  readonly finishedAt: string
}

const median = (xs: ReadonlyArray<number>) => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US")
const x = (n: number) => `${n.toFixed(2)}x`

/** Median, min and max records/s over the rounds. */
export const rates = (s: ScenarioRuns) => {
  const r = s.runs.map((m) => m.recordsPerSecond)
  return { median: median(r), min: Math.min(...r), max: Math.max(...r) }
}

/** The run whose records/s is the median (its latency is the one shown). */
const medianRun = (s: ScenarioRuns) =>
  [...s.runs].sort((a, b) => a.recordsPerSecond - b.recordsPerSecond)[Math.floor((s.runs.length - 1) / 2)]!

/** `a / b` per round (rounds pair up: both ran in the same round), median and spread. */
export const ratioOf = (a: ScenarioRuns | undefined, b: ScenarioRuns | undefined) => {
  if (a === undefined || b === undefined) return undefined
  const n = Math.min(a.runs.length, b.runs.length)
  const r = Array.from({ length: n }, (_, i) => a.runs[i]!.recordsPerSecond / b.runs[i]!.recordsPerSecond)
  return n === 0 ? undefined : { median: median(r), min: Math.min(...r), max: Math.max(...r) }
}

const find = (scenarios: ReadonlyArray<ScenarioRuns>, id: string, size: number) =>
  scenarios.find((s) => s.id === id && s.size === size)

const ratioText = (scenarios: ReadonlyArray<ScenarioRuns>, s: ScenarioRuns) =>
  s.against
    .map((id) => {
      const r = ratioOf(s, find(scenarios, id, s.size))
      return r === undefined ? `${id}: -` : `${id}: ${x(r.median)} (${r.min.toFixed(2)}-${r.max.toFixed(2)})`
    })
    .join("; ")

const row = (scenarios: ReadonlyArray<ScenarioRuns>, s: ScenarioRuns) => {
  const r = rates(s)
  const m = medianRun(s)
  const mb = ((r.median * s.size) / 1048576).toFixed(1)
  return `| ${s.id} | ${s.name} | ${s.size} | ${fmt(m.records)} | ${fmt(r.median)} | ${fmt(r.min)}-${fmt(r.max)} | ${mb} | ${m.latencyMs.max === 0 ? "-" : `${m.latencyMs.p50.toFixed(1)} / ${m.latencyMs.p99.toFixed(1)}`} | ${ratioText(scenarios, s) || "-"} |`
}

interface Goal {
  readonly goal: string
  readonly measured: string
  readonly met: boolean | undefined
}

/** A ratio goal: `a / b >= target` (median of the rounds' ratios). */
const ratioGoal = (
  scenarios: ReadonlyArray<ScenarioRuns>,
  text: string,
  size: number,
  pairs: ReadonlyArray<readonly [string, string, number]>
): Goal => {
  const parts = pairs.map(([a, b, target]) => ({
    a,
    b,
    target,
    r: ratioOf(find(scenarios, a, size), find(scenarios, b, size))
  }))
  const missing = parts.some((p) => p.r === undefined)
  return {
    goal: text,
    measured: parts.map((p) => `${p.a}/${p.b} ${p.r === undefined ? "-" : x(p.r.median)}`).join(", "),
    met: missing ? undefined : parts.every((p) => p.r!.median >= p.target)
  }
}

/** Every goal of issue 13's "Goals" section, with the figure that decides it. */
export const goals = (b: BenchResults): ReadonlyArray<Goal> => {
  const s = b.scenarios
  const out: Array<Goal> = []
  for (const [id, driver] of [
    ["EK", "kafkajs"],
    ["EP", "platformatic"]
  ] as const)
    out.push(
      ratioGoal(s, `per-event publish + Batcher (${driver}, 100 B, 1,000 callers) >= 1.0x Java per-record send`, 100, [
        [id, "J", 1]
      ])
    )
  for (const size of [100, 1024])
    for (const [kind, name] of [
      ["A", "publishAll, chunks of 10,000"],
      ["A1", "publishAll, one call"],
      ["S", "stream sink"]
    ] as const)
      for (const [d, driver] of [
        ["K", "kafkajs"],
        ["P", "platformatic"]
      ] as const)
        out.push(
          ratioGoal(s, `${size} B: ${name} (${driver}) >= 0.9x the driver on the same batches and >= 1.0x Java`, size, [
            [`${kind}${d}`, `D${d}`, 0.9],
            [`${kind}${d}`, "J", 1]
          ])
        )
  for (const size of [100, 1024])
    for (const [d, driver] of [
      ["K", "kafkajs"],
      ["P", "platformatic"]
    ] as const)
      out.push(
        ratioGoal(s, `${size} B: ${driver} driver vs raw client, same batches >= 0.95x`, size, [
          [`D${d}`, `R${d}`, 0.95]
        ])
      )
  if (b.latencyProblem === undefined)
    for (const [id, name] of [
      ["EB1", "per-event publish + Batcher, 1 batch in flight"],
      ["EB5", "per-event publish + Batcher, 5 batches in flight"],
      ["AB1", "publishAll + Batcher, 1 batch in flight"],
      ["AB5", "publishAll + Batcher, 5 batches in flight"]
    ] as const)
      out.push(
        ratioGoal(s, `2 ms each way, 100 B, ${name} (platformatic): >= 0.7x without latency, >= Java with it`, 100, [
          [`${id}@2ms`, `${id}@0ms`, 0.7],
          [`${id}@2ms`, "J@2ms", 1]
        ])
      )
  else out.push({ goal: "with 2 ms latency each way", measured: `not run: ${b.latencyProblem}`, met: undefined })
  for (const r of b.rate)
    out.push({
      goal: `p99 <= 10 ms at 1,000 events/s, Batcher default linger, ${r.driver} driver`,
      measured: `${r.latencyMs.p99.toFixed(2)} ms`,
      met: r.latencyMs.p99 <= 10
    })
  for (const m of b.memory)
    out.push({
      goal: `${fmt(m.events)} events, ${fmt(m.concurrency)} in flight, ${m.driver} driver: peak RSS < 300 MB`,
      measured: `${m.peakRssMb} MB`,
      met: m.peakRssMb < 300
    })
  return out
}

const legend = `Ids: J Java ProducerPerformance (per-record send, linger 5 ms); RK / RP raw kafkajs / raw @platformatic/kafka on
pre-built batches of 500; DK / DP the toolkit's kafkajs / platformatic driver on the same batches (no Publisher); EK / EP
\`Publisher.publish\` per event + Batcher from the callers; AK / AP \`publishAll\` in chunks of 10,000; A1K / A1P one
\`publishAll\` of every event; SK / SP \`Stream.run(events, Publisher.sink(topic))\`, arrays of 500. Latency section
(100 B, platformatic driver, every client through toxiproxy in front of the broker's advertised CLIENT listener; @0ms the
proxy without a toxic, @2ms 2 ms latency upstream and 2 ms downstream): EB1 / EB5 per-event publish + Batcher with
\`maxInFlightBatches\` 1 / 5; AB1 / AB5 \`publishAll\` in chunks of 10,000 over that Batcher; J Java through the same proxy.
Latency: per publish (E*), per batch (R*, D*), per \`publishAll\` call (A*: one call is the whole run), none for the sink.`

/** latest.md, from the results. */
export const markdown = (b: BenchResults): string => {
  const section = (name: ScenarioInfo["section"]) =>
    b.scenarios.filter((s) => s.section === name).map((s) => row(b.scenarios, s))
  const header = `| id | scenario | bytes | records/run | records/s median | min-max | MB/s | p50 / p99 ms | ratio to (median of rounds, min-max) |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |`
  const rateRows = b.rate.map(
    (r) =>
      `| ${r.driver} | ${fmt(r.records)} | ${fmt(r.recordsPerSecond)} | ${r.latencyMs.p50.toFixed(2)} / ${r.latencyMs.p95.toFixed(2)} / ${r.latencyMs.p99.toFixed(2)} / ${r.latencyMs.max.toFixed(2)} |`
  )
  const memoryRows = b.memory.map(
    (m) =>
      `| ${m.driver} | ${fmt(m.concurrency)} | ${fmt(m.events)} | ${fmt(m.delivered)} | ${m.seconds.toFixed(1)} | ${fmt(m.events / m.seconds)} | ${m.peakRssMb} | ${m.peakHeapMb} |`
  )
  const goalRows = goals(b).map(
    (g) => `| ${g.goal} | ${g.measured} | ${g.met === undefined ? "not measured" : g.met ? "met" : "not met"} |`
  )
  const settings = Object.entries(b.settings)
    .map(([k, v]) => `${k} ${typeof v === "number" ? fmt(v) : v}`)
    .join(", ")
  return `# Publishing benchmark

Machine: ${b.machine}. acks=all, idempotence on, 6 partitions per topic, records of 100 B and 1 KiB.
Command: \`${b.command}\` (finished ${b.finishedAt}): ${(b.wallSeconds / 60).toFixed(1)} min from the broker's start to this
report (the transactions benchmark runs after it).
Settings: ${settings}. Every round runs every scenario once, in the order below (interleaved); records/s is the median
of the rounds, with the slowest and fastest round; a ratio is taken per round (both ran in the same round) and the
median of those is shown with its spread. Before round 1, one uncounted pass of every Node scenario (5,000 records)
warms the JIT and the broker. Connecting is outside the timed part; Java's figure is its own
(ProducerPerformance's summary, JVM start not counted).

${legend}

## Loopback

${header}
${section("loopback").join("\n")}

## 2 ms added each way (toxiproxy)

${
  b.latencyProblem === undefined
    ? `A one-record send (kafkajs, acks=all) through the proxy takes ${Object.entries(b.roundTripMs)
        .map(([k, v]) => `${v.toFixed(1)} ms at ${k}`)
        .join(", ")} (median of 21): the toxics are on.\n\n${header}\n${section("latency").join("\n")}`
    : `Not run: ${b.latencyProblem}`
}

## Latency at a steady 1,000 events/s (publish + Batcher, default linger, 100 B, own process)

| driver | records | records/s | latency ms p50 / p95 / p99 / max |
| --- | --- | --- | --- |
${rateRows.join("\n")}

## Memory: events offered as fast as the API accepts them (Publisher + Batcher), own process

| driver | in flight | events | delivered | seconds | records/s | peak RSS MB | peak heap MB |
| --- | --- | --- | --- | --- | --- | --- | --- |
${memoryRows.join("\n")}

## Cold import (bench/import.bench.ts)

${b.importTable.trim()}

## Goals (issue 13)

| goal | measured | |
| --- | --- | --- |
${goalRows.join("\n")}
`
}

/** Writes bench/results/latest.{md,json,png}; returns the markdown. */
export const writeResults = (b: BenchResults): string => {
  const md = markdown(b)
  fs.mkdirSync("bench/results", { recursive: true })
  fs.writeFileSync("bench/results/latest.md", md)
  fs.writeFileSync("bench/results/latest.json", `${JSON.stringify({ ...b, goals: goals(b) }, null, 2)}\n`)
  const bars: Array<Bar> = b.scenarios.map((s) => {
    const r = rates(s)
    return {
      label: `${s.id} ${s.size} B ${s.name.slice(0, 26)}`,
      value: r.median,
      note: `${fmt(r.median)}/s (${fmt(r.min)}-${fmt(r.max)})`
    }
  })
  fs.writeFileSync(
    "bench/results/latest.png",
    barChartPng("records/s, median of rounds, acks=all, idempotence on", b.machine, bars)
  )
  return md
}
