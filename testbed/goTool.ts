/**
 * Test-bed tools that no package ships here (Jaeger, toxiproxy), built once with Go from the Go module proxy
 * into a per-user cache and reused from there:
 *
 *   const tool = goTool({ name: "toxiproxy", version: "2.12.0", envDir: "TOXIPROXY_CACHE_DIR", probe: ["-version"] })
 *   tool.problem()   // why it cannot run here (no binary and no Go), or undefined
 *   await tool.ensure({ build: async (go, work, out) => go(work, ["install", ...]) })
 *
 * Cache: `$<envDir>`, else `$XDG_CACHE_HOME/effect-kafka-publisher/<name>-<version>`, else `~/.cache/...`. Builds
 * run at `nice -n 19` (the machine is shared) under a lock directory, so parallel test files build once.
 *
 * @module
 */
import { execFile, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { killOnExit } from "./processes.ts"

const execFileAsync = promisify(execFile)

/** `$GOROOT/bin/go` when GOROOT is set, else `go` from PATH. */
export const goCommand = (): string => (process.env.GOROOT ? path.join(process.env.GOROOT, "bin", "go") : "go")

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Runs `body` holding `lock` (a directory: mkdir is atomic). A lock whose owner process is gone (a crashed run)
 * is taken over.
 */
export const withLock = async <A>(lock: string, timeoutMs: number, body: () => Promise<A>): Promise<A> => {
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

/** Runs a Go command at lowest CPU priority in `cwd`, with `env` added; its output goes into errors. */
export type RunGo = (
  cwd: string,
  args: ReadonlyArray<string>,
  timeoutMs: number,
  env?: Readonly<Record<string, string>>
) => Promise<void>

/** See `RunGo`. */
export const runGo: RunGo = async (cwd, args, timeoutMs, env = {}) => {
  const child = execFileAsync("nice", ["-n", "19", goCommand(), ...args], {
    cwd,
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, GOFLAGS: "-mod=mod", CGO_ENABLED: "0", ...env }
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

/** What a Go-built tool is and how its cached binary is checked. */
export interface GoToolSpec {
  /** Binary and cache directory name, e.g. "jaeger". */
  readonly name: string
  readonly version: string
  /** The environment variable that moves the cache directory, e.g. "JAEGER_CACHE_DIR". */
  readonly envDir: string
  /** Arguments the binary answers with exit status 0 (e.g. ["version"]): a cached binary that runs. */
  readonly probe: ReadonlyArray<string>
  /** The Go version the build needs, for the skip reason (e.g. "1.24+"). */
  readonly goNeeded: string
}

/** Options of `GoTool.ensure`. */
export interface BuildOptions {
  /** Called with one line per step (e.g. console.info), since a cold build can take minutes. */
  readonly progress?: ((line: string) => void) | undefined
  /** Bound of the whole build. Default 40 minutes. */
  readonly timeoutMs?: number | undefined
}

/** A Go-built tool: where it is cached, whether it runs here, how to build it. */
export interface GoTool {
  readonly cacheDir: () => string
  readonly binary: () => string
  /** True when the cached binary is there and runs. */
  readonly cached: () => boolean
  /** Why the tool cannot run here (no cached binary and no Go to build one), or undefined when it can. */
  readonly problem: () => string | undefined
  /**
   * The binary's path, building it first if needed: `build(go, work, output, timeoutMs)` writes the binary to
   * `output` inside the temporary directory `work`; it is copied into the cache only when complete.
   */
  readonly ensure: (
    build: (go: RunGo, work: string, output: string, timeoutMs: number) => Promise<void>,
    options?: BuildOptions
  ) => Promise<string>
}

/** See `GoTool`. */
export const goTool = (spec: GoToolSpec): GoTool => {
  const cacheDir = () =>
    process.env[spec.envDir] ??
    path.join(
      process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"),
      "effect-kafka-publisher",
      `${spec.name}-${spec.version}`
    )
  const binary = () => path.join(cacheDir(), spec.name)
  const cached = () => {
    if (!fs.existsSync(binary())) return false
    const result = spawnSync(binary(), [...spec.probe], { stdio: "ignore", timeout: 30_000 })
    return result.error === undefined && result.status === 0
  }
  const problem = () => {
    if (cached()) return undefined
    const go = spawnSync(goCommand(), ["version"], { encoding: "utf8" })
    if (go.error !== undefined || go.status !== 0)
      return `\`${goCommand()}\` does not run and ${binary()} is not built (the test bed builds ${spec.name} ${spec.version} with Go ${spec.goNeeded})`
    return undefined
  }
  const ensure: GoTool["ensure"] = async (build, options = {}) => {
    if (cached()) return binary()
    const timeoutMs = options.timeoutMs ?? 40 * 60_000
    const progress = options.progress ?? (() => undefined)
    return withLock(`${cacheDir()}.lock`, timeoutMs, async () => {
      if (cached()) return binary() // another process built it while we waited
      const work = fs.mkdtempSync(path.join(os.tmpdir(), `${spec.name}-build-`))
      try {
        const started = Date.now()
        progress(`${spec.name}: building ${spec.version} from the Go module proxy in ${work}`)
        const partial = path.join(work, spec.name)
        await build(runGo, work, partial, timeoutMs)
        fs.mkdirSync(cacheDir(), { recursive: true })
        // rename within the cache directory's file system: copy next to it first
        const staged = `${binary()}.partial-${process.pid}`
        fs.copyFileSync(partial, staged)
        fs.chmodSync(staged, 0o755)
        fs.renameSync(staged, binary())
        progress(`${spec.name}: built in ${Math.round((Date.now() - started) / 1000)} s -> ${binary()}`)
        return binary()
      } finally {
        fs.rmSync(work, { recursive: true, force: true })
      }
    })
  }
  return { cacheDir, binary, cached, problem, ensure }
}
