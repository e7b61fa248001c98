// When is a broker ready? Two checks, in this order:
// 1. its server.log says "Kafka Server started" (logged after the broker is registered, unfenced and its
//    listeners accept connections), searched only from where this start began, so a restart's old line does not count;
// 2. kafkajs' describeCluster() lists it, asked of EVERY running broker: the metadata response only lists unfenced
//    brokers, and each broker has its own metadata cache that lags the controller a little. Asking one broker is not
//    enough: right after "ready", another broker could still answer with 2 of 3 brokers (seen on 3 nodes), and a
//    topic with RF 3 cannot be created through it.
import * as fs from "node:fs"
import kafkajs from "kafkajs"

const { Kafka, logLevel } = kafkajs

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export const startedLine = "Kafka Server started"

/** The size of a file (0 when missing): where to search from for this start's readiness line. */
export const fileSize = (file: string): number => {
  try {
    return fs.statSync(file).size
  } catch {
    return 0
  }
}

export const logHasStarted = (serverLog: string, fromByte: number): boolean => {
  try {
    return fs.readFileSync(serverLog).subarray(fromByte).includes(startedLine)
  } catch {
    return false
  }
}

/** The node ids in one broker's metadata, or [] when it does not answer (yet). */
export const visibleBrokerIds = async (broker: string): Promise<Array<number>> => {
  const kafka = new Kafka({
    clientId: "kafka-testbed-readiness",
    // only this broker: kafkajs then takes the cluster metadata from it
    brokers: [broker],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1_000,
    requestTimeout: 3_000,
    retry: { retries: 0 }
  })
  const admin = kafka.admin()
  try {
    await admin.connect()
    const cluster = await admin.describeCluster()
    return cluster.brokers.map((broker) => broker.nodeId)
  } catch {
    return []
  } finally {
    await admin.disconnect().catch(() => undefined)
  }
}

export interface StartingNode {
  readonly id: number
  readonly serverLog: string
  /** where this start's log begins */
  readonly fromByte: number
  /** why the process can no longer become ready (e.g. "exited with code 1"), or undefined while it runs */
  readonly exited: () => string | undefined
}

export interface WaitReadyOptions {
  /** e.g. "Kafka 3.9.2", for error messages */
  readonly what: string
  readonly nodes: ReadonlyArray<StartingNode>
  /** the brokers whose metadata must list every node (the running, not paused ones) */
  readonly brokers: ReadonlyArray<string>
  readonly timeoutMs: number
}

/** Waits until every node logged its start and the metadata lists all of them; throws on timeout or exit. */
export const waitReady = async (options: WaitReadyOptions): Promise<void> => {
  const deadline = Date.now() + options.timeoutMs
  const check = (stage: string) => {
    for (const node of options.nodes) {
      const exited = node.exited()
      if (exited !== undefined) throw new Error(`${options.what} node ${node.id} ${exited} before it was ready`)
    }
    if (Date.now() > deadline) throw new Error(`${options.what} not ready after ${options.timeoutMs} ms: ${stage}`)
  }
  for (const node of options.nodes) {
    while (!logHasStarted(node.serverLog, node.fromByte)) {
      check(`node ${node.id} did not log "${startedLine}" in ${node.serverLog}`)
      await sleep(100)
    }
  }
  const expected = options.nodes.map((node) => node.id)
  for (const broker of options.brokers) {
    for (;;) {
      const ids = await visibleBrokerIds(broker)
      if (expected.every((id) => ids.includes(id))) break
      check(`the metadata of ${broker} lists brokers [${ids.join(",")}], expected [${expected.join(",")}]`)
      await sleep(250)
    }
  }
}
