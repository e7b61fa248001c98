// Jaeger (v2, the OpenTelemetry-collector-based binary) for the tests that check what a trace backend receives.
// No npm or Debian package ships it and there is no Docker here: the test bed builds it from the Go module proxy,
// once, into a cache, and runs it with in-memory storage on free loopback ports.
//
//   const jaeger = await startJaeger()
//   jaeger.otlpUrl    // "http://127.0.0.1:<port>": OTEL_EXPORTER_OTLP_ENDPOINT (OTLP/HTTP: /v1/traces)
//   jaeger.queryUrl   // "http://127.0.0.1:<port>": the query API, e.g. /api/traces?service=...
//   await jaeger.stop()
//
// `go install github.com/jaegertracing/jaeger/cmd/jaeger@v1.76.0` is refused (its go.mod has replace directives),
// so the build is a throwaway module that requires Jaeger as a tool:
//   go mod init jaegerbuild && go get -tool github.com/jaegertracing/jaeger/cmd/jaeger@v1.76.0
//   go build -o <cache>/jaeger github.com/jaegertracing/jaeger/cmd/jaeger
// A cold build downloads about 1.3 GB of modules (GOMODCACHE) and compiles for minutes; later builds reuse Go's
// caches, and the binary itself is reused from the cache whenever present.
import { execFile, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { freePorts } from "./ports.ts"
import { killOnExit } from "./processes.ts"

const execFileAsync = promisify(execFile)

/** The Jaeger release the test bed builds. */
export const jaegerVersion = "1.76.0"

const jaegerModule = "github.com/jaegertracing/jaeger/cmd/jaeger"

/** `$JAEGER_CACHE_DIR`, else `$XDG_CACHE_HOME/effect-kafka-publisher/jaeger-<version>`, else `~/.cache/...`. */
export const jaegerCacheDir = (): string =>
  process.env.JAEGER_CACHE_DIR ??
  path.join(
    process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"),
    "effect-kafka-publisher",
    `jaeger-${jaegerVersion}`
  )

/** Where the built binary is kept. */
export const jaegerBinary = (): string => path.join(jaegerCacheDir(), "jaeger")

/** `$GOROOT/bin/go` when GOROOT is set, else `go` from PATH. */
export const goCommand = (): string => (process.env.GOROOT ? path.join(process.env.GOROOT, "bin", "go") : "go")

/** True when the cached binary is there and runs (`jaeger version`). */
export const jaegerCached = (): boolean => {
  if (!fs.existsSync(jaegerBinary())) return false
  const result = spawnSync(jaegerBinary(), ["version"], { stdio: "ignore", timeout: 30_000 })
  return result.error === undefined && result.status === 0
}

/** Why Jaeger cannot run here (no cached binary and no Go to build one), or undefined when it can. */
export const jaegerProblem = (): string | undefined => {
  if (jaegerCached()) return undefined
  const go = spawnSync(goCommand(), ["version"], { encoding: "utf8" })
  if (go.error !== undefined || go.status !== 0)
    return `\`${goCommand()}\` does not run and ${jaegerBinary()} is not built (the test bed builds Jaeger ${jaegerVersion} with Go 1.24+)`
  return undefined
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Runs `body` holding `<dir>.lock` (a directory: mkdir is atomic), so parallel test files build once. A lock
 * whose owner process is gone (a crashed run) is taken over.
 */
const withLock = async <A>(lock: string, timeoutMs: number, body: () => Promise<A>): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  fs.mkdirSync(path.dirname(lock), { recursive: true })
  for (;;) {
    try {
      fs.mkdirSync(lock)
      fs.writeFileSync(path.join(lock, "pid"), String(process.pid))
      break
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== "EEXIST") throw cause
      let owner: string | undefined
      try {
        owner = fs.readFileSync(path.join(lock, "pid"), "utf8").trim()
      } catch {
        owner = undefined // just created, pid not written yet
      }
      if (owner !== undefined && owner !== "" && !fs.existsSync(`/proc/${owner}`)) {
        fs.rmSync(lock, { recursive: true, force: true })
        continue
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock} (held by pid ${owner ?? "?"})`)
      await sleep(1_000)
    }
  }
  try {
    return await body()
  } finally {
    fs.rmSync(lock, { recursive: true, force: true })
  }
}

/** Runs a Go command (at lowest CPU priority: the machine is shared) in `cwd`; its output goes into errors. */
const go = async (cwd: string, args: ReadonlyArray<string>, timeoutMs: number): Promise<void> => {
  const child = execFileAsync("nice", ["-n", "19", goCommand(), ...args], {
    cwd,
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, GOFLAGS: "-mod=mod", CGO_ENABLED: "0" }
  })
  const unregister = killOnExit(() => child.child.kill("SIGKILL"))
  try {
    await child
  } catch (cause) {
    const { stdout = "", stderr = "" } = cause as { stdout?: string; stderr?: string }
    throw new Error(`go ${args.join(" ")} failed:\n${stdout}${stderr}`.slice(0, 20_000), { cause })
  } finally {
    unregister()
  }
}

/** Options of `ensureJaeger`. */
export interface BuildOptions {
  /** Called with one line per step (e.g. console.info), since a cold build takes minutes. */
  readonly progress?: ((line: string) => void) | undefined
  /** Bound of the whole build (both Go steps). Default 40 minutes. */
  readonly timeoutMs?: number | undefined
}

/**
 * The path of the Jaeger binary, building it on first use (see the top of this file). The build happens in a
 * temporary module directory and its binary is renamed into the cache only when complete, under a lock.
 */
export const ensureJaeger = async (options: BuildOptions = {}): Promise<string> => {
  if (jaegerCached()) return jaegerBinary()
  const timeoutMs = options.timeoutMs ?? 40 * 60_000
  const progress = options.progress ?? (() => undefined)
  return withLock(`${jaegerCacheDir()}.lock`, timeoutMs, async () => {
    if (jaegerCached()) return jaegerBinary() // another process built it while we waited
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "jaeger-build-"))
    try {
      const started = Date.now()
      progress(`jaeger: building ${jaegerVersion} from the Go module proxy in ${work} (a cold build takes minutes)`)
      await go(work, ["mod", "init", "jaegerbuild"], 60_000)
      await go(work, ["get", "-tool", `${jaegerModule}@v${jaegerVersion}`], timeoutMs)
      progress(`jaeger: modules resolved in ${Math.round((Date.now() - started) / 1000)} s, compiling`)
      const partial = path.join(work, "jaeger")
      await go(work, ["build", "-trimpath", "-o", partial, jaegerModule], timeoutMs)
      fs.mkdirSync(jaegerCacheDir(), { recursive: true })
      // rename within the cache directory's file system: copy next to it first
      const staged = `${jaegerBinary()}.partial-${process.pid}`
      fs.copyFileSync(partial, staged)
      fs.chmodSync(staged, 0o755)
      fs.renameSync(staged, jaegerBinary())
      progress(`jaeger: built in ${Math.round((Date.now() - started) / 1000)} s -> ${jaegerBinary()}`)
      return jaegerBinary()
    } finally {
      fs.rmSync(work, { recursive: true, force: true })
    }
  })
}

/** A running Jaeger. */
export interface Jaeger {
  /** The OTLP/HTTP receiver's base URL (for `OTEL_EXPORTER_OTLP_ENDPOINT`). */
  readonly otlpUrl: string
  /** The query service's base URL (`/api/services`, `/api/traces?service=...`, `/api/v3/...`). */
  readonly queryUrl: string
  /** The process id. */
  readonly pid: number
  /** The directory of its config and log. */
  readonly dir: string
  /** The tail of its log (for failure messages). */
  readonly logs: (lines?: number) => string
  /** SIGTERM, then SIGKILL after 10 s. */
  readonly stop: () => Promise<void>
}

/** The collector configuration: OTLP/HTTP in, in-memory storage, the query API; its own telemetry off. */
export const jaegerConfig = (ports: { otlpHttp: number; queryHttp: number; queryGrpc: number }): string => `
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: []
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:${ports.queryHttp}
    grpc:
      endpoint: 127.0.0.1:${ports.queryGrpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${ports.otlpHttp}
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

/** Options of `startJaeger`. */
export interface StartOptions extends BuildOptions {
  /** How long to wait for the query API to answer. Default 60 s. */
  readonly startTimeoutMs?: number | undefined
}

/** Builds Jaeger if needed, starts it in a temporary directory on free loopback ports, waits until it answers. */
export const startJaeger = async (options: StartOptions = {}): Promise<Jaeger> => {
  const binary = await ensureJaeger(options)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "jaeger-run-"))
  const [otlpHttp, queryHttp, queryGrpc] = (await freePorts(3)) as [number, number, number]
  const configFile = path.join(dir, "config.yaml")
  fs.writeFileSync(configFile, jaegerConfig({ otlpHttp, queryHttp, queryGrpc }))
  const logFile = path.join(dir, "jaeger.log")
  const log = fs.openSync(logFile, "a")
  const child = spawn(binary, ["--config", `file:${configFile}`], { cwd: dir, stdio: ["ignore", log, log] })
  fs.closeSync(log)
  const pid = child.pid
  if (pid === undefined) throw new Error(`could not start ${binary}`)
  const unregister = killOnExit(() => child.kill("SIGKILL"))
  // a watchdog: Jaeger dies with this process even when it is SIGKILLed (no exit handlers run then)
  const watchdog = spawn(
    "sh",
    [
      "-c",
      'while kill -0 "$1" 2>/dev/null; do sleep 1; done; kill -9 "$2" 2>/dev/null',
      "jaeger-watchdog",
      String(process.pid),
      String(pid)
    ],
    { detached: true, stdio: "ignore" }
  )
  watchdog.unref()
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const logs = (lines = 40) => {
    try {
      return fs.readFileSync(logFile, "utf8").split("\n").slice(-lines).join("\n")
    } catch {
      return ""
    }
  }
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM")
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000)
      await exited
      clearTimeout(timer)
    }
    unregister()
    if (watchdog.pid !== undefined && watchdog.exitCode === null) {
      try {
        process.kill(-watchdog.pid, "SIGKILL")
      } catch {
        // already gone
      }
    }
  }
  const queryUrl = `http://127.0.0.1:${queryHttp}`
  const otlpUrl = `http://127.0.0.1:${otlpHttp}`
  const deadline = Date.now() + (options.startTimeoutMs ?? 60_000)
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      unregister()
      throw new Error(`jaeger exited before it was ready (${child.exitCode ?? child.signalCode}):\n${logs()}`)
    }
    const ready =
      (await fetch(`${queryUrl}/api/services`).then(
        (r) => r.ok,
        () => false
      )) &&
      (await fetch(`${otlpUrl}/v1/traces`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}"
      }).then(
        (r) => r.ok,
        () => false
      ))
    if (ready) break
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`jaeger did not answer within ${options.startTimeoutMs ?? 60_000} ms:\n${logs()}`)
    }
    await sleep(100)
  }
  return { otlpUrl, queryUrl, pid, dir, logs, stop }
}
