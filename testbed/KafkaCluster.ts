// A real Apache Kafka cluster (KRaft, 1 or 3 nodes, each broker + controller) on 127.0.0.1, for tests.
// No Docker, no tarball: `java -cp '.kafka/libs-<version>/*' kafka.Kafka server.properties`, jars from Maven.
//
//   const cluster = await startCluster({ nodes: 3 })        // version: KAFKA_VERSION or 3.9.2
//   new Kafka({ brokers: cluster.brokers })
//   cluster.pause(2); cluster.resume(2)                      // SIGSTOP / SIGCONT
//   await cluster.kill(3); await cluster.restart(3)          // SIGKILL; start again on the same data
//   await cluster.stop()
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import { formatArgs, jvmArgs, type PropertyValue, type SaslOptions, serverProperties } from "./brokerConfig.ts"
import { proxyPortCount, startProxies } from "./clusterProxies.ts"
import { ensureJars, javaCommand, toolchainProblem } from "./jars.ts"
import {
  type ClusterInfo,
  type KafkaVersion,
  kafkaVersionFromEnv,
  type NodeInfo,
  newClusterDir,
  nodeDir,
  nodeLogDir,
  pidFile,
  propertiesFile,
  serverLogFile,
  tailFile,
  writeClusterInfo
} from "./layout.ts"
import { freePorts } from "./ports.ts"
import {
  isAlive,
  killOnExit,
  pruneClusterDirs,
  reapStaleClusters,
  signal,
  startWatchdog,
  stopPids,
  waitForExit
} from "./processes.ts"
import { fileSize, waitReady } from "./readiness.ts"
import type { ToxicProxy, Toxiproxy } from "./toxiproxy.ts"

export type { SaslOptions, ScramUser } from "./brokerConfig.ts"
export { ensureJars, toolchainProblem } from "./jars.ts"
export { type KafkaVersion, kafkaVersionFromEnv } from "./layout.ts"
export { reapStaleClusters } from "./processes.ts"

const execFileAsync = promisify(execFile)

export interface StartClusterOptions {
  /** default: KAFKA_VERSION from the environment, else 3.9.2 */
  readonly version?: KafkaVersion
  /** 1 (RF 1) or 3 (RF 3, min.insync.replicas 2); default 1 */
  readonly nodes?: 1 | 3
  /** added to (and overriding) every node's server.properties */
  readonly extraProps?: Readonly<Record<string, PropertyValue>>
  /** an extra SASL_PLAINTEXT listener with SCRAM users, and optionally an authorizer */
  readonly sasl?: SaslOptions
  /** JVM heap per node; default 512m */
  readonly heap?: string
  /** default 120 s */
  readonly startTimeoutMs?: number
  /** graceful stop, then SIGKILL; default 30 s */
  readonly stopTimeoutMs?: number
  /** the JVMs outlive this process (for the CLI); no exit handler, no watchdog */
  readonly detached?: boolean
  /**
   * Toxiproxy in front of each node's CLIENT listener (advertised as the proxy: `cluster.proxyBrokers`); with 3
   * nodes also in front of the inter-broker (REPLICATION) listener and, per node, its links to every controller (its quorum voters name the
   * proxies). `cluster.proxies` holds the controls. PLAINTEXT (`cluster.brokers`) stays direct, for set-up code.
   */
  readonly proxy?: boolean
}

/** The proxies of one node (`startCluster({ proxy: true })`). */
export interface NodeProxies {
  /** client -> this node's CLIENT listener */
  readonly client: ToxicProxy
  /** other brokers -> this node's REPLICATION listener (3 nodes) */
  readonly replication: ToxicProxy | undefined
  /** this node -> each controller, by controller id (3 nodes): down all of them and the node is cut off from the quorum */
  readonly controllerLinks: ReadonlyMap<number, ToxicProxy>
  /**
   * in front of this node's CONTROLLER listener, which it advertises (3 nodes): a quorum leader's followers fetch
   * from there (Kafka 3.9+ hands them the leader's advertised endpoint), so cutting a node off takes this one too
   */
  readonly controller: ToxicProxy | undefined
}

export type NodeState = "running" | "paused" | "exited"

export interface KafkaNode {
  readonly id: number
  /** the JVM's pid (changes on restart) */
  readonly pid: number | undefined
  readonly state: NodeState
  readonly brokerPort: number
  readonly controllerPort: number
  readonly saslPort: number | undefined
  /** node directory: server.properties, pid, data/, logs/ */
  readonly dir: string
  readonly serverLog: string
}

