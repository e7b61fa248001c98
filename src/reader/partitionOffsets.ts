/**
 * Each partition's first offset and high watermark (the offset after the last record written). kafkajs' admin
 * cannot list the high watermark: its `fetchTopicOffsets` always asks at isolation level read_committed, so it
 * answers the last stable offset. That offset stops at the first open transaction, and right after a commit it stays there until
 * the commit markers are written (a few milliseconds later): a reader that took it as the end read nothing
 * of a transaction that had just committed.
 *
 * The only way kafkajs offers is a cluster of its own with the isolation level read_uncommitted, made by
 * the `Kafka` instance's private cluster factory. kafkajs 2.2.4 is its last release (2023), so this
 * internal no longer moves; a test reads a transactional topic on the real broker and would fail if it did.
 *
 * @module
 */
import type * as KafkaJs from "kafkajs"
import { clusterFactoryKey } from "../kafkajs/brokerHook.ts"

interface PartitionOffset {
  readonly partition: number
  readonly offset: string
}

/** The parts of kafkajs' internal Cluster used here. */
interface Cluster {
  connect(): Promise<void>
  disconnect(): Promise<void>
  addTargetTopic(topic: string): Promise<void>
  refreshMetadataIfNecessary(): Promise<void>
  findTopicPartitionMetadata(topic: string): ReadonlyArray<{ readonly partitionId: number }>
  fetchTopicsOffset(
    topics: ReadonlyArray<{
      topic: string
      fromBeginning: boolean
      partitions: ReadonlyArray<{ partition: number }>
    }>
  ): Promise<Array<{ topic: string; partitions: Array<PartitionOffset> }>>
}

type ClusterFactory = (options: { allowAutoTopicCreation: boolean; isolationLevel: number }) => Cluster

const READ_UNCOMMITTED = 0

const clusterFactoryOf = (kafka: KafkaJs.Kafka): ClusterFactory => {
  return (kafka as unknown as Record<symbol, ClusterFactory>)[clusterFactoryKey(kafka)] as ClusterFactory
}

/** A partition's first offset and its high watermark. */
export interface PartitionOffsets {
  readonly partition: number
  readonly low: bigint
  readonly high: bigint
}

/** The first offset and the high watermark of each partition of `topic`, over one connection. */
export const partitionOffsets = async (kafka: KafkaJs.Kafka, topic: string): Promise<Array<PartitionOffsets>> => {
  const cluster = clusterFactoryOf(kafka)({ allowAutoTopicCreation: false, isolationLevel: READ_UNCOMMITTED })
  await cluster.connect()
  try {
    await cluster.addTargetTopic(topic)
    await cluster.refreshMetadataIfNecessary()
    const partitions = cluster.findTopicPartitionMetadata(topic).map((p) => ({ partition: p.partitionId }))
    const offsetsFrom = async (fromBeginning: boolean) => {
      const [answer] = await cluster.fetchTopicsOffset([{ topic, fromBeginning, partitions }])
      return new Map((answer?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)] as const))
    }
    const [low, high] = await Promise.all([offsetsFrom(true), offsetsFrom(false)])
    return partitions.map(({ partition }) => ({
      partition,
      low: low.get(partition) ?? 0n,
      high: high.get(partition) ?? 0n
    }))
  } finally {
    await cluster.disconnect()
  }
}
