/**
 * `npm run test:package`: the package as a user gets it. Builds (`npm run build`) and packs the repo, checks
 * the tarball holds what `exports` and `bin` point at, then for each driver installs the tarball into a
 * fresh project with `effect` and that one Kafka client (from the registry), typechecks a strict app
 * (`strict`, `exactOptionalPropertyTypes`, `skipLibCheck: false`, NodeNext) that uses ".", the driver's entry
 * point and "./testing", runs it on FakeKafka, runs the CLI (`npx effect-kafka-publisher --help`) and
 * reports the size of the app's node_modules without its dev tools.
 *
 * `KEEP_PACKAGE_TEST=1` keeps the temporary projects (their path is printed).
 */
import { type ExecFileSyncOptions, execFileSync } from "node:child_process"
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"

const repo = path.resolve(import.meta.dirname, "../..")
const pkg = JSON.parse(readFileSync(path.join(repo, "package.json"), "utf8")) as {
  readonly name: string
  readonly bin: Record<string, string>
  readonly exports: Record<string, string | Record<string, string>>
  readonly devDependencies: Record<string, string>
}
const version = (name: string) => {
  const v = pkg.devDependencies[name]
  if (v === undefined) throw new Error(`no devDependency ${name} to take the version from`)
  return `${name}@${v}`
}
// Node 24 (this process) first on PATH: the CLI's shebang asks `env` for `node`
const env = { ...process.env, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ""}` }
const started = performance.now()
const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`

class StepFailed extends Error {}

const run = (command: string, args: ReadonlyArray<string>, options: ExecFileSyncOptions = {}): string => {
  try {
    return execFileSync(command, args, { encoding: "utf8", stdio: "pipe", env, ...options }).toString()
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; status?: number }
    // the first lines say what went wrong; a stack trace's tail does not
    const lines = [e.stdout, e.stderr]
      .filter((o) => o !== undefined && o !== "")
      .join("\n")
      .split("\n")
    const output = lines.length > 16 ? [...lines.slice(0, 16), `... (${lines.length - 16} more lines)`] : lines
    throw new StepFailed(
      `exit ${e.status}: ${command} ${args.join(" ")} (in ${options.cwd ?? repo})\n${output.join("\n")}`
    )
  }
}
const fail = (what: string): never => {
  throw new StepFailed(what)
}
const failures: Array<string> = []
let part = "package"
/**
 * Runs one check and says how it went. A failed check is recorded and the next ones still run (each app
 * reports every problem at once), except a `required` one (an install, say), which ends its part.
 */
const step = <A>(what: string, f: () => A, options: { readonly required?: boolean } = {}): A | undefined => {
  const t = performance.now()
  try {
    const result = f()
    console.log(`  ok    ${what} (${seconds(t)})`)
    return result
  } catch (error) {
    if (!(error instanceof StepFailed)) throw error
    console.log(`  FAIL  ${what} (${seconds(t)})\n${error.message.replace(/^/gm, "        ")}`)
    failures.push(`${part}: ${what}`)
    if (options.required) throw error
    return undefined
  }
}

const work = mkdtempSync(path.join(tmpdir(), "effect-kafka-publisher-package-"))
console.log(`package test in ${work}`)

