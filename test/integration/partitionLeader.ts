/** The node that leads a partition now, from the cluster's metadata (for tests that kill or pause a leader). */
import { Effect } from "effect"
import kafkajs from "kafkajs"

export const leaderOf = (brokers: ReadonlyArray<string>, topic: string, partition: number) =>
  Effect.tryPromise(async () => {
    const admin = new kafkajs.Kafka({ brokers: [...brokers], logLevel: kafkajs.logLevel.NOTHING }).admin()
    await admin.connect()
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
      return topics[0]!.partitions.find((p) => p.partitionId === partition)!.leader
    } finally {
      await admin.disconnect()
    }
  })
