/** The contract harness for a real broker: the kafkajs driver, kafkajs admin for topics, TopicReader. */
import { Effect, Layer } from "effect"
import kafkajs from "kafkajs"
import * as KafkaJsProducer from "../../src/KafkaJsProducer.ts"
import * as TopicReader from "../../src/testing/TopicReader.ts"
import { ContractBroker, type HarnessLayer } from "../contract/ProducerContract.ts"

/** Creates a topic and waits for its leaders (kafkajs + KRaft: do not rely on auto-creation in tests). */
export const createTopic = (
  brokers: ReadonlyArray<string>,
  name: string,
  options: { readonly partitions: number; readonly replicationFactor?: number; readonly maxMessageBytes?: number }
) =>
  Effect.tryPromise(async () => {
    const admin = new kafkajs.Kafka({ brokers: [...brokers], logLevel: kafkajs.logLevel.NOTHING }).admin()
    await admin.connect()
    try {
      await admin.createTopics({
        waitForLeaders: true,
        topics: [
          {
            topic: name,
            numPartitions: options.partitions,
            replicationFactor: options.replicationFactor ?? 1,
            configEntries:
              options.maxMessageBytes === undefined
                ? []
                : [{ name: "max.message.bytes", value: String(options.maxMessageBytes) }]
          }
        ]
      })
    } finally {
      await admin.disconnect()
    }
  })

export const realHarness =
  (brokers: ReadonlyArray<string>): HarnessLayer =>
  ({ autoCreateTopics }) =>
    Layer.merge(
      KafkaJsProducer.layer({ brokers, autoCreateTopics }),
      Layer.succeed(ContractBroker, {
        createTopic: (name, options) => createTopic(brokers, name, options),
        readBack: (topic) => TopicReader.readAll({ brokers, topic })
      })
    )
