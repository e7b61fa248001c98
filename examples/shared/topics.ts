/** Creates the topics an example needs on a real broker (kafkajs admin); existing topics are left alone. */
import { Effect } from "effect"
import kafkajs from "kafkajs"

export interface TopicSpec {
  readonly name: string
  readonly partitions: number
  readonly config?: Readonly<Record<string, string>>
}

export const ensureTopics = (brokers: ReadonlyArray<string>, topics: ReadonlyArray<TopicSpec>) =>
  Effect.tryPromise(async () => {
    const admin = new kafkajs.Kafka({ brokers: [...brokers], logLevel: kafkajs.logLevel.NOTHING }).admin()
    await admin.connect()
    try {
      const existing = new Set(await admin.listTopics())
      const missing = topics.filter((t) => !existing.has(t.name))
      if (missing.length === 0) return
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((t) => ({
          topic: t.name,
          numPartitions: t.partitions,
          configEntries: Object.entries(t.config ?? {}).map(([name, value]) => ({ name, value }))
        }))
      })
    } finally {
      await admin.disconnect()
    }
  })
