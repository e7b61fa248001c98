// The contract suite against the real broker of this run, once per driver (the same tests run on FakeKafka
// in test/unit).
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"
import { producerContract } from "../contract/ProducerContract.ts"
import { bootstrapServers, describeWithKafka } from "./broker.ts"
import { realHarness } from "./realHarness.ts"

describeWithKafka("real broker", () => {
  producerContract("kafkajs on Apache Kafka", realHarness(bootstrapServers()), { timeout: 120_000 })
  producerContract("@platformatic/kafka on Apache Kafka", realHarness(bootstrapServers(), PlatformaticProducer.layer), {
    timeout: 120_000
  })
})
