/**
 * The Producer an example runs on: the real broker named by KAFKA_BROKERS (kafkajs driver, configured from
 * the environment), or else the embedded in-memory broker. Says which on stderr.
 */
import { Config, Effect, Layer, Option } from "effect"
import * as KafkaJsProducer from "../../src/KafkaJsProducer.ts"
import type { Producer } from "../../src/Producer.ts"
import type { PublishError } from "../../src/PublishError.ts"
import * as FakeKafka from "../../src/testing/FakeKafka.ts"

export const brokersFromEnv = Effect.gen(function* () {
  return yield* Config.String("KAFKA_BROKERS").pipe(
    Config.option,
    Config.map(Option.filter((s) => s.trim().length > 0)),
    Config.map(Option.map((s) => s.split(",").map((b) => b.trim())))
  )
})

/** kafkajs on KAFKA_BROKERS, or FakeKafka with `embedded` options when it is not set. */
export const producerLayer = (
  embedded: FakeKafka.Options = {}
): Layer.Layer<Producer, PublishError | import("effect").Config.ConfigError> =>
  Layer.unwrap(
    Effect.gen(function* () {
      const brokers = yield* brokersFromEnv
      if (Option.isNone(brokers)) {
        yield* Effect.sync(() =>
          console.error("broker: embedded in-memory Kafka (set KAFKA_BROKERS to use a real one)")
        )
        // FAKE_LATENCY_MS: answer every send that much later, to watch in-flight publishes (and test draining)
        const latency = Number(process.env.FAKE_LATENCY_MS ?? 0)
        if (latency <= 0) return FakeKafka.layer(embedded)
        return Layer.effectDiscard(FakeKafka.FakeKafka.use((fake) => fake.setLatency(latency))).pipe(
          Layer.provideMerge(FakeKafka.layer(embedded))
        )
      }
      yield* Effect.sync(() => console.error(`broker: ${brokers.value.join(",")}`))
      return KafkaJsProducer.layerConfig()
    })
  )
