/**
 * Shopify's toxiproxy for network faults between a client and the brokers (latency, black holes, resets, slow
 * links, a link down), built with Go from the Go module proxy into a cache (see `goTool.ts`) and driven through
 * its HTTP API:
 *
 *   const toxi = await startToxiproxy()
 *   const proxy = await toxi.proxy("node-1", 9092)      // listens on a free loopback port -> 127.0.0.1:9092
 *   await proxy.latency({ latencyMs: 50, jitterMs: 10 }) // downstream by default
 *   await proxy.down(); await proxy.up()                 // connection refused; back
 *   await proxy.clear()                                  // every toxic removed, enabled again
 *   await toxi.stop()
 *
 * Build: `GOBIN=<work> go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.12.0`, the binary renamed to
 * `toxiproxy` in `$TOXIPROXY_CACHE_DIR`, else `$XDG_CACHE_HOME/effect-kafka-publisher/toxiproxy-2.12.0`, else
 * `~/.cache/...`.
 *
 * @module
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type BuildOptions, goTool } from "./goTool.ts"
import { freePorts } from "./ports.ts"
import { spawnHelper } from "./processes.ts"

/** The toxiproxy release the test bed builds. */
export const toxiproxyVersion = "2.12.0"

const tool = goTool({
  name: "toxiproxy",
  version: toxiproxyVersion,
  envDir: "TOXIPROXY_CACHE_DIR",
  probe: ["-version"],
  goNeeded: "1.22+"
})

/** Why toxiproxy cannot run here (no cached binary and no Go), or undefined when it can. */
export const toxiproxyProblem = (): string | undefined => tool.problem()

/** The path of the toxiproxy server binary, building it on first use. */
export const ensureToxiproxy = (options: BuildOptions = {}): Promise<string> =>
  tool.ensure(async (go, work, output, timeoutMs) => {
    await go(work, ["install", `github.com/Shopify/toxiproxy/v2/cmd/server@v${toxiproxyVersion}`], timeoutMs, {
      GOBIN: work,
      GOFLAGS: ""
    })
    fs.renameSync(path.join(work, "server"), output)
  }, options)

/** Which way a toxic acts: `downstream` is broker -> client, `upstream` client -> broker. */
export type Direction = "upstream" | "downstream"

/** One proxy (one listener of one node) and its faults. Every toxic call names its direction (default downstream). */
export interface ToxicProxy {
  readonly name: string
  /** "127.0.0.1:<port>": what clients connect to. */
  readonly listen: string
  /** Adds latency to every chunk of data. */
  readonly latency: (options: { latencyMs: number; jitterMs?: number; direction?: Direction }) => Promise<void>
  /** Black hole: data stops; the connection stays open (closed after `timeoutMs`, never when 0). */
  readonly blackHole: (options?: { timeoutMs?: number; direction?: Direction }) => Promise<void>
  /** Resets connections with a TCP RST (after `timeoutMs`). */
  readonly resetPeer: (options?: { timeoutMs?: number; direction?: Direction }) => Promise<void>
  /** Limits the link to `rateKBps` KB/s. */
  readonly bandwidth: (options: { rateKBps: number; direction?: Direction }) => Promise<void>
  /** Cuts data into small chunks (`averageSize` bytes +- `sizeVariation`) sent `delayUs` microseconds apart. */
  readonly slicer: (options: {
    averageSize: number
    sizeVariation?: number
    delayUs?: number
    direction?: Direction
  }) => Promise<void>
  /** Disables the proxy: open connections are closed, new ones refused. */
  readonly down: () => Promise<void>
  /** Enables it again. */
  readonly up: () => Promise<void>
  /** Removes one toxic by its type and direction (e.g. "latency", "downstream"). */
  readonly remove: (type: string, direction?: Direction) => Promise<void>
  /** Removes every toxic and enables the proxy. */
  readonly clear: () => Promise<void>
}

