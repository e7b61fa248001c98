/**
 * Creates the topics an example needs on a real broker; existing topics are left alone. Delegates to the test
 * bed's `createTopics`, which also waits until every broker knows each partition's leader (kafkajs's own
 * `waitForLeaders` is not enough on a cluster of several nodes: see testbed/topics.ts).
 */
import { Effect } from "effect"
import { createTopics } from "../../testbed/topics.ts"

export interface TopicSpec {
  readonly name: string
  readonly partitions: number
  readonly config?: Readonly<Record<string, string>>
}

export const ensureTopics = (brokers: ReadonlyArray<string>, topics: ReadonlyArray<TopicSpec>) =>
  Effect.tryPromise(() =>
    createTopics(
      brokers,
      topics.map((t) => ({
        topic: t.name,
        numPartitions: t.partitions,
        configEntries: Object.entries(t.config ?? {}).map(([name, value]) => ({ name, value }))
      }))
    )
  )