const main = () => {
  // 1. build and pack
  step("npm run build", () => run("npm", ["run", "build"], { cwd: repo }), { required: true })
  const packed = step(
    "npm pack",
    () => {
      const out = run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", work], { cwd: repo })
      return (JSON.parse(out) as Array<{ filename: string; files: Array<{ path: string }> }>)[0]!
    },
    { required: true }
  )!
  const tarball = path.join(work, packed.filename)
  step("the tarball holds every file exports and bin point at, and .d.ts under dist/", () => {
    const files = new Set(packed.files.map((f) => f.path))
    const targets = Object.values(pkg.exports).flatMap((target) =>
      typeof target === "string" ? [target] : [target.types, target.default]
    )
    const missing = [...targets, ...Object.values(pkg.bin)]
      .filter((t): t is string => t !== undefined)
      .map((t) => t.replace(/^\.\//, ""))
      .filter((t) => !files.has(t))
    if (missing.length > 0) fail(`not in the tarball: ${missing.join(", ")}`)
    if (!packed.files.some((f) => f.path.startsWith("dist/") && f.path.endsWith(".d.ts"))) fail("no .d.ts in dist/")
  })
  // 2. one fresh project per driver
  for (const app of apps) {
    try {
      checkApp(app, tarball)
    } catch (error) {
      if (!(error instanceof StepFailed)) throw error
    }
  }
}

// lib DOM: effect 4.1's own crypto .d.ts name the Web Crypto types CryptoKey and JsonWebKey, which
// @types/node does not declare globally; with skipLibCheck false they are checked too
const tsconfig = {
  compilerOptions: {
    target: "ES2023",
    lib: ["ES2024", "DOM"],
    module: "NodeNext",
    moduleResolution: "NodeNext",
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    verbatimModuleSyntax: true,
    skipLibCheck: false,
    types: ["node"],
    rootDir: "src",
    outDir: "build"
  },
  include: ["src"]
}
const apps = [
  {
    driver: "kafkajs",
    client: version("kafkajs"),
    absent: ["@platformatic/kafka", "kafkajs-snappy", "@effect/opentelemetry"]
  },
  {
    driver: "platformatic",
    client: version("@platformatic/kafka"),
    absent: ["kafkajs", "kafkajs-snappy", "@effect/opentelemetry"]
  }
] as const
const sizes: Array<string> = []

const checkApp = (app: (typeof apps)[number], tarball: string) => {
  const t = performance.now()
  part = `${app.driver} app`
  console.log(`${part}: effect-kafka-publisher + ${version("effect")} + ${app.client}`)
  const dir = path.join(work, `app-${app.driver}`)
  mkdirSync(path.join(dir, "src"), { recursive: true })
  writeFileSync(
    path.join(dir, "package.json"),
    `${JSON.stringify({ name: `package-test-${app.driver}`, private: true, type: "module" }, null, 2)}\n`
  )
  writeFileSync(path.join(dir, "tsconfig.json"), `${JSON.stringify(tsconfig, null, 2)}\n`)
  for (const file of ["orders.ts", `${app.driver}.ts`]) {
    copyFileSync(path.join(import.meta.dirname, "app", file), path.join(dir, "src", file))
  }
  const npmInstall = ["install", "--no-audit", "--no-fund", "--prefer-offline"]
  step(
    `npm install the tarball, ${version("effect")}, ${app.client}`,
    () => run("npm", [...npmInstall, tarball, version("effect"), app.client], { cwd: dir }),
    { required: true }
  )
  step(
    "npm install -D typescript @types/node",
    () => run("npm", [...npmInstall, "--save-dev", version("typescript"), version("@types/node")], { cwd: dir }),
    { required: true }
  )
  step(`not installed: ${app.absent.join(", ")} (optional peers)`, () => {
    const present = app.absent.filter((name) => existsSync(path.join(dir, "node_modules", name)))
    if (present.length > 0) fail(`installed anyway: ${present.join(", ")}`)
  })
  step("tsc: the strict app typechecks against the package's .d.ts (skipLibCheck false)", () =>
    run(process.execPath, [path.join(dir, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], { cwd: dir })
  )
  // telemetry stays off whatever this machine's environment says
  const appEnv = Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith("OTEL_")))
  const output = step("the app runs on FakeKafka", () =>
    run(process.execPath, [`build/${app.driver}.js`], { cwd: dir, env: appEnv })
  )
  if (output !== undefined) console.log(`        ${output.trim()}`)
  step("npx effect-kafka-publisher --help", () => {
    const help = run("npx", ["--no-install", "effect-kafka-publisher", "--help"], { cwd: dir })
    if (!/verify/.test(help)) fail(`--help printed no usage:\n${help}`)
  })
  step("npm prune --omit=dev", () => run("npm", ["prune", "--omit=dev", "--no-audit", "--no-fund"], { cwd: dir }))
  const size = run("du", ["-sh", "node_modules"], { cwd: dir }).split("\t")[0]
  sizes.push(`${app.driver} app: node_modules ${size} (without typescript and @types/node)`)
  console.log(`  ${app.driver} app done (${seconds(t)})`)
}

try {
  main()
} catch (error) {
  if (!(error instanceof StepFailed)) throw error
}
for (const line of sizes) console.log(line)
if (process.env.KEEP_PACKAGE_TEST === "1") console.log(`kept ${work}`)
else rmSync(work, { recursive: true, force: true })
if (failures.length > 0) {
  console.log(`package test FAILED in ${seconds(started)}:\n${failures.map((f) => `  ${f}`).join("\n")}`)
  process.exitCode = 1
} else {
  console.log(`package test passed in ${seconds(started)}`)
}
