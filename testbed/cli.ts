// A real Kafka broker for manual testing, left running in the background.
//
//   npm run kafka -- start [--nodes 1|3] [--version 3.9.2|4.1.2]   prints the bootstrap address on stdout
//   npm run kafka -- status
//   npm run kafka -- pause N | resume N                           SIGSTOP / SIGCONT node N
//   npm run kafka -- logs N [LINES]                               tail of node N's server.log
//   npm run kafka -- stop                                         also kills JVMs left by crashed test runs
//   npm run kafka -- fetch [--version V]                          only download the jars (e.g. to warm a CI cache)
//
// The running cluster is recorded in .kafka/run/current.json; its files are in .kafka/run/<cluster>/.
import { parseArgs } from "node:util"
import { ensureJars } from "./jars.ts"
import { startCluster } from "./KafkaCluster.ts"
import {
  type ClusterInfo,
  clearCurrentClusterDir,
  isKafkaVersion,
  type KafkaVersion,
  kafkaVersionFromEnv,
  kafkaVersions,
  readClusterInfo,
  readCurrentClusterDir,
  serverLogFile,
  tailFile,
  writeCurrentClusterDir
} from "./layout.ts"
import { livePids, processState, reapStaleClusters, signal, stopPids } from "./processes.ts"

const usage = `usage: npm run kafka -- <command>
  start [--nodes 1|3] [--version ${kafkaVersions.join("|")}]   start a cluster in the background, print its bootstrap
  status                                       show the running cluster
  pause N | resume N                           SIGSTOP / SIGCONT node N
  logs N [LINES]                               tail node N's server.log
  stop                                         stop it (and kill JVMs left by crashed test runs)
  fetch [--version V]                          download the broker jars only
The version defaults to KAFKA_VERSION, else 3.9.2.`

class UsageError extends Error {}

interface Current {
  readonly dir: string
  readonly info: ClusterInfo
  /** node id -> pid of its live broker JVM */
  readonly pids: Map<number, number>
}

/** The cluster recorded in current.json, if any of its JVMs still runs. */
const runningCluster = (): Current | undefined => {
  const dir = readCurrentClusterDir()
  const info = dir === undefined ? undefined : readClusterInfo(dir)
  if (dir === undefined || info === undefined) return undefined
  const pids = livePids(dir)
  return pids.size === 0 ? undefined : { dir, info, pids }
}

const requireRunning = (): Current => {
  const current = runningCluster()
  if (current === undefined) throw new UsageError("no cluster is running (npm run kafka -- start)")
  return current
}

const versionOption = (value: string | undefined): KafkaVersion => {
  if (value === undefined) return kafkaVersionFromEnv()
  if (!isKafkaVersion(value)) throw new UsageError(`--version must be one of ${kafkaVersions.join(", ")}`)
  return value
}

const nodeArgument = (current: Current, value: string | undefined): number => {
  const id = Number(value)
  if (!current.info.nodes.some((node) => node.id === id))
    throw new UsageError(`node must be one of ${current.info.nodes.map((node) => node.id).join(", ")}`)
  return id
}

const start = async (options: { nodes?: string | undefined; version?: string | undefined }): Promise<void> => {
  const existing = runningCluster()
  if (existing !== undefined)
    throw new UsageError(`a cluster is already running at ${existing.info.bootstrap}; stop it first`)
  const nodes = options.nodes === undefined ? 1 : Number(options.nodes)
  if (nodes !== 1 && nodes !== 3) throw new UsageError("--nodes must be 1 or 3")
  const version = versionOption(options.version)
  console.error(`starting Kafka ${version}, ${nodes} node(s)...`)
  const cluster = await startCluster({ version, nodes, detached: true })
  writeCurrentClusterDir(cluster.dir)
  console.error(`ready in ${(cluster.startupMs / 1000).toFixed(1)} s; files in ${cluster.dir}`)
  console.error("stop it with: npm run kafka -- stop")
  // alone on stdout, for BOOTSTRAP=$(npm run -s kafka -- start)
  console.log(cluster.bootstrap)
}

const stop = async (): Promise<void> => {
  const current = runningCluster()
  if (current !== undefined) {
    const began = Date.now()
    await stopPids([...current.pids.values()], 30_000)
    console.log(`stopped ${current.info.bootstrap} in ${((Date.now() - began) / 1000).toFixed(1)} s`)
  } else {
    console.log("no cluster was running")
  }
  clearCurrentClusterDir()
  const reaped = await reapStaleClusters({ includeDetached: true })
  if (reaped.length > 0) console.log(`killed ${reaped.length} left-over broker JVM(s): ${reaped.join(" ")}`)
}

const status = (): void => {
  const dir = readCurrentClusterDir()
  const info = dir === undefined ? undefined : readClusterInfo(dir)
  if (dir === undefined || info === undefined) {
    console.log("no cluster is running")
    return
  }
  const live = livePids(dir)
  console.log(`Kafka ${info.version}, started ${info.startedAt}, files in ${dir}`)
  console.log(`bootstrap: ${info.bootstrap}`)
  for (const node of info.nodes) {
    const pid = live.get(node.id)
    const state = pid === undefined ? "not running" : processState(pid) === "T" ? "paused" : "running"
    console.log(
      `  node ${node.id}: ${state}${pid === undefined ? "" : ` (pid ${pid})`}, broker port ${node.brokerPort}`
    )
  }
}

const pauseOrResume = (command: "pause" | "resume", value: string | undefined): void => {
  const current = requireRunning()
  const id = nodeArgument(current, value)
  const pid = current.pids.get(id)
  if (pid === undefined) throw new UsageError(`node ${id} is not running`)
  signal(pid, command === "pause" ? "SIGSTOP" : "SIGCONT")
  console.log(`node ${id} (pid ${pid}) ${command === "pause" ? "paused" : "resumed"}`)
}

const main = async (argv: ReadonlyArray<string>): Promise<void> => {
  const { positionals, values } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: { nodes: { type: "string" }, version: { type: "string" }, help: { type: "boolean", short: "h" } }
  })
  const [command, argument, extra] = positionals
  switch (command) {
    case "start":
      return start(values)
    case "stop":
      return stop()
    case "status":
      return status()
    case "pause":
    case "resume":
      return pauseOrResume(command, argument)
    case "logs": {
      const current = requireRunning()
      console.log(tailFile(serverLogFile(current.dir, nodeArgument(current, argument)), Number(extra ?? 60)))
      return
    }
    case "fetch": {
      const version = versionOption(values.version)
      console.log(`Kafka ${version} jars: ${await ensureJars(version)}`)
      return
    }
    default:
      if (values.help !== true && command !== undefined) console.error(`unknown command: ${command}`)
      console.error(usage)
      process.exitCode = values.help === true ? 0 : 2
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof UsageError) {
    console.error(error.message)
    process.exitCode = 2
  } else if ((error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS") === true) {
    console.error(`${(error as Error).message}\n\n${usage}`)
    process.exitCode = 2
  } else {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error)
    process.exitCode = 1
  }
})
