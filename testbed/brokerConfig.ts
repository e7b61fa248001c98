// What a test broker runs with: server.properties, the JVM's arguments, the storage format command.
// Every node is a combined broker + KRaft controller on 127.0.0.1 (not `localhost`, which may resolve to ::1).
import * as path from "node:path"
import { type KafkaVersion, logConfigFile } from "./layout.ts"

/** A SCRAM user created at format time, for both SCRAM-SHA-256 and SCRAM-SHA-512. */
export interface ScramUser {
  readonly name: string
  readonly password: string
}

/**
 * An extra SASL_PLAINTEXT listener with SCRAM-SHA-256/512. The PLAINTEXT listener stays (inter-broker traffic,
 * test set-up) and is not authenticated.
 */
export interface SaslOptions {
  readonly users: ReadonlyArray<ScramUser>
  /**
   * Turns on the KRaft StandardAuthorizer with these super users (e.g. ["admin"]). Other users need ACLs.
   * The unauthenticated PLAINTEXT and CONTROLLER listeners run as User:ANONYMOUS, which is made a super user too,
   * so brokers, controllers and set-up code on PLAINTEXT keep working.
   */
  readonly superUsers?: ReadonlyArray<string>
}

export type PropertyValue = string | number | boolean

export interface NodeConfig {
  readonly version: KafkaVersion
  readonly nodeId: number
  readonly clusterSize: number
  readonly brokerPort: number
  readonly controllerPort: number
  readonly saslPort: number | undefined
  /** `1@127.0.0.1:p1,2@127.0.0.1:p2,...`: a static quorum (the format needs no flag); with proxies, this node's links. */
  readonly voters: string
  readonly dataDir: string
  readonly sasl: SaslOptions | undefined
  readonly extraProps: Readonly<Record<string, PropertyValue>> | undefined
  /** Listeners behind toxiproxy (`startCluster({ proxy: true })`), each advertised as its proxy's address. */
  readonly proxied?: ProxiedListeners | undefined
}

/**
 * CLIENT: the listener clients use, bound on `clientPort`, advertised as `clientProxy`. REPLICATION (three nodes):
 * the inter-broker listener, advertised as `replicationProxy`, so follower fetches pass a proxy too. PLAINTEXT stays
 * direct (set-up code, readers).
 */
export interface ProxiedListeners {
  readonly clientPort: number
  readonly clientProxy: string
  readonly replicationPort?: number | undefined
  readonly replicationProxy?: string | undefined
  /**
   * Three nodes: what the CONTROLLER listener is advertised as. Kafka 3.9+ (KIP-853) hands a quorum leader's
   * advertised controller endpoint to its followers, which then fetch from it there, not through their voter links:
   * advertised directly, an active controller cut off from its voter links kept replicating to the quorum.
   */
  readonly controllerProxy?: string | undefined
}

const scramJaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"