/** A running toxiproxy server. */
export interface Toxiproxy {
  /** "http://127.0.0.1:<port>": the HTTP API. */
  readonly apiUrl: string
  /** Creates a proxy on a free loopback port (or `listenPort`) in front of 127.0.0.1:`upstreamPort`. */
  readonly proxy: (name: string, upstreamPort: number, listenPort?: number) => Promise<ToxicProxy>
  /** Every proxy enabled, every toxic removed (POST /reset). */
  readonly reset: () => Promise<void>
  readonly logs: (lines?: number) => string
  /** SIGTERM, SIGKILL after 5 s. */
  readonly stop: () => Promise<void>
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const api = async (base: string, method: string, route: string, body?: unknown): Promise<void> => {
  const response = await fetch(`${base}${route}`, {
    method,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body ?? {})
  })
  if (!response.ok) throw new Error(`toxiproxy ${method} ${route}: ${response.status} ${await response.text()}`)
}

const makeProxy = (base: string, name: string, listen: string): ToxicProxy => {
  // one toxic per type and direction: its name says both, so `remove` can find it
  const toxic = (type: string, direction: Direction | undefined, attributes: Record<string, number>) =>
    api(base, "POST", `/proxies/${name}/toxics`, {
      name: `${type}_${direction ?? "downstream"}`,
      type,
      stream: direction ?? "downstream",
      toxicity: 1,
      attributes
    })
  return {
    name,
    listen,
    latency: (o) => toxic("latency", o.direction, { latency: o.latencyMs, jitter: o.jitterMs ?? 0 }),
    blackHole: (o = {}) => toxic("timeout", o.direction, { timeout: o.timeoutMs ?? 0 }),
    resetPeer: (o = {}) => toxic("reset_peer", o.direction, { timeout: o.timeoutMs ?? 0 }),
    bandwidth: (o) => toxic("bandwidth", o.direction, { rate: o.rateKBps }),
    slicer: (o) =>
      toxic("slicer", o.direction, {
        average_size: o.averageSize,
        size_variation: o.sizeVariation ?? 0,
        delay: o.delayUs ?? 0
      }),
    down: () => api(base, "POST", `/proxies/${name}`, { enabled: false }),
    up: () => api(base, "POST", `/proxies/${name}`, { enabled: true }),
    remove: (type, direction) => api(base, "DELETE", `/proxies/${name}/toxics/${type}_${direction ?? "downstream"}`),
    clear: async () => {
      const response = await fetch(`${base}/proxies/${name}/toxics`)
      const toxics = (await response.json()) as Array<{ name: string }>
      for (const t of toxics) await api(base, "DELETE", `/proxies/${name}/toxics/${t.name}`)
      await api(base, "POST", `/proxies/${name}`, { enabled: true })
    }
  }
}

/** Builds toxiproxy if needed and starts it with its API on `port` or a free loopback port; waits until it answers. */
export const startToxiproxy = async (
  options: BuildOptions & { readonly startTimeoutMs?: number; readonly port?: number } = {}
): Promise<Toxiproxy> => {
  const binary = await ensureToxiproxy(options)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "toxiproxy-run-"))
  const port = options.port ?? ((await freePorts(1))[0] as number)
  const logFile = path.join(dir, "toxiproxy.log")
  const helper = spawnHelper(binary, ["-host", "127.0.0.1", "-port", String(port)], {
    cwd: dir,
    logFile,
    name: "toxiproxy-watchdog",
    graceMs: 5_000
  })
  const { logs, stop } = helper
  const apiUrl = `http://127.0.0.1:${port}`
  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000)
  while (
    !(await fetch(`${apiUrl}/version`).then(
      (r) => r.ok,
      () => false
    ))
  ) {
    if (helper.exited() || Date.now() > deadline) {
      await stop()
      throw new Error(`toxiproxy did not answer on ${apiUrl}:\n${logs()}`)
    }
    await sleep(50)
  }
  return {
    apiUrl,
    proxy: async (name, upstreamPort, listenPort) => {
      const listen = `127.0.0.1:${listenPort ?? ((await freePorts(1))[0] as number)}`
      await api(apiUrl, "POST", "/proxies", { name, listen, upstream: `127.0.0.1:${upstreamPort}`, enabled: true })
      return makeProxy(apiUrl, name, listen)
    },
    reset: () => api(apiUrl, "POST", "/reset"),
    logs,
    stop
  }
}
