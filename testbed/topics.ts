// Creating test topics that are usable at once, on every broker.
//
// kafkajs' createTopics({ waitForLeaders: true }) is not enough on KRaft: it polls the metadata of one broker and
// retries only LEADER_NOT_AVAILABLE, but a broker whose metadata cache has not caught up with the controller yet
// answers UNKNOWN_TOPIC_OR_PARTITION ("This server does not host this topic-partition"), which kafkajs throws
// (tulios/kafkajs#815, #1563; seen here on 3 nodes right after the cluster became ready). So: create without
// waiting, then ask every broker until each one knows a leader for every partition.

import type { ITopicConfig } from "kafkajs"
import kafkajs from "kafkajs"

const { Kafka, logLevel } = kafkajs

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** True when this one broker's metadata has a leader for every partition of every topic. */
const leadersKnownBy = async (broker: string, topics: ReadonlyArray<string>): Promise<boolean> => {
  const admin = new Kafka({
    clientId: "kafka-testbed-topics",
    brokers: [broker],
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 }
  }).admin()
  try {
    await admin.connect()
    const metadata = await admin.fetchTopicMetadata({ topics: [...topics] })
    return metadata.topics.every(
      (topic) => topic.partitions.length > 0 && topic.partitions.every((partition) => partition.leader >= 0)
    )
  } catch {
    return false
  } finally {
    await admin.disconnect().catch(() => undefined)
  }
}

/**
 * Creates the topics (an existing topic is not an error) and waits until every broker in `brokers` knows a leader
 * for each of their partitions.
 */
export const createTopics = async (
  brokers: ReadonlyArray<string>,
  topics: ReadonlyArray<ITopicConfig>,
  timeoutMs = 30_000
): Promise<void> => {
  const admin = new Kafka({
    clientId: "kafka-testbed-topics",
    brokers: [...brokers],
    logLevel: logLevel.NOTHING
  }).admin()
  try {
    await admin.connect()
    await admin.createTopics({ topics: [...topics], waitForLeaders: false })
  } finally {
    await admin.disconnect()
  }
  const names = topics.map((topic) => topic.topic)
  const deadline = Date.now() + timeoutMs
  for (const broker of brokers) {
    while (!(await leadersKnownBy(broker, names))) {
      if (Date.now() > deadline)
        throw new Error(`topics ${names.join(", ")}: ${broker} knows no leaders after ${timeoutMs} ms`)
      await sleep(100)
    }
  }
}