export interface KafkaCluster {
  readonly version: KafkaVersion
  readonly clusterId: string
  /** .kafka/run/<cluster>: stays after stop() so logs can be read */
  readonly dir: string
  /** "127.0.0.1:p1,127.0.0.1:p2,..." (PLAINTEXT) */
  readonly bootstrap: string
  /** the same as an array, for `new Kafka({ brokers })` */
  readonly brokers: Array<string>
  /** the SASL_PLAINTEXT listeners, when started with `sasl` */
  readonly saslBootstrap: string | undefined
  readonly saslBrokers: Array<string> | undefined
  readonly nodes: ReadonlyArray<KafkaNode>
  /** the CLIENT listeners through their proxies ("127.0.0.1:p1,..."), when started with `proxy` */
  readonly proxyBootstrap: string | undefined
  readonly proxyBrokers: Array<string> | undefined
  /** the proxies by node id, when started with `proxy` */
  readonly proxies: ReadonlyMap<number, NodeProxies> | undefined
  /** the toxiproxy server, when started with `proxy` (`reset()` clears every fault) */
  readonly toxiproxy: Toxiproxy | undefined
  /** wall time from startCluster() to ready, including the storage format */
  readonly startupMs: number
  /** SIGSTOP: the JVM freezes (no heartbeats, open sockets stay open but silent) */
  pause(id: number): void
  /** SIGCONT */
  resume(id: number): void
  /** SIGKILL, and wait until the process is gone */
  kill(id: number): Promise<void>
  /** SIGTERM (graceful, controlled shutdown), SIGKILL after the stop timeout */
  terminate(id: number): Promise<void>
  /**
   * Terminates the node if it runs, starts it again on the same data (no format) and waits until every running
   * broker sees it. After a kill() this takes about 10 s: the controller refuses the new registration
   * (DUPLICATE_BROKER_REGISTRATION) until the old one's session expires (broker.session.timeout.ms, 9 s; lower it
   * with extraProps, together with broker.heartbeat.interval.ms, to shorten this).
   */
  restart(id: number): Promise<void>
  /** SIGCONT paused nodes, SIGTERM all at once, SIGKILL after the stop timeout; idempotent */
  stop(): Promise<void>
  /** the tail of a node's server.log (and stderr.log when not empty), for failure reports */
  logs(id: number, lines?: number): string
}

/** Same format as Kafka's Uuid.randomUuid().toString(): 16 random bytes, base64url, not starting with "-". */
export const kafkaClusterId = (): string => {
  for (;;) {
    const id = randomBytes(16).toString("base64url")
    if (!id.startsWith("-")) return id
  }
}

interface NodeProcess {
  readonly info: NodeInfo
  child: ChildProcess | undefined
  exitReason: string | undefined
  paused: boolean
}

const nodeLogs = (clusterDir: string, id: number, lines: number): string => {
  const server = tailFile(serverLogFile(clusterDir, id), lines)
  const stderr = tailFile(path.join(nodeLogDir(clusterDir, id), "stderr.log"), lines)
  const header = `--- node ${id}: ${serverLogFile(clusterDir, id)} ---`
  return stderr === "" ? `${header}\n${server}` : `${header}\n${server}\n--- node ${id}: stderr.log ---\n${stderr}`
}

