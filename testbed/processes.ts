// Broker JVM processes by pid: liveness, signals, graceful stop, and never leaving orphans behind.
//
// Three layers keep JVMs from outliving a test run:
// 1. killOnExit: SIGKILL this process's JVMs on exit, SIGINT, SIGTERM and SIGHUP;
// 2. a watchdog shell per cluster that SIGKILLs the JVMs when the owning Node.js process is gone, even if it
//    was SIGKILLed itself (no exit handler runs then);
// 3. reapStaleClusters: pid files in .kafka/run let the next start / `stop` kill what a crashed run left.
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import { listClusterDirs, readClusterInfo, readCurrentClusterDir, readPid, tailFile } from "./layout.ts"

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** /proc/<pid>/stat's state letter: R, S, T (stopped), Z (zombie), ...; undefined when there is no such process. */
export const processState = (pid: number): string | undefined => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    // "pid (comm) S ...": comm may contain spaces and parentheses, the state follows the last ")"
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)
  } catch {
    return undefined
  }
}

/** A process that exists and is not a zombie (an exited child its parent has not reaped yet). */
export const isAlive = (pid: number): boolean => {
  const state = processState(pid)
  return state !== undefined && state !== "Z"
}

/**
 * True when pid is a broker JVM of this cluster: its command line runs kafka.Kafka with a properties file inside
 * clusterDir. Guards every signal sent from a pid file against pid reuse.
 */
export const isBrokerOf = (pid: number, clusterDir: string): boolean => {
  try {
    const args = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")
    const main = args.indexOf("kafka.Kafka")
    return main >= 0 && (args[main + 1] ?? "").startsWith(`${clusterDir}/`)
  } catch {
    return false
  }
}

/** Sends a signal, ignoring a process that is already gone. */
export const signal = (pid: number, name: NodeJS.Signals): void => {
  try {
    process.kill(pid, name)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error
  }
}

export const waitForExit = async (pids: ReadonlyArray<number>, timeoutMs: number): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs
  while (pids.some(isAlive)) {
    if (Date.now() >= deadline) return false
    await sleep(100)
  }
  return true
}

/**
 * Graceful stop of several brokers: SIGCONT (a stopped JVM cannot run its shutdown hook), SIGTERM to all of them
 * AT ONCE, SIGKILL whatever still runs after timeoutMs.
 * All at once matters: a broker's controlled shutdown waits for the controller quorum, so stopping 3 nodes one by
 * one leaves the last one waiting up to 5 minutes for a quorum that no longer exists.
 */
export const stopPids = async (pids: ReadonlyArray<number>, timeoutMs: number): Promise<void> => {
  const live = pids.filter(isAlive)
  for (const pid of live) signal(pid, "SIGCONT")
  for (const pid of live) signal(pid, "SIGTERM")
  if (await waitForExit(live, timeoutMs)) return
  for (const pid of live) signal(pid, "SIGKILL")
  await waitForExit(live, 10_000)
}

// ---- layer 1: exit and signal handlers of this process ----

const exitKillers = new Set<() => void>()
let handlersInstalled = false

const killAllNow = (): void => {
  for (const kill of exitKillers) kill()
}

const onSignal = (name: NodeJS.Signals): void => {
  killAllNow()
  // we were the only listener: do what the signal would have done without us
  if (process.listenerCount(name) === 0) process.kill(process.pid, name)
}

