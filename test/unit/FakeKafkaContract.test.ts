// The contract suite on FakeKafka: the same tests the real broker passes (test/integration/contract.integration.test.ts).
import { Effect, Layer } from "effect"
import { FakeKafka } from "effect-kafka-publisher/testing"
import { ContractBroker, producerContract } from "../contract/ProducerContract.ts"

producerContract("FakeKafka", ({ autoCreateTopics }) =>
  Layer.effect(
    ContractBroker,
    Effect.gen(function* () {
      const fake = yield* FakeKafka.FakeKafka
      return ContractBroker.of({
        createTopic: (name, options) => fake.createTopic(name, options),
        readBack: (topic) => fake.records(topic),
        overlapSends: fake.setLatency("20 millis")
      })
    })
  ).pipe(Layer.provideMerge(FakeKafka.layer({ autoCreateTopics })))
)
