/**
 * The outbox relay as its own process: `npm run example:outbox-relay`.
 *
 * Sends the committed rows of the outbox at DATABASE_URL (PostgreSQL) to the brokers at KAFKA_BROKERS until
 * SIGINT/SIGTERM. Several such processes share the work (shard leases). After a crash of another relay it
 * checks the topic for the rows that were in flight (TopicLookup) before sending them again.
 * LEASE_TTL_MS, BATCH_SIZE and DELIVERY_TIMEOUT_MS tune it (tests use short ones).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { PgClient } from "@effect/sql-pg"
import { Config, Duration, Effect, Layer, Logger, Option } from "effect"
import { Publisher, RetryPolicy } from "effect-kafka-publisher"
import { OutboxRelay, OutboxTable, TopicLookup } from "effect-kafka-publisher/outbox"
import { brokersFromEnv, producerLayer } from "../shared/broker.ts"

const relay = Layer.unwrap(
  Effect.gen(function* () {
    const brokers = Option.getOrElse(yield* brokersFromEnv, () => [])
    const leaseTtl = yield* Config.Int("LEASE_TTL_MS").pipe(Config.withDefault(10_000))
    const batchSize = yield* Config.Int("BATCH_SIZE").pipe(Config.withDefault(2000))
    // the tables first, then the relay
    return OutboxRelay.layer({
      leaseTtl: Duration.millis(leaseTtl),
      batchSize,
      pollInterval: "200 millis",
      backoff: "100 millis",
      maxBackoff: "2 seconds",
      lookup: TopicLookup.topicLookup({ brokers })
    }).pipe(Layer.provide(Layer.effectDiscard(OutboxTable.migrate())))
  })
)

const publisher = Layer.unwrap(
  Effect.gen(function* () {
    const deliveryTimeout = yield* Config.Int("DELIVERY_TIMEOUT_MS").pipe(Config.withDefault(120_000))
    return Publisher.layer({
      retry: RetryPolicy.make({ initialDelay: "100 millis", maxDelay: "1 second", maxAttempts: 5 }),
      deliveryTimeout: Duration.millis(deliveryTimeout)
    })
  })
).pipe(Layer.provide(producerLayer()))

const database = PgClient.layerConfig({ url: Config.Redacted("DATABASE_URL") })

Effect.gen(function* () {
  yield* Effect.sync(() => console.error("outbox relay running"))
  return yield* Effect.never
}).pipe(
  Effect.provide(relay.pipe(Layer.provide(Layer.merge(publisher, database)))),
  Effect.provideService(Logger.LogToStderr, true),
  NodeRuntime.runMain
)
