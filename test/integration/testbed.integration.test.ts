// The test bed itself, against a real broker: records go in and come back out as Kafka promises, and a frozen
// broker delays a send instead of failing it. `npm run test:kafka4` runs this file against Kafka 4.1.2.

import type { Consumer, KafkaMessage } from "kafkajs"
import kafkajs from "kafkajs"
import { afterAll, beforeAll, expect, it } from "vitest"
import { type KafkaCluster, startCluster } from "../../testbed/KafkaCluster.ts"
import { createTopics } from "../../testbed/topics.ts"
import { bootstrapServers, describeWithKafka, kafkaVersion } from "./broker.ts"

const { Kafka, logLevel, Partitioners } = kafkajs

const client = (brokers: ReadonlyArray<string>) =>
  new Kafka({ clientId: "testbed-test", brokers: [...brokers], logLevel: logLevel.NOTHING })

const uniqueName = (prefix: string) => `${prefix}-${Date.now()}-${Math.floor(Math.random() * 1e6)}`

interface Received {
  readonly partition: number
  readonly offset: number
  readonly key: string
  readonly value: string
}

/** Consumes from the beginning until `count` records arrived, then a little longer to catch any extra ones. */
const consumeAll = async (consumer: Consumer, topic: string, count: number): Promise<Array<Received>> => {
  const received: Array<Received> = []
  let reachedCount: () => void = () => undefined
  const reached = new Promise<void>((resolve) => {
    reachedCount = resolve
  })
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ partition, message }: { partition: number; message: KafkaMessage }) => {
      received.push({
        partition,
        offset: Number(message.offset),
        key: message.key?.toString() ?? "",
        value: message.value?.toString() ?? ""
      })
      if (received.length >= count) reachedCount()
    }
  })
  await reached
  await new Promise((resolve) => setTimeout(resolve, 1_000))
  return received
}

describeWithKafka("test bed: the shared broker", () => {
  it("returns 20 keyed records from 3 partitions with gap-free offsets and a stable key to partition mapping", async () => {
    const kafka = client(bootstrapServers())
    const topic = uniqueName("testbed-smoke")
    const admin = kafka.admin()
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
    // a short fetch long-poll: disconnect() waits for the running fetch (default up to 5 s)
    const consumer = kafka.consumer({ groupId: uniqueName("testbed-smoke-group"), maxWaitTimeInMs: 500 })
    try {
      await admin.connect()
      await createTopics(bootstrapServers(), [{ topic, numPartitions: 3 }])

      await producer.connect()
      const sent = Array.from({ length: 20 }, (_, index) => ({
        key: `user-${(index % 5) + 1}`,
        value: `event-${index}`
      }))
      // one at a time, so the order per key is the send order
      for (const message of sent) await producer.send({ topic, acks: -1, messages: [message] })

      await consumer.connect()
      const received = await consumeAll(consumer, topic, sent.length)

      expect(received).toHaveLength(20)
      expect(new Set(received.map((record) => record.value))).toEqual(new Set(sent.map((message) => message.value)))

      // offsets of each partition are 0..n-1, and n is the partition's high watermark
      const highWatermarks = await admin.fetchTopicOffsets(topic)
      for (const { partition, high } of highWatermarks) {
        const offsets = received
          .filter((record) => record.partition === partition)
          .map((record) => record.offset)
          .sort((a, b) => a - b)
        expect(offsets).toEqual(Array.from({ length: Number(high) }, (_, index) => index))
      }

      // each key lives in exactly one partition, and its records keep the send order
      for (let user = 1; user <= 5; user++) {
        const key = `user-${user}`
        const ofKey = received.filter((record) => record.key === key)
        expect(ofKey).toHaveLength(4)
        expect(new Set(ofKey.map((record) => record.partition)).size).toBe(1)
        const valuesInOffsetOrder = [...ofKey].sort((a, b) => a.offset - b.offset).map((record) => record.value)
        expect(valuesInOffsetOrder).toEqual(
          sent.filter((message) => message.key === key).map((message) => message.value)
        )
      }
      // 5 keys over 3 partitions: the default (murmur2) partitioner spreads them over more than one
      expect(new Set(received.map((record) => record.partition)).size).toBeGreaterThan(1)
    } finally {
      await consumer.disconnect()
      await producer.disconnect()
      await admin.disconnect()
    }
  })
})

describeWithKafka("test bed: a paused broker", () => {
  // its own broker: freezing the shared one would stall every other test of the run
  let cluster: KafkaCluster | undefined

  beforeAll(async () => {
    cluster = await startCluster({ version: kafkaVersion(), nodes: 1 })
  })

  afterAll(async () => {
    await cluster?.stop()
  })

  it("completes a send issued while the broker is paused once it resumes", async () => {
    const broker = cluster!
    const kafka = client(broker.brokers)
    const topic = uniqueName("testbed-pause")
    const admin = kafka.admin()
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
    try {
      await admin.connect()
      await createTopics(broker.brokers, [{ topic, numPartitions: 1 }])
      await producer.connect()
      await producer.send({ topic, acks: -1, messages: [{ key: "k", value: "before the pause" }] })

      broker.pause(1)
      expect(broker.nodes[0]!.state).toBe("paused")
      const started = Date.now()
      let settled = false
      const send = producer.send({ topic, acks: -1, messages: [{ key: "k", value: "during the pause" }] })
      send.then(
        () => {
          settled = true
        },
        () => {
          settled = true
        }
      )
      await new Promise((resolve) => setTimeout(resolve, 2_000))
      expect(settled).toBe(false)
      broker.resume(1)

      const [result] = await send
      expect(result?.errorCode).toBe(0)
      expect(result?.baseOffset).toBe("1")
      expect(Date.now() - started).toBeGreaterThanOrEqual(2_000)
      expect(broker.nodes[0]!.state).toBe("running")
      const [partition] = await admin.fetchTopicOffsets(topic)
      expect(partition?.high).toBe("2")
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${broker.logs(1)}`, { cause: error })
    } finally {
      broker.resume(1)
      await producer.disconnect()
      await admin.disconnect()
    }
  })
})
