/**
 * `npm run docs:undocumented`: what TypeDoc's `validation.notDocumented` (the gate of `npm run docs:check`)
 * still reports, counted per source file: modules without a `@module` comment, exports without a doc comment,
 * and members (properties, methods, fields of an exported object) without one. Prints the list too with
 * `--list`. Always exits 0: it is a to-do list, the gate is `docs:check`.
 */
import { spawnSync } from "node:child_process"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { stripVTControlCharacters } from "node:util"

const typedoc = join(dirname(createRequire(import.meta.url).resolve("typedoc/package.json")), "bin", "typedoc")
const run = spawnSync(process.execPath, [typedoc, "--emit", "none"], {
  encoding: "utf8",
  env: { ...process.env, NO_COLOR: "1" }
})
const output = stripVTControlCharacters(`${run.stdout}${run.stderr}`)

type Level = "module" | "export" | "member"
interface Row {
  readonly name: string
  readonly kind: string
  readonly level: Level
}
const byFile = new Map<string, Array<Row>>()
const notDocumented = /^\[warning\] (\S+) \((\w+)\), defined in [^/]+\/(.+), does not have any documentation$/
for (const line of output.split("\n")) {
  const m = notDocumented.exec(line.trim())
  if (m === null) continue
  const [, name = "", kind = "", file = ""] = m
  // names are entry.Namespace.export.member...; the entry's own name has no dot
  const depth = name.split(".").length
  const level: Level = depth <= 2 ? "module" : depth === 3 ? "export" : "member"
  const rows = byFile.get(file) ?? []
  rows.push({ name, kind, level })
  byFile.set(file, rows)
}
const others = output
  .split("\n")
  .map((l) => l.trim())
  .filter(
    (l) => l.startsWith("[warning]") && !notDocumented.test(l) && !l.includes("git remote") && !/Found \d+/.test(l)
  )

const count = (rows: ReadonlyArray<Row>, level: Level) => rows.filter((r) => r.level === level).length
const files = [...byFile.keys()].sort()
const all = [...byFile.values()].flat()
const lines: Array<string> = []
lines.push("undocumented, per file (TypeDoc validation.notDocumented; npm run docs:check fails while any is left)")
lines.push("")
lines.push(
  `${"file".padEnd(44)} ${"module".padStart(6)} ${"export".padStart(6)} ${"member".padStart(6)} ${"total".padStart(6)}`
)
for (const file of files) {
  const rows = byFile.get(file) ?? []
  lines.push(
    `${file.padEnd(44)} ${String(count(rows, "module")).padStart(6)} ${String(count(rows, "export")).padStart(6)} ${String(count(rows, "member")).padStart(6)} ${String(rows.length).padStart(6)}`
  )
}
lines.push(
  `${"total".padEnd(44)} ${String(count(all, "module")).padStart(6)} ${String(count(all, "export")).padStart(6)} ${String(count(all, "member")).padStart(6)} ${String(all.length).padStart(6)}`
)
lines.push("")
lines.push("module: the file has no `/** ... @module */` comment (its `export * as X` namespace is undocumented)")
lines.push("export: a direct export of the module; member: a property, method or field of one (e.g. Options.linger)")
if (others.length > 0) {
  lines.push("", "other validation warnings (they fail docs:check too):", ...others.map((l) => `  ${l}`))
}
if (process.argv.includes("--list")) {
  lines.push("")
  for (const file of files) {
    lines.push(`${file}:`)
    for (const row of byFile.get(file) ?? []) lines.push(`  ${row.level.padEnd(6)} ${row.name} (${row.kind})`)
  }
}
console.log(lines.join("\n"))
