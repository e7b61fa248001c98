// Where the test bed keeps things on disk. Everything lives under one git-ignored directory:
//
//   .kafka/libs-<version>/                 broker jars resolved by Maven (+ .complete marker)
//   .kafka/run/<cluster>/cluster.json      what was started, by whom (see ClusterInfo)
//   .kafka/run/<cluster>/node-<id>/        server.properties, pid, data/, logs/{server,stdout,stderr}.log
//   .kafka/run/current.json                the cluster the CLI started (`npm run kafka -- start`)
//
// Broker data and logs stay after a run so a failure can be read; old cluster directories are pruned.
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export type KafkaVersion = "3.9.2" | "4.1.2"
export const kafkaVersions: ReadonlyArray<KafkaVersion> = ["3.9.2", "4.1.2"]
export const defaultKafkaVersion: KafkaVersion = "3.9.2"

export const isKafkaVersion = (value: string): value is KafkaVersion =>
  (kafkaVersions as ReadonlyArray<string>).includes(value)

/** The broker version to test against: `KAFKA_VERSION` from the environment, else 3.9.2. */
export const kafkaVersionFromEnv = (env: NodeJS.ProcessEnv = process.env): KafkaVersion => {
  const value = env.KAFKA_VERSION
  if (value === undefined || value === "") return defaultKafkaVersion
  if (!isKafkaVersion(value))
    throw new Error(`KAFKA_VERSION=${value} is not supported; use ${kafkaVersions.join(" or ")}`)
  return value
}

/** The `.kafka` directory of the project being tested (the working directory), or `KAFKA_TESTBED_HOME`. */
export const testbedHome = (): string => path.resolve(process.env.KAFKA_TESTBED_HOME ?? ".kafka")

export const runDir = (): string => path.join(testbedHome(), "run")
export const libsDir = (version: KafkaVersion): string => path.join(testbedHome(), `libs-${version}`)

/** The POM and log config of a version line, shipped beside this file (testbed/kafka-3.9, testbed/kafka-4.1). */
export const configDir = (version: KafkaVersion): string =>
  path.join(path.dirname(fileURLToPath(import.meta.url)), version.startsWith("3.") ? "kafka-3.9" : "kafka-4.1")

export const logConfigFile = (version: KafkaVersion): string =>
  path.join(configDir(version), version.startsWith("3.") ? "log4j.properties" : "log4j2.properties")

export const nodeDir = (clusterDir: string, id: number): string => path.join(clusterDir, `node-${id}`)
export const pidFile = (clusterDir: string, id: number): string => path.join(nodeDir(clusterDir, id), "pid")
export const propertiesFile = (clusterDir: string, id: number): string =>
  path.join(nodeDir(clusterDir, id), "server.properties")
export const nodeLogDir = (clusterDir: string, id: number): string => path.join(nodeDir(clusterDir, id), "logs")
export const serverLogFile = (clusterDir: string, id: number): string =>
  path.join(nodeLogDir(clusterDir, id), "server.log")

export interface NodeInfo {
  readonly id: number
  readonly brokerPort: number
  readonly controllerPort: number
  readonly saslPort: number | undefined
}

/** cluster.json: enough for another process (the CLI, a reaper) to find and control the JVMs. */
export interface ClusterInfo {
  readonly version: KafkaVersion
  readonly clusterId: string
  readonly bootstrap: string
  readonly saslBootstrap: string | undefined
  readonly nodes: ReadonlyArray<NodeInfo>
  /** The Node.js process that started the JVMs; when it is gone, its JVMs are orphans (unless detached). */
  readonly ownerPid: number
  /** Started by the CLI to outlive it: never reaped as an orphan, only stopped by `npm run kafka -- stop`. */
  readonly detached: boolean
  readonly startedAt: string
}

const clusterFile = (clusterDir: string): string => path.join(clusterDir, "cluster.json")

export const writeClusterInfo = (clusterDir: string, info: ClusterInfo): void =>
  fs.writeFileSync(clusterFile(clusterDir), `${JSON.stringify(info, null, 2)}\n`)

export const readClusterInfo = (clusterDir: string): ClusterInfo | undefined => {
  try {
    return JSON.parse(fs.readFileSync(clusterFile(clusterDir), "utf8")) as ClusterInfo
  } catch {
    return undefined
  }
}

export const readPid = (clusterDir: string, id: number): number | undefined => {
  try {
    const pid = Number.parseInt(fs.readFileSync(pidFile(clusterDir, id), "utf8"), 10)
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

let clusterCounter = 0

/** A new, unique cluster directory; names sort by start time. */
export const newClusterDir = (version: KafkaVersion, nodes: number): string => {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-")
  clusterCounter += 1
  const dir = path.join(runDir(), `${stamp}-${version}-${nodes}n-p${process.pid}-${clusterCounter}`)
  fs.mkdirSync(dir, { recursive: true })
  return dir
}

/** All cluster directories under .kafka/run, oldest first. */
export const listClusterDirs = (): Array<string> => {
  try {
    return fs
      .readdirSync(runDir(), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => path.join(runDir(), entry.name))
      .sort()
  } catch {
    return []
  }
}

const currentFile = (): string => path.join(runDir(), "current.json")

/** The cluster the CLI started, if any. */
export const readCurrentClusterDir = (): string | undefined => {
  try {
    const { clusterDir } = JSON.parse(fs.readFileSync(currentFile(), "utf8")) as { clusterDir: string }
    return clusterDir
  } catch {
    return undefined
  }
}

export const writeCurrentClusterDir = (clusterDir: string): void => {
  fs.mkdirSync(runDir(), { recursive: true })
  fs.writeFileSync(currentFile(), `${JSON.stringify({ clusterDir }, null, 2)}\n`)
}

export const clearCurrentClusterDir = (): void => fs.rmSync(currentFile(), { force: true })

/** The last `lines` lines of a file ("" when it does not exist); reads only the file's tail. */
export const tailFile = (file: string, lines: number): string => {
  let fd: number
  try {
    fd = fs.openSync(file, "r")
  } catch {
    return ""
  }
  try {
    const size = fs.fstatSync(fd).size
    const length = Math.min(size, 256 * 1024)
    const buffer = Buffer.alloc(length)
    fs.readSync(fd, buffer, 0, length, size - length)
    return buffer
      .toString("utf8")
      .split("\n")
      .slice(-lines - 1)
      .join("\n")
      .trimEnd()
  } finally {
    fs.closeSync(fd)
  }
}
