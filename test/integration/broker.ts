// The shared single-node broker of the integration run (started by testbed/vitest-global-setup.ts).
//
//   import { bootstrapServers, describeWithKafka } from "./broker.ts"
//   describeWithKafka("my feature", () => { ... new Kafka({ brokers: bootstrapServers() }) ... })
//
// Tests that pause or kill a broker, or need 3 nodes, start their own with startCluster (testbed/KafkaCluster.ts).
import { describe, inject } from "vitest"
import type { KafkaVersion } from "../../testbed/KafkaCluster.ts"
import type { KafkaTestbed } from "../../testbed/vitest-global-setup.ts"

export const kafkaTestbed = (): KafkaTestbed => inject("kafkaTestbed")

/** Why no broker is available (java or mvn missing), or undefined when there is one. */
export const kafkaUnavailable = (): string | undefined => {
  const testbed = kafkaTestbed()
  return testbed.available ? undefined : testbed.reason
}

/** The broker version of this run (KAFKA_VERSION, default 3.9.2): use it for clusters a test starts itself. */
export const kafkaVersion = (): KafkaVersion => kafkaTestbed().version

/** The shared broker's bootstrap servers, e.g. ["127.0.0.1:40123"], for `new Kafka({ brokers })`. */
export const bootstrapServers = (): Array<string> => {
  const testbed = kafkaTestbed()
  if (!testbed.available) throw new Error(`no Kafka broker in this run: ${testbed.reason}`)
  return testbed.bootstrap.split(",")
}

/** describe() that is skipped, with the reason in its name, when the run has no broker. */
export const describeWithKafka = (name: string, body: () => void): void => {
  const reason = kafkaUnavailable()
  // only without java/mvn on a user's machine: under CI=true the global setup fails the run instead
  describe.skipIf(reason !== undefined)(reason === undefined ? name : `${name} (skipped: ${reason})`, body)
}