export const serverProperties = (config: NodeConfig): string => {
  const many = config.clusterSize > 1
  const controller = `CONTROLLER://127.0.0.1:${config.controllerPort}`
  const listeners = [`PLAINTEXT://127.0.0.1:${config.brokerPort}`, controller]
  const protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
  if (config.saslPort !== undefined) {
    listeners.push(`SASL_PLAINTEXT://127.0.0.1:${config.saslPort}`)
    protocols.push("SASL_PLAINTEXT:SASL_PLAINTEXT")
  }
  const controllerProxy = config.proxied?.controllerProxy
  const advertised = listeners.map((listener) =>
    listener === controller && controllerProxy !== undefined ? `CONTROLLER://${controllerProxy}` : listener
  )
  let interBroker = "PLAINTEXT"
  if (config.proxied !== undefined) {
    listeners.push(`CLIENT://127.0.0.1:${config.proxied.clientPort}`)
    advertised.push(`CLIENT://${config.proxied.clientProxy}`)
    protocols.push("CLIENT:PLAINTEXT")
    if (config.proxied.replicationPort !== undefined) {
      listeners.push(`REPLICATION://127.0.0.1:${config.proxied.replicationPort}`)
      advertised.push(`REPLICATION://${config.proxied.replicationProxy}`)
      protocols.push("REPLICATION:PLAINTEXT")
      interBroker = "REPLICATION"
    }
  }
  const props: Record<string, PropertyValue> = {
    "process.roles": "broker,controller",
    "node.id": config.nodeId,
    "controller.quorum.voters": config.voters,
    listeners: listeners.join(","),
    "advertised.listeners": advertised.join(","),
    "inter.broker.listener.name": interBroker,
    "controller.listener.names": "CONTROLLER",
    "listener.security.protocol.map": protocols.join(","),
    "log.dirs": config.dataDir,
    // 3 nodes: a production-like durability setting (acks=all survives one node down)
    "num.partitions": many ? 3 : 1,
    "default.replication.factor": many ? 3 : 1,
    "min.insync.replicas": many ? 2 : 1,
    "unclean.leader.election.enable": false,
    "auto.create.topics.enable": true,
    // internal topics: the defaults (RF 3) cannot be met by one node; 50 partitions are slow to create on 2 cores
    "offsets.topic.replication.factor": many ? 3 : 1,
    "offsets.topic.num.partitions": 5,
    "transaction.state.log.replication.factor": many ? 3 : 1,
    "transaction.state.log.min.isr": many ? 2 : 1,
    "transaction.state.log.num.partitions": 5,
    // no 3 s wait before the first consumer group rebalance
    "group.initial.rebalance.delay.ms": 0,
    // small machine: fewer threads; the log cleaner's 128 MiB dedupe buffer is allocated eagerly on the heap
    "num.network.threads": 2,
    "num.io.threads": 4,
    "background.threads": 2,
    "log.cleaner.dedupe.buffer.size": 2 * 1024 * 1024
  }
  if (config.version.startsWith("4.")) {
    props["share.coordinator.state.topic.replication.factor"] = many ? 3 : 1
    props["share.coordinator.state.topic.min.isr"] = many ? 2 : 1
  }
  if (config.sasl !== undefined) {
    props["sasl.enabled.mechanisms"] = "SCRAM-SHA-256,SCRAM-SHA-512"
    props["listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config"] = scramJaas
    props["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"] = scramJaas
    if (config.sasl.superUsers !== undefined) {
      props["authorizer.class.name"] = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
      props["super.users"] = ["ANONYMOUS", ...config.sasl.superUsers].map((user) => `User:${user}`).join(";")
    }
  }
  Object.assign(props, config.extraProps)
  return `${Object.entries(props)
    .map(([key, value]) => `${key}=${value}`)
    .join("\n")}\n`
}

/** The JVM flags kafka-server-start.sh / kafka-run-class.sh would add, minus JMX and GC logging. */
export const jvmArgs = (options: {
  readonly version: KafkaVersion
  readonly libsDir: string
  readonly logDir: string
  readonly heap: string
}): Array<string> => {
  const logConfig = logConfigFile(options.version)
  return [
    `-Xms${options.heap}`,
    `-Xmx${options.heap}`,
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
    `-Dkafka.logs.dir=${options.logDir}`,
    options.version.startsWith("3.")
      ? `-Dlog4j.configuration=file:${logConfig}`
      : `-Dlog4j2.configurationFile=${logConfig}`,
    "-cp",
    // the JVM expands "dir/*" to every jar in dir; spawn() passes it through unexpanded
    path.join(options.libsDir, "*")
  ]
}

// The format tool's `[name=...,password=...]` syntax has no escaping for `,` `]` `=`; keep credentials plain.
const plainCredential = /^[A-Za-z0-9_.@+-]+$/

/** Arguments after the JVM flags for `kafka.tools.StorageTool format`, creating the SCRAM users. */
export const formatArgs = (clusterId: string, propertiesFile: string, sasl: SaslOptions | undefined): Array<string> => {
  const args = ["kafka.tools.StorageTool", "format", "-t", clusterId, "-c", propertiesFile]
  for (const user of sasl?.users ?? []) {
    if (!plainCredential.test(user.name) || !plainCredential.test(user.password))
      throw new Error(`SCRAM user ${JSON.stringify(user.name)}: name and password must match ${plainCredential}`)
    for (const mechanism of ["SCRAM-SHA-256", "SCRAM-SHA-512"])
      args.push("--add-scram", `${mechanism}=[name=${user.name},password=${user.password}]`)
  }
  return args
}
