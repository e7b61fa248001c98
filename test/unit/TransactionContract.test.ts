// The transaction contract on FakeKafka: the same tests the real broker passes (test/integration/transactions.integration.test.ts).
import { Effect, Layer } from "effect"
import { FakeKafka } from "effect-kafka-publisher/testing"
import { TransactionBroker, transactionContract } from "../contract/TransactionContract.ts"

transactionContract(
  "FakeKafka",
  Layer.effect(
    TransactionBroker,
    Effect.gen(function* () {
      const fake = yield* FakeKafka.FakeKafka
      return TransactionBroker.of({
        createTopic: (name, partitions) => fake.createTopic(name, { partitions }),
        readBack: (topic, isolation) => fake.records(topic, { isolation }),
        producer: (config) => fake.transactionalProducer(config)
      })
    })
  ).pipe(Layer.provideMerge(FakeKafka.layer()))
)
