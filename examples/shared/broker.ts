/**
 * The Producer an example runs on: the real broker named by KAFKA_BROKERS (the kafkajs driver, or the
 * @platformatic/kafka one with KAFKA_DRIVER=platformatic; configured from the environment), or else the
 * embedded in-memory broker. Says which on stderr.
 */
import { Config, Effect, Layer, Option, Schema } from "effect"
import type { ConfigError } from "effect/Config"
import { type Producer, ProducerConfig, type PublishError, type TransactionalProducer } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"
import { FakeKafka } from "effect-kafka-publisher/testing"

export const brokersFromEnv = Effect.gen(function* () {
  return yield* Config.String("KAFKA_BROKERS").pipe(
    Config.option,
    Config.map(Option.filter((s) => s.trim().length > 0)),
    Config.map(Option.map((s) => s.split(",").map((b) => b.trim())))
  )
})

/** KAFKA_DRIVER: the driver examples use on a real broker, "kafkajs" (the default) or "platformatic". */
export const driverName = Config.schema(Schema.Literals(["kafkajs", "platformatic"]), "KAFKA_DRIVER").pipe(
  Config.withDefault("kafkajs" as const)
)

/** The driver KAFKA_DRIVER names, configured from the environment (KAFKA_BROKERS, KAFKA_ACKS, ...). */
export const driverLayer = (): Layer.Layer<Producer.Producer, PublishError.PublishError | ConfigError> =>
  Layer.unwrap(
    Effect.gen(function* () {
      const driver = yield* driverName
      return driver === "platformatic" ? PlatformaticProducer.layerConfig() : KafkaJsProducer.layerConfig()
    })
  )

/** KAFKA_DRIVER's driver on KAFKA_BROKERS, or FakeKafka with `embedded` options when it is not set. */
export const producerLayer = (
  embedded: FakeKafka.Options = {}
): Layer.Layer<Producer.Producer, PublishError.PublishError | ConfigError> =>
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
      const driver = yield* driverName
      yield* Effect.sync(() => console.error(`broker: ${brokers.value.join(",")} (${driver} driver)`))
      return driverLayer()
    })
  )

/**
 * KAFKA_DRIVER's transactional producer on KAFKA_BROKERS (configured from the environment, as `driverLayer`),
 * with `transactionalId`.
 */
export const transactionalDriverLayer = (
  transactionalId: string
): Layer.Layer<TransactionalProducer.TransactionalProducer, PublishError.PublishError | ConfigError> =>
  Layer.unwrap(
    Effect.gen(function* () {
      const driver = yield* driverName
      const config = { ...(yield* ProducerConfig.config), transactionalId }
      return driver === "platformatic"
        ? PlatformaticProducer.layerTransactional(config)
        : KafkaJsProducer.layerTransactional(config)
    })
  )
