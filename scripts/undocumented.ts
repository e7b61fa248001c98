/**
 * `npm run docs:undocumented`: what TypeDoc's `validation.notDocumented` (the gate of `npm run docs:check`)
 * still reports, counted per source file. `--list` prints each report too.
 *
 * TypeDoc reports one declaration several times when it shows up in several places (a Schema field in the
 * class, in its base type, in every struct that embeds it); one doc comment on that field settles all of
 * them. So the table counts doc comments to write ("to write": distinct source lines) beside the reports:
 * modules without a `@module` comment (their `export * as X` namespace is undocumented), exports without a
 * doc comment, and members (properties, methods, fields of an exported object or Schema). Always exits 0:
 * it is a to-do list; the gate is `docs:check`.
 */
import { Application, DeclarationReflection, ReflectionKind, SignatureReflection } from "typedoc"

const app = await Application.bootstrapWithPlugins({ emit: "none" }) // the options of typedoc.json
const reports: Array<string> = []
app.logger.validationWarning = (text: string) => {
  reports.push(text)
}
const project = await app.convert()
if (project === undefined) throw new Error("TypeDoc could not convert the project (see the errors above)")
app.validate(project)

type Level = "module" | "export" | "member"
interface Report {
  readonly name: string
  readonly kind: string
  readonly level: Level
  /** file:line of the declaration that lacks the comment */
  readonly at: string
}
const reflections = Object.values(project.reflections)
const notDocumented = /^(\S+) \((\w+)\), defined in [^/]+\/(.+), does not have any documentation$/
const byFile = new Map<string, Array<Report>>()
const others: Array<string> = []
for (const text of reports) {
  const m = notDocumented.exec(text)
  if (m === null) {
    others.push(text)
    continue
  }
  const [, name = "", kind = "", file = ""] = m
  const reflection = reflections.find((r) => r.getFriendlyFullName() === name && ReflectionKind[r.kind] === kind)
  const source =
    reflection instanceof DeclarationReflection || reflection instanceof SignatureReflection
      ? reflection.sources?.[0]
      : undefined
  // names are entry.Namespace.export.member...; an entry's own name has no dot
  const depth = name.split(".").length
  const level: Level = depth <= 2 ? "module" : depth === 3 ? "export" : "member"
  const rows = byFile.get(file) ?? []
  rows.push({ name, kind, level, at: source === undefined ? `${file}:?` : `${source.fileName}:${source.line}` })
  byFile.set(file, rows)
}

const count = (rows: ReadonlyArray<Report>, level?: Level) =>
  rows.filter((r) => level === undefined || r.level === level)
const distinct = (rows: ReadonlyArray<Report>) => new Set(rows.map((r) => r.at)).size
const row = (label: string, rows: ReadonlyArray<Report>) =>
  [
    label.padEnd(44),
    ...(["module", "export", "member"] as const).map((level) => String(count(rows, level).length).padStart(7)),
    String(rows.length).padStart(8),
    String(distinct(rows)).padStart(9)
  ].join(" ")
const files = [...byFile.keys()].sort()
const all = [...byFile.values()].flat()
const lines = [
  "undocumented, per file (TypeDoc validation.notDocumented; npm run docs:check fails while any is left)",
  "",
  [
    "file".padEnd(44),
    ..."module export member".split(" ").map((h) => h.padStart(7)),
    "reports".padStart(8),
    "to write".padStart(9)
  ].join(" "),
  ...files.map((file) => row(file, byFile.get(file) ?? [])),
  row("total", all),
  "",
  "module: no `/** ... @module */` comment; export: a direct export of the module; member: a property, method",
  "or field of one (Options.linger, a Schema field); to write: distinct declarations, one doc comment each"
]
if (others.length > 0)
  lines.push("", "other validation warnings (they fail docs:check too):", ...others.map((l) => `  ${l}`))
if (process.argv.includes("--list")) {
  lines.push("")
  for (const file of files) {
    lines.push(`${file}:`)
    for (const r of byFile.get(file) ?? [])
      lines.push(`  ${r.level.padEnd(6)} ${r.at.padEnd(44)} ${r.name} (${r.kind})`)
  }
}
console.log(lines.join("\n"))
