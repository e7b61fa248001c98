/**
 * kafkajs 2.2.4's own transactional producer (its `sendMessages`, retrier, sequence numbers and broker locks)
 * over a scripted cluster of fake brokers: what a send that fails on one leader does to the records of another,
 * with and without the driver's guard (`src/kafkajs/produceRetries.ts`). No broker; the real-broker case is the
 * coordinator-kill test in test/integration/transaction-load.integration.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import kafkajs from "kafkajs"
import { clusterFactoryKey } from "../../../src/kafkajs/brokerHook.ts"
import { guardProduceRetries } from "../../../src/kafkajs/produceRetries.ts"

interface Partition {
  readonly partition: number
  readonly firstSequence: number
  readonly messages: ReadonlyArray<{ readonly value: string }>
}
interface ProduceRequest {
  readonly topicData: ReadonlyArray<{ readonly topic: string; readonly partitions: ReadonlyArray<Partition> }>
}

/** One Produce a fake broker received: partition, first sequence number, values. */
type Received = readonly [partition: number, firstSequence: number, values: string]

const TOPIC = "orders"
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * A kafkajs `Kafka` whose clients get a scripted cluster: `leaders` maps each partition of TOPIC to a node;
 * `answer(nodeId, call)` decides each Produce (a promise of nothing, or a rejection); every Produce is logged.
 */
const scripted = (
  leaders: Map<number, number>,
  answer: (nodeId: number, call: number, request: ProduceRequest) => Promise<void>,
  addPartitions: (partitions: ReadonlyArray<number>) => Promise<void> = async () => {}
) => {
  const kafka = new kafkajs.Kafka({ brokers: ["fake:9092"], logLevel: kafkajs.logLevel.NOTHING })
  const received = new Map<number, Array<Received>>()
  const broker = (nodeId: number) => {
    let calls = 0
    return {
      nodeId,
      produce: async (request: ProduceRequest) => {
        const call = ++calls
        const log = received.get(nodeId) ?? []
        received.set(nodeId, log)
        for (const { partitions } of request.topicData) {
          for (const p of partitions) log.push([p.partition, p.firstSequence, p.messages.map((m) => m.value).join()])
        }
        await answer(nodeId, call, request)
        return {
          topics: request.topicData.map(({ topic, partitions }) => ({
            topicName: topic,
            partitions: partitions.map(({ partition }) => ({
              partition,
              errorCode: 0,
              baseOffset: "0",
              logAppendTime: "-1",
              logStartOffset: "0"
            }))
          }))
        }
      }
    }
  }
  const brokers = new Map([1, 2, 3].map((id) => [id, broker(id)] as const))
  const coordinator = {
    nodeId: 9,
    initProducerId: async () => ({ producerId: 7, producerEpoch: 0 }),
    addPartitionsToTxn: async (request: { topics: ReadonlyArray<{ partitions: ReadonlyArray<number> }> }) => {
      await addPartitions(request.topics.flatMap((t) => t.partitions))
      return {}
    },
    endTxn: async () => ({})
  }
  const cluster = {
    retry: { initialRetryTime: 5, retries: 3 },
    targetTopics: new Set<string>(),
    connect: async () => {},
    disconnect: async () => {},
    isConnected: () => true,
    refreshMetadata: async () => {},
    refreshMetadataIfNecessary: async () => {},
    addMultipleTargetTopics: async () => {},
    removeBroker: () => {},
    // kafkajs asks the coordinator through findBroker too, so the driver's hook sees its requests
    findGroupCoordinator: () => cluster.findBroker({ nodeId: 9 }),
    findControllerBroker: () => cluster.findBroker({ nodeId: 9 }),
    findTopicPartitionMetadata: () => [...leaders].map(([partitionId, leader]) => ({ partitionId, leader })),
    findLeaderForPartitions: (_topic: string, partitions: ReadonlyArray<string>) => {
      const byLeader: Record<number, Array<number>> = {}
      for (const partition of partitions.map(Number)) {
        const leader = leaders.get(partition)!
        byLeader[leader] = [...(byLeader[leader] ?? []), partition]
      }
      return byLeader
    },
    findBroker: async ({ nodeId }: { nodeId: number }): Promise<object | undefined> =>
      Number(nodeId) === 9 ? coordinator : brokers.get(Number(nodeId))
  }
  const slots = kafka as unknown as Record<symbol, () => unknown>
  slots[clusterFactoryKey(kafka)] = () => cluster
  const producer = () =>
    kafka.producer({
      transactionalId: "tx",
      idempotent: true,
      maxInFlightRequests: 1,
      retry: { initialRetryTime: 5, retries: 3 },
      createPartitioner:
        () =>
        ({ message }) =>
          message.partition ?? 0
    })
  return { kafka, producer, received }
}

