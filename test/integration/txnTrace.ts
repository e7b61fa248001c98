/**
 * A trace of what the transactional clients send, for the transaction fault tests: with `TXN_TRACE=<file>`,
 * appended to <file> with the time:
 * - @platformatic/kafka: every FindCoordinator, InitProducerId, AddPartitionsToTxn and EndTxn request (and every
 *   failed Produce), the client, the broker, the producer id and epoch the client holds when it sends, and the
 *   answer (the producer id and epoch InitProducerId returned, or the error codes). Read through the client's
 *   own diagnostics channels (`plt:kafka:*`).
 * - kafkajs: every Produce (partitions, first sequence numbers, record counts), InitProducerId,
 *   AddPartitionsToTxn and EndTxn a producer's brokers are asked, and the answer. Through kafkajs's private
 *   cluster factory (as `src/kafkajs/brokerHook.ts` does), outside the driver's own hooks, so a Produce the
 *   driver refuses shows too.
 * Nothing in the drivers changes.
 */
import { subscribe, tracingChannel } from "node:diagnostics_channel"
import * as fs from "node:fs"
import kafkajs from "kafkajs"
import { clusterFactoryKey } from "../../src/kafkajs/brokerHook.ts"

const apiNames: Record<number, string> = {
  0: "Produce",
  10: "FindCoordinator",
  22: "InitProducerId",
  24: "AddPartitionsToTxn",
  26: "EndTxn"
}

interface PltClient {
  readonly instanceId?: number
  readonly producerId?: bigint
  readonly producerEpoch?: number
}

interface ApiContext {
  readonly operationId: bigint
  readonly connection: { readonly ownerId?: number; readonly host?: string; readonly port?: number }
  readonly apiKey: number
  readonly correlationId: number
  readonly error?: unknown
  readonly result?: { readonly producerId?: bigint; readonly producerEpoch?: number }
}

/** The protocol error names inside a client error, e.g. "PRODUCER_FENCED", else its message. */
export const errorNames = (error: unknown): string => {
  const names: Array<string> = []
  const walk = (e: unknown, depth: number) => {
    if (depth > 5 || e === null || typeof e !== "object") return
    const { apiId, path, errors, cause, code, message } = e as {
      apiId?: string
      path?: string
      errors?: ReadonlyArray<unknown>
      cause?: unknown
      code?: string
      message?: string
    }
    if (typeof apiId === "string") names.push(path === undefined || path === "/" ? apiId : `${apiId} at ${path}`)
    else if (errors === undefined && cause === undefined) names.push(`${code ?? "?"}: ${message ?? ""}`)
    for (const inner of errors ?? []) walk(inner, depth + 1)
    walk(cause, depth + 1)
  }
  walk(error, 0)
  return [...new Set(names)].join(",")
}

let installed = false

interface KafkaJsPartition {
  readonly partition: number
  readonly firstSequence?: number
  readonly messages?: ReadonlyArray<unknown>
}
interface KafkaJsRequest {
  readonly producerId?: number
  readonly producerEpoch?: number
  readonly topicData?: ReadonlyArray<{ readonly topic: string; readonly partitions: ReadonlyArray<KafkaJsPartition> }>
  readonly topics?: ReadonlyArray<{ readonly topic: string; readonly partitions: ReadonlyArray<unknown> }>
  readonly transactionResult?: boolean
}

let kafkajsProducers = 0