/** Runs `kill` (synchronously) if this process exits or is interrupted; returns the unregister function. */
export const killOnExit = (kill: () => void): (() => void) => {
  if (!handlersInstalled) {
    handlersInstalled = true
    process.on("exit", killAllNow)
    for (const name of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(name, onSignal)
  }
  exitKillers.add(kill)
  return () => exitKillers.delete(kill)
}

// ---- layer 2: the watchdog ----

// Polls the owner once a second; when it is gone, SIGKILLs every JVM whose pid file is in the cluster directory
// and whose command line is a broker of that directory (the same check as isBrokerOf).
const watchdogScript = `
owner=$1; dir=$2
while kill -0 "$owner" 2>/dev/null; do sleep 1; done
for f in "$dir"/node-*/pid; do
  [ -f "$f" ] || continue
  p=$(cat "$f")
  tr '\\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $dir/" && kill -9 "$p"
done
`

/** Starts the watchdog of clusterDir's JVMs; returns a function that ends it (on a normal stop). */
export const startWatchdog = (clusterDir: string, ownerPid: number = process.pid): (() => void) => {
  const child = spawn("sh", ["-c", watchdogScript, "kafka-testbed-watchdog", String(ownerPid), clusterDir], {
    detached: true,
    stdio: "ignore"
  })
  child.unref()
  return () => {
    if (child.pid !== undefined && child.exitCode === null) signal(-child.pid, "SIGKILL")
  }
}

// ---- layer 3: reaping what a crashed run left behind ----

/** The live broker JVMs of a cluster directory, by node id, from its pid files. */
export const livePids = (clusterDir: string): Map<number, number> => {
  const result = new Map<number, number>()
  for (const node of readClusterInfo(clusterDir)?.nodes ?? []) {
    const pid = readPid(clusterDir, node.id)
    if (pid !== undefined && isAlive(pid) && isBrokerOf(pid, clusterDir)) result.set(node.id, pid)
  }
  return result
}

/**
 * SIGKILLs the broker JVMs of every cluster in .kafka/run whose owning process is gone (a crashed or killed test
 * run). Clusters started detached by the CLI are left alone unless includeDetached. Returns the killed pids.
 */
export const reapStaleClusters = async (options: { readonly includeDetached?: boolean } = {}): Promise<number[]> => {
  const killed: Array<number> = []
  for (const clusterDir of listClusterDirs()) {
    const info = readClusterInfo(clusterDir)
    if (info === undefined) continue
    if (info.detached ? options.includeDetached !== true : isAlive(info.ownerPid)) continue
    for (const pid of livePids(clusterDir).values()) {
      signal(pid, "SIGKILL")
      killed.push(pid)
    }
  }
  await waitForExit(killed, 10_000)
  return killed
}

/**
 * Deletes old cluster directories (data and logs), oldest first, keeping the newest `keep`, the CLI's current
 * cluster and any directory with a live broker.
 */
export const pruneClusterDirs = (keep: number): void => {
  const current = readCurrentClusterDir()
  const dirs = listClusterDirs()
  for (const clusterDir of dirs.slice(0, Math.max(0, dirs.length - keep))) {
    if (clusterDir === current || livePids(clusterDir).size > 0) continue
    fs.rmSync(clusterDir, { recursive: true, force: true })
  }
}

/** A helper process (Jaeger, toxiproxy) that dies with this process. */
export interface HelperProcess {
  readonly pid: number
  /** True once it exited. */
  readonly exited: () => boolean
  /** The tail of its log file (stdout and stderr). */
  readonly logs: (lines?: number) => string
  /** SIGTERM, SIGKILL after the grace time; idempotent. */
  readonly stop: () => Promise<void>
}

/**
 * Spawns `binary` with stdout and stderr into `logFile`. It is SIGKILLed when this process exits, and by a
 * watchdog shell when this process dies without running its handlers (SIGKILL).
 */
export const spawnHelper = (
  binary: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd: string; readonly logFile: string; readonly name: string; readonly graceMs: number }
): HelperProcess => {
  const log = fs.openSync(options.logFile, "a")
  const child = spawn(binary, [...args], { cwd: options.cwd, stdio: ["ignore", log, log] })
  fs.closeSync(log)
  const pid = child.pid
  if (pid === undefined) throw new Error(`could not start ${binary}`)
  const unregister = killOnExit(() => child.kill("SIGKILL"))
  const watchdog = spawn(
    "sh",
    [
      "-c",
      'while kill -0 "$1" 2>/dev/null; do sleep 1; done; kill -9 "$2" 2>/dev/null',
      options.name,
      String(process.pid),
      String(pid)
    ],
    { detached: true, stdio: "ignore" }
  )
  watchdog.unref()
  const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const exited = () => child.exitCode !== null || child.signalCode !== null
  return {
    pid,
    exited,
    logs: (lines = 40) => tailFile(options.logFile, lines),
    stop: async () => {
      if (!exited()) {
        child.kill("SIGTERM")
        const timer = setTimeout(() => child.kill("SIGKILL"), options.graceMs)
        await gone
        clearTimeout(timer)
      }
      unregister()
      if (watchdog.pid !== undefined && watchdog.exitCode === null) signal(-watchdog.pid, "SIGKILL")
    }
  }
}