export const startCluster = async (options: StartClusterOptions = {}): Promise<KafkaCluster> => {
  const began = Date.now()
  const version = options.version ?? kafkaVersionFromEnv()
  const nodeCount = options.nodes ?? 1
  const heap = options.heap ?? "512m"
  const startTimeoutMs = options.startTimeoutMs ?? 120_000
  const stopTimeoutMs = options.stopTimeoutMs ?? 30_000
  const detached = options.detached ?? false
  const java = javaCommand()

  const problem = toolchainProblem(version)
  if (problem !== undefined) throw new Error(`cannot start a Kafka ${version} broker: ${problem}`)
  await reapStaleClusters()
  pruneClusterDirs(20)
  const libs = await ensureJars(version)

  // ports, cluster.json and every node's server.properties
  const portsPerNode = options.sasl === undefined ? 2 : 3
  const proxyPorts = options.proxy === true ? proxyPortCount(nodeCount) : 0
  const ports = await freePorts(nodeCount * portsPerNode + proxyPorts)
  const infos: Array<NodeInfo> = Array.from({ length: nodeCount }, (_, index) => ({
    id: index + 1,
    brokerPort: ports[index * portsPerNode]!,
    controllerPort: ports[index * portsPerNode + 1]!,
    saslPort: options.sasl === undefined ? undefined : ports[index * portsPerNode + 2]!
  }))
  const proxied = options.proxy === true ? await startProxies(infos, ports.slice(nodeCount * portsPerNode)) : undefined
  // each node reaches the controllers through its own links when proxied
  const votersOf = (from: number) =>
    infos
      .map((node) => {
        const link = proxied?.get(from)?.controllerLinks.get(node.id)?.listen
        return `${node.id}@${link ?? `127.0.0.1:${node.controllerPort}`}`
      })
      .join(",")
  const proxyBrokers = proxied === undefined ? undefined : infos.map((node) => proxied.get(node.id)!.client.listen)
  const brokers = infos.map((node) => `127.0.0.1:${node.brokerPort}`)
  const saslBrokers = options.sasl === undefined ? undefined : infos.map((node) => `127.0.0.1:${node.saslPort}`)
  const clusterId = kafkaClusterId()
  const dir = newClusterDir(version, nodeCount)
  const info: ClusterInfo = {
    version,
    clusterId,
    bootstrap: brokers.join(","),
    saslBootstrap: saslBrokers?.join(","),
    nodes: infos,
    ownerPid: process.pid,
    detached,
    startedAt: new Date(began).toISOString()
  }
  writeClusterInfo(dir, info)
  for (const node of infos) {
    fs.mkdirSync(nodeLogDir(dir, node.id), { recursive: true })
    const properties = serverProperties({
      version,
      nodeId: node.id,
      clusterSize: nodeCount,
      brokerPort: node.brokerPort,
      controllerPort: node.controllerPort,
      saslPort: node.saslPort,
      voters: votersOf(node.id),
      dataDir: path.join(nodeDir(dir, node.id), "data"),
      sasl: options.sasl,
      extraProps: options.extraProps,
      proxied: proxied?.get(node.id)?.listeners
    })
    fs.writeFileSync(propertiesFile(dir, node.id), properties)
  }

  // format every node's storage with the same cluster id (in parallel: one short JVM each)
  await Promise.all(
    infos.map(async (node) => {
      const args = [
        ...jvmArgs({ version, libsDir: libs, logDir: nodeLogDir(dir, node.id), heap: "256m" }),
        ...formatArgs(clusterId, propertiesFile(dir, node.id), options.sasl)
      ]
      try {
        await execFileAsync(java, args, { timeout: 120_000 })
      } catch (cause) {
        const { stdout = "", stderr = "" } = cause as { stdout?: string; stderr?: string }
        throw new Error(`formatting Kafka ${version} node ${node.id} in ${dir} failed:\n${stdout}${stderr}`, { cause })
      }
    })
  )

  // start ALL nodes before waiting for any: each node's start blocks until a controller quorum exists
  const processes: Array<NodeProcess> = infos.map((node) => ({
    info: node,
    child: undefined,
    exitReason: undefined,
    paused: false
  }))
  const byId = (id: number): NodeProcess => {
    const node = processes.find((candidate) => candidate.info.id === id)
    if (node === undefined) throw new Error(`no Kafka node ${id} (nodes: 1..${nodeCount})`)
    return node
  }
  const pidOf = (node: NodeProcess): number | undefined => node.child?.pid
  const isRunning = (node: NodeProcess): boolean => {
    const pid = pidOf(node)
    return pid !== undefined && node.exitReason === undefined && isAlive(pid)
  }

  const launch = (node: NodeProcess): void => {
    const logDir = nodeLogDir(dir, node.info.id)
    const stdout = fs.openSync(path.join(logDir, "stdout.log"), "a")
    const stderr = fs.openSync(path.join(logDir, "stderr.log"), "a")
    const args = [
      ...jvmArgs({ version, libsDir: libs, logDir, heap }),
      "kafka.Kafka",
      propertiesFile(dir, node.info.id)
    ]
    const child = spawn(java, args, { stdio: ["ignore", stdout, stderr], detached })
    fs.closeSync(stdout)
    fs.closeSync(stderr)
    node.child = child
    node.exitReason = undefined
    node.paused = false
    child.on("error", (error) => {
      node.exitReason = `could not be started (${error.message})`
    })
    child.on("exit", (code, signalName) => {
      if (node.child === child) node.exitReason = `exited (${signalName ?? `code ${code}`})`
    })
    if (detached) child.unref()
    if (child.pid !== undefined) fs.writeFileSync(pidFile(dir, node.info.id), `${child.pid}\n`)
  }

  const killAllNow = (): void => {
    for (const node of processes) {
      const pid = pidOf(node)
      if (pid !== undefined && isRunning(node)) signal(pid, "SIGKILL")
    }
  }
  const unregisterExitKill = detached ? () => false : killOnExit(killAllNow)
  const stopWatchdog = detached ? () => undefined : startWatchdog(dir)

  const waitNodesReady = (starting: ReadonlyArray<NodeProcess>, offsets: ReadonlyArray<number>) =>
    waitReady({
      what: `Kafka ${version}`,
      nodes: starting.map((node, index) => ({
        id: node.info.id,
        serverLog: serverLogFile(dir, node.info.id),
        fromByte: offsets[index]!,
        exited: () => node.exitReason
      })),
      // ask only nodes that can answer: a paused broker accepts TCP connections but never replies
      brokers: processes.filter((node) => isRunning(node) && !node.paused).map((node) => brokers[node.info.id - 1]!),
      timeoutMs: startTimeoutMs
    })

  const offsets = processes.map((node) => fileSize(serverLogFile(dir, node.info.id)))
  for (const node of processes) launch(node)
  try {
    await waitNodesReady(processes, offsets)
  } catch (error) {
    killAllNow()
    await waitForExit(
      processes.map(pidOf).filter((pid) => pid !== undefined),
      10_000
    )
    unregisterExitKill()
    stopWatchdog()
    await proxied?.toxiproxy.stop()
    const logs = processes.map((node) => nodeLogs(dir, node.info.id, 40)).join("\n")
    throw new Error(`${(error as Error).message}\nbroker files: ${dir}\n${logs}`, { cause: error })
  }
  const startupMs = Date.now() - began

  const terminate = async (id: number, signalName: "SIGTERM" | "SIGKILL"): Promise<void> => {
    const node = byId(id)
    const pid = pidOf(node)
    if (pid === undefined || !isRunning(node)) return
    if (signalName === "SIGKILL") {
      signal(pid, "SIGKILL")
      await waitForExit([pid], 10_000)
    } else {
      await stopPids([pid], stopTimeoutMs)
    }
    node.exitReason ??= `was stopped (${signalName})`
    node.paused = false
  }

  let stopped: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      const pids = processes.filter(isRunning).map(pidOf)
      await stopPids(
        pids.filter((pid) => pid !== undefined),
        stopTimeoutMs
      )
      for (const node of processes) fs.rmSync(pidFile(dir, node.info.id), { force: true })
      unregisterExitKill()
      stopWatchdog()
      await proxied?.toxiproxy.stop()
    })()
    return stopped
  }

  const nodeView = (node: NodeProcess): KafkaNode => ({
    id: node.info.id,
    get pid() {
      return pidOf(node)
    },
    get state(): NodeState {
      if (!isRunning(node)) return "exited"
      return node.paused ? "paused" : "running"
    },
    brokerPort: node.info.brokerPort,
    controllerPort: node.info.controllerPort,
    saslPort: node.info.saslPort,
    dir: nodeDir(dir, node.info.id),
    serverLog: serverLogFile(dir, node.info.id)
  })

  return {
    version,
    clusterId,
    dir,
    bootstrap: brokers.join(","),
    brokers,
    saslBootstrap: saslBrokers?.join(","),
    saslBrokers,
    proxyBootstrap: proxyBrokers?.join(","),
    proxyBrokers,
    proxies: proxied,
    toxiproxy: proxied?.toxiproxy,
    nodes: processes.map(nodeView),
    startupMs,
    pause(id) {
      const node = byId(id)
      const pid = pidOf(node)
      if (pid === undefined || !isRunning(node)) throw new Error(`Kafka node ${id} is not running`)
      signal(pid, "SIGSTOP")
      node.paused = true
    },
    resume(id) {
      const node = byId(id)
      const pid = pidOf(node)
      if (pid !== undefined && isRunning(node)) signal(pid, "SIGCONT")
      node.paused = false
    },
    kill: (id) => terminate(id, "SIGKILL"),
    terminate: (id) => terminate(id, "SIGTERM"),
    async restart(id) {
      if (stopped !== undefined) throw new Error("the cluster was stopped")
      const node = byId(id)
      await terminate(id, "SIGTERM")
      const offset = fileSize(serverLogFile(dir, id))
      launch(node)
      try {
        await waitNodesReady([node], [offset])
      } catch (error) {
        throw new Error(`${(error as Error).message}\n${nodeLogs(dir, id, 40)}`, { cause: error })
      }
    },
    stop,
    logs: (id, lines = 60) => nodeLogs(dir, byId(id).info.id, lines)
  }
}
