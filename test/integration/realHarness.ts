/** The contract harness for a real broker: a driver (kafkajs by default), kafkajs admin for topics, TopicReader. */
import { Effect, Layer } from "effect"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { TopicReader } from "effect-kafka-publisher/testing"
import type { Producer } from "../../src/Producer.ts"
import type { ProducerConfig } from "../../src/ProducerConfig.ts"
import type { PublishError } from "../../src/PublishError.ts"
import { createTopics } from "../../testbed/topics.ts"
import { ContractBroker, type HarnessLayer } from "../contract/ProducerContract.ts"

/** Creates a topic; resolves once every broker knows a leader for each partition (see testbed/topics.ts). */
export const createTopic = (
  brokers: ReadonlyArray<string>,
  name: string,
  options: { readonly partitions: number; readonly replicationFactor?: number; readonly maxMessageBytes?: number }
) =>
  Effect.tryPromise(() =>
    createTopics(brokers, [
      {
        topic: name,
        numPartitions: options.partitions,
        replicationFactor: options.replicationFactor ?? 1,
        configEntries:
          options.maxMessageBytes === undefined
            ? []
            : [{ name: "max.message.bytes", value: String(options.maxMessageBytes) }]
      }
    ])
  )

/** A driver's layer from the driver-neutral settings: `KafkaJsProducer.layer`, `PlatformaticProducer.layer`. */
export type DriverLayer = (config: ProducerConfig) => Layer.Layer<Producer, PublishError>

export const realHarness =
  (brokers: ReadonlyArray<string>, driver: DriverLayer = KafkaJsProducer.layer): HarnessLayer =>
  ({ autoCreateTopics }) =>
    Layer.merge(
      driver({ brokers, autoCreateTopics }),
      Layer.succeed(ContractBroker, {
        createTopic: (name, options) => createTopic(brokers, name, options),
        readBack: (topic) => TopicReader.readAll({ brokers, topic }),
        // a round trip to the broker is long enough for the next sends to be called
        overlapSends: Effect.void
      })
    )