/** Wraps the protocol requests of each broker a kafkajs producer uses, writing them to the trace. */
const traceKafkaJs = (write: (line: string) => void) => {
  const proto = kafkajs.Kafka.prototype as unknown as {
    producer: (this: kafkajs.Kafka, ...args: Array<unknown>) => unknown
  }
  const producer = proto.producer
  proto.producer = function (this: kafkajs.Kafka, ...args: Array<unknown>) {
    const id = kafkajsProducers++
    const key = clusterFactoryKey(this)
    const slots = this as unknown as Record<
      symbol,
      (options: unknown) => { findBroker: (q: unknown) => Promise<unknown> }
    >
    const create = slots[key]!
    slots[key] = (options) => {
      const cluster = create(options)
      const findBroker = cluster.findBroker.bind(cluster)
      const seen = new WeakSet<object>()
      cluster.findBroker = async (query) => {
        const broker = (await findBroker(query)) as Record<string, unknown> & { nodeId?: number }
        if (!seen.has(broker)) {
          seen.add(broker)
          for (const api of ["produce", "initProducerId", "addPartitionsToTxn", "endTxn"]) {
            const call = (broker[api] as (request: KafkaJsRequest) => Promise<unknown>).bind(broker)
            broker[api] = async (request: KafkaJsRequest) => {
              const what =
                api === "produce"
                  ? (request.topicData ?? [])
                      .flatMap((t) =>
                        t.partitions.map((p) => `p${p.partition}@${p.firstSequence}+${p.messages?.length}`)
                      )
                      .join(" ")
                  : api === "addPartitionsToTxn"
                    ? (request.topics ?? []).map((t) => `${t.partitions.length} partitions`).join(" ")
                    : api === "endTxn"
                      ? request.transactionResult === true
                        ? "commit"
                        : "abort"
                      : ""
              const label = `kafkajs ${id} ${api} node ${broker.nodeId} pid ${request.producerId ?? "-"}/${request.producerEpoch ?? "-"} ${what}`
              write(`-> ${label}`)
              try {
                const answer = await call(request)
                const pid = answer as { producerId?: number; producerEpoch?: number }
                write(`<- ${label} ok${api === "initProducerId" ? ` ${pid.producerId}/${pid.producerEpoch}` : ""}`)
                return answer
              } catch (error) {
                const e = error as { name?: string; type?: string; message?: string }
                write(`<- ${label} ERROR ${e.type ?? e.name}: ${e.message?.slice(0, 80)}`)
                throw error
              }
            }
          }
        }
        return broker
      }
      return cluster
    }
    try {
      return producer.apply(this, args)
    } finally {
      // the producer built its cluster above; later producers of this Kafka wrap the driver's factory afresh
      slots[key] = create
    }
  }
}

/** Starts the trace when `TXN_TRACE` names a file; once per process. */
export const installTxnTrace = (file: string | undefined = process.env.TXN_TRACE): void => {
  if (file === undefined || file === "" || installed) return
  installed = true
  const clients = new Map<number, PltClient>()
  const write = (line: string) => fs.appendFileSync(file, `${new Date().toISOString()} ${line}\n`)
  traceKafkaJs(write)
  subscribe("plt:kafka:instances", (message) => {
    const { type, instance } = message as { type: string; instance: PltClient }
    if (type === "producer" && instance.instanceId !== undefined) clients.set(instance.instanceId, instance)
  })
  const held = (owner: number | undefined) => {
    const client = owner === undefined ? undefined : clients.get(owner)
    return client === undefined ? "" : ` holds ${client.producerId ?? "-"}/${client.producerEpoch ?? "-"}`
  }
  const describe = (context: ApiContext) => {
    const { connection } = context
    return `client ${connection.ownerId ?? "?"} ${apiNames[context.apiKey]} #${context.correlationId} node ${connection.host}:${connection.port}`
  }
  tracingChannel("plt:kafka:connections:api").subscribe({
    start: (message) => {
      const context = message as ApiContext
      if (context.apiKey === 0 || apiNames[context.apiKey] === undefined) return
      write(`-> ${describe(context)}${held(context.connection.ownerId)}`)
    },
    end: () => {},
    asyncStart: (message) => {
      const context = message as ApiContext
      if (apiNames[context.apiKey] === undefined) return
      if (context.error !== undefined) write(`<- ${describe(context)} ERROR ${errorNames(context.error)}`)
      else if (context.apiKey === 22)
        write(`<- ${describe(context)} producer ${context.result?.producerId}/${context.result?.producerEpoch}`)
      else if (context.apiKey !== 0) write(`<- ${describe(context)} ok`)
    },
    asyncEnd: () => {},
    // an answer that failed to parse is published here and then on asyncStart; a request that timed out or
    // whose connection closed is published nowhere: it shows as a "->" line without its "<-"
    error: () => {}
  })
}
