/**
 * Cold import time of each entry point: what `import "effect-kafka-publisher/..."` costs an app at start-up.
 *
 *   npm run bench:import                     builds dist/ (npm run build), then measures it
 *   node bench/import.bench.ts [--samples N] [--root DIR] [--no-build] [--source]
 *
 * Every sample is a fresh `node` process (no compile cache) that imports one entry point by the package's
 * name, as an app does, and reports two times: the `import()` itself, and from the process's start until
 * that import is done (Node's own start-up included). The entry points are taken in turn within each round,
 * so a noisy neighbour hits all of them; a first round warms the file cache and is dropped; the median of
 * N rounds (default 7) is printed, and each import as a multiple of importing `effect` alone in the same run.
 *
 * `--root DIR` measures another checkout's built package (e.g. an older commit, built with its own
 * `npm run build`): the entry points it does not export are shown as "-". `--source` measures src/ through
 * the repo's "effect-kafka-publisher-source" condition (TypeScript stripped on load: slower, not what users
 * get). The Kafka clients must be installed where the root resolves them (this repo's devDependencies).
 */
import { execFileSync, spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import path from "node:path"

const args = process.argv.slice(2)
const flag = (name: string) => args.includes(name)
const option = (name: string) => {
  const i = args.indexOf(name)
  return i === -1 ? undefined : args[i + 1]
}
const repo = path.resolve(import.meta.dirname, "..")
const root = path.resolve(option("--root") ?? repo)
const samples = Number(option("--samples") ?? 7)
if (!Number.isInteger(samples) || samples < 5) throw new Error("--samples: at least 5")
const source = flag("--source")

if (!source && !flag("--no-build") && root === repo) {
  execFileSync("npm", ["run", "-s", "build"], { cwd: repo, stdio: "inherit" })
}

const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as {
  readonly name: string
  readonly exports: Record<string, unknown>
}
const entries = [
  { label: "effect (alone)", specifier: "effect" },
  // the entry points of this repo's package.json (another root may lack some: shown as "-")
  ...Object.keys(
    (JSON.parse(readFileSync(path.join(repo, "package.json"), "utf8")) as { exports: Record<string, unknown> }).exports
  )
    .filter((subpath) => subpath !== "./package.json")
    .map((subpath) => ({
      label: subpath === "." ? pkg.name : `${pkg.name}/${subpath.slice(2)}`,
      specifier: subpath === "." ? pkg.name : `${pkg.name}/${subpath.slice(2)}`,
      subpath
    }))
] as const

interface Sample {
  readonly importMs: number
  readonly readyMs: number
}
const script = (specifier: string) =>
  `const t0 = performance.now(); await import(${JSON.stringify(specifier)}); const t1 = performance.now();` +
  `process.stdout.write(JSON.stringify({ importMs: t1 - t0, readyMs: t1 }))`
const env = { ...process.env }
delete env.NODE_COMPILE_CACHE
delete env.NODE_OPTIONS
const sample = (specifier: string): Sample => {
  const conditions = source ? ["--conditions=effect-kafka-publisher-source"] : []
  const run = spawnSync(process.execPath, [...conditions, "--input-type=module", "--eval", script(specifier)], {
    cwd: root,
    env,
    encoding: "utf8"
  })
  if (run.status !== 0) throw new Error(`import ${specifier} failed in ${root}:\n${run.stderr}`)
  return JSON.parse(run.stdout) as Sample
}

const exported = (entry: (typeof entries)[number]) => !("subpath" in entry) || entry.subpath in pkg.exports
const results = new Map<string, Array<Sample>>(entries.map((e) => [e.label, []]))
for (let round = 0; round <= samples; round++) {
  for (const entry of entries) {
    if (!exported(entry)) continue
    const s = sample(entry.specifier)
    if (round > 0) results.get(entry.label)!.push(s) // round 0 warms the file cache
  }
}

const median = (xs: ReadonlyArray<number>) => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}
const baseline = median(results.get(entries[0].label)!.map((s) => s.importMs))
const ms = (x: number) => `${Math.round(x)} ms`
let commit = ""
try {
  commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" }).trim()
} catch {
  commit = "?"
}
console.log(
  `cold import, median of ${samples} fresh processes, Node ${process.versions.node}, ${source ? "src/ (source condition)" : "dist/"} of ${root} (${commit})`
)
console.log("")
console.log("| import | import() | process start to imported | vs effect alone |")
console.log("| --- | --- | --- | --- |")
for (const entry of entries) {
  const rows = results.get(entry.label)!
  if (rows.length === 0) {
    console.log(`| \`${entry.label}\` | - | - | - |`)
    continue
  }
  const importMs = median(rows.map((s) => s.importMs))
  const readyMs = median(rows.map((s) => s.readyMs))
  const ratio = entry === entries[0] ? "1.00x" : `${(importMs / baseline).toFixed(2)}x`
  console.log(`| \`${entry.label}\` | ${ms(importMs)} | ${ms(readyMs)} | ${ratio} |`)
}
