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
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type BuildOptions, goTool } from "./goTool.ts"
import { freePorts } from "./ports.ts"
import { spawnHelper } from "./processes.ts"

/** The Jaeger release the test bed builds. */
export const jaegerVersion = "1.76.0"

const jaegerModule = "github.com/jaegertracing/jaeger/cmd/jaeger"

const tool = goTool({
  name: "jaeger",
  version: jaegerVersion,
  envDir: "JAEGER_CACHE_DIR",
  probe: ["version"],
  goNeeded: "1.24+"
})

export { type BuildOptions, goCommand } from "./goTool.ts"

/** `$JAEGER_CACHE_DIR`, else `$XDG_CACHE_HOME/effect-kafka-publisher/jaeger-<version>`, else `~/.cache/...`. */
export const jaegerCacheDir = (): string => tool.cacheDir()

/** Where the built binary is kept. */
export const jaegerBinary = (): string => tool.binary()

/** True when the cached binary is there and runs (`jaeger version`). */
export const jaegerCached = (): boolean => tool.cached()

/** Why Jaeger cannot run here (no cached binary and no Go to build one), or undefined when it can. */
export const jaegerProblem = (): string | undefined => tool.problem()

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * The path of the Jaeger binary, building it on first use (see the top of this file): a throwaway module that
 * requires Jaeger as a tool, built in a temporary directory (see `goTool`).
 */
export const ensureJaeger = (options: BuildOptions = {}): Promise<string> =>
  tool.ensure(async (go, work, output, timeoutMs) => {
    await go(work, ["mod", "init", "jaegerbuild"], 60_000)
    await go(work, ["get", "-tool", `${jaegerModule}@v${jaegerVersion}`], timeoutMs)
    await go(work, ["build", "-trimpath", "-o", output, jaegerModule], timeoutMs)
  }, options)

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
  const helper = spawnHelper(binary, ["--config", `file:${configFile}`], {
    cwd: dir,
    logFile,
    name: "jaeger-watchdog",
    graceMs: 10_000
  })
  const { pid, logs, stop } = helper
  const queryUrl = `http://127.0.0.1:${queryHttp}`
  const otlpUrl = `http://127.0.0.1:${otlpHttp}`
  const deadline = Date.now() + (options.startTimeoutMs ?? 60_000)
  for (;;) {
    if (helper.exited()) {
      await stop()
      throw new Error(`jaeger exited before it was ready:\n${logs()}`)
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