/** One transaction's send of "a" to partition 0 and "b" to partition 1: its answer, or its error. */
const sendOnce = async (producer: kafkajs.Producer) => {
  await producer.connect()
  const transaction = await producer.transaction()
  const messages = [
    { partition: 0, value: "a" },
    { partition: 1, value: "b" }
  ]
  return transaction
    .sendBatch({ acks: -1, topicMessages: [{ topic: TOPIC, messages }] })
    .then((answer) => ({ answer, error: undefined }))
    .catch((error: unknown) => ({ answer: undefined, error: error as Error }))
}

/** Node 1 (partition 0) refuses its first Produce at once; node 2 (partition 1) answers after 30 ms. */
const slowPeerScript = (nodeId: number, call: number): Promise<void> =>
  nodeId === 1 && call === 1
    ? Promise.reject(new kafkajs.KafkaJSConnectionError("Connection error: connect ECONNREFUSED"))
    : nodeId === 2
      ? sleep(30)
      : Promise.resolve()

describe("kafkajs: a send over two leaders, one of which fails while the other is in flight", () => {
  it("kafkajs alone writes the slow leader's records twice, with new sequence numbers (the defect)", async () => {
    const { producer, received } = scripted(
      new Map([
        [0, 1],
        [1, 2]
      ]),
      slowPeerScript
    )
    const { error } = await sendOnce(producer())
    assert.isUndefined(error)
    // partition 1's record "b" reached node 2 twice: sequence 0, then 1 (the broker cannot drop it as a duplicate)
    assert.deepStrictEqual(received.get(2), [
      [1, 0, "b"],
      [1, 1, "b"]
    ])
  })

  it("with the guard: the failed leader's records are resent with the same sequence, the other's never", async () => {
    const { kafka, producer, received } = scripted(
      new Map([
        [0, 1],
        [1, 2]
      ]),
      slowPeerScript
    )
    guardProduceRetries(kafka)
    const { error } = await sendOnce(producer())
    assert.isUndefined(error)
    assert.deepStrictEqual(received.get(2), [[1, 0, "b"]])
    assert.deepStrictEqual(received.get(1), [
      [0, 0, "a"],
      [0, 0, "a"]
    ])
  })
})

describe("kafkajs: one leader fails while the coordinator still adds the other leader's partitions", () => {
  // node 1 (partition 0) fails its first Produce at once; adding partition 1 to the transaction takes 30 ms,
  // and node 2's Produce after it 30 ms more
  const script = (nodeId: number, call: number) =>
    nodeId === 1 && call === 1
      ? Promise.reject(new kafkajs.KafkaJSConnectionError("Connection error: connect ECONNREFUSED"))
      : nodeId === 2
        ? sleep(30)
        : Promise.resolve()
  const slowAdd = (partitions: ReadonlyArray<number>) => (partitions.includes(1) ? sleep(30) : Promise.resolve())
  const leaders = () =>
    new Map([
      [0, 1],
      [1, 2]
    ])

  it("kafkajs alone writes partition 1's record twice", async () => {
    const { producer, received } = scripted(leaders(), script, slowAdd)
    const { error } = await sendOnce(producer())
    assert.isUndefined(error)
    assert.deepStrictEqual(received.get(2), [
      [1, 0, "b"],
      [1, 1, "b"]
    ])
  })

  it("with the guard: the failure waits for that part to finish, and partition 1 is written once", async () => {
    const { kafka, producer, received } = scripted(leaders(), script, slowAdd)
    guardProduceRetries(kafka)
    const { error } = await sendOnce(producer())
    assert.isUndefined(error)
    assert.deepStrictEqual(received.get(2), [[1, 0, "b"]])
  })
})

describe("kafkajs: a partition already written moves to a leader that has to be asked again", () => {
  // node 1 writes partition 0; node 2 fails, and both partitions move to node 3 before kafkajs retries
  const leaders = () =>
    new Map([
      [0, 1],
      [1, 2]
    ])
  const movingScript = (map: Map<number, number>) => (nodeId: number, call: number) => {
    if (nodeId !== 2 || call !== 1) return Promise.resolve()
    map.set(0, 3)
    map.set(1, 3)
    return Promise.reject(new kafkajs.KafkaJSConnectionError("Connection error: connect ECONNREFUSED"))
  }

  it("kafkajs alone sends partition 0's record again to the new leader, with a new sequence number", async () => {
    const map = leaders()
    const { producer, received } = scripted(map, movingScript(map))
    const { error } = await sendOnce(producer())
    assert.isUndefined(error)
    assert.deepStrictEqual(received.get(1), [[0, 0, "a"]])
    assert.deepStrictEqual(received.get(3), [
      [0, 1, "a"],
      [1, 0, "b"]
    ])
  })

  it("with the guard: that Produce is refused (KafkaJSWouldWriteAgain) and the send fails, nothing written twice", async () => {
    const map = leaders()
    const { kafka, producer, received } = scripted(map, movingScript(map))
    guardProduceRetries(kafka)
    const { error } = await sendOnce(producer())
    assert.strictEqual(error?.name, "KafkaJSWouldWriteAgain")
    assert.deepStrictEqual(received.get(1), [[0, 0, "a"]])
    assert.isUndefined(received.get(3), "nothing reached the new leader")
  })
})
