// Issue 7, broker crash: kill -9 the only broker mid-stream, restart it, and account for every event.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { Publisher, Topic } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"
import { describeWithKafka } from "./broker.ts"
import { ownCluster, quickRestart } from "./ownCluster.ts"
import { assertSendInvariants, runPipelined, sendSummary } from "./pipelinedSends.ts"
import { createTopic, type DriverLayer } from "./realHarness.ts"
import { count, summary } from "./reliabilityCounts.ts"

class Event extends Schema.Class<Event>("Event")({ id: Schema.Int, userId: Schema.String }) {}

describeWithKafka("broker crash (kill -9) and restart", () => {
  const cluster = ownCluster({ nodes: 1, extraProps: quickRestart })

  const drivers: ReadonlyArray<[string, DriverLayer]> = [
    ["kafkajs", KafkaJsProducer.layer],
    ["@platformatic/kafka", PlatformaticProducer.layer]
  ]

  describe.each(drivers)("sends with several in flight (pipelinedSends.ts), %s driver", (driverName, driver) => {
    it.live(
      "kill -9 mid-stream and restart: nothing lost, nothing twice, order per key kept, nothing ahead of a failure",
      () =>
        Effect.gen(function* () {
          const name = `crash-sends-${Date.now()}`
          yield* createTopic(cluster().brokers, name, { partitions: 3 })
          let killedAt = 0
          let restartedAt = 0
          const [audit] = yield* Effect.all(
            [
              runPipelined(driver({ brokers: cluster().brokers, clientId: "crash-sends" }), cluster().brokers, name, {
                sends: 400
              }),
              Effect.sleep("500 millis").pipe(
                Effect.andThen(
                  Effect.promise(() => {
                    killedAt = Date.now()
                    return cluster().kill(1)
                  })
                ),
                Effect.andThen(Effect.sleep("1 second")),
                Effect.andThen(Effect.promise(() => cluster().restart(1))),
                Effect.andThen(
                  Effect.sync(() => {
                    restartedAt = Date.now()
                  })
                )
              )
            ],
            { concurrency: 2 }
          )
          console.log(sendSummary(`kill -9 + restart, ${driverName} sends`, audit))
          assertSendInvariants(`${driverName} sends`, audit)
          // the outage hit sends in flight (whether they then failed or the driver's retries outlasted the restart)
          assert.isTrue(audit.hitBetween(killedAt, restartedAt), "sends were in flight while the broker was down")
          assert.isAbove(audit.written, 0, "records were written")
        }),
      { timeout: 240_000 }
    )
  })

  describe.each(drivers)("2,000 publishes, 50 at a time, %s driver", (driverName, driver) => {
    it.live(
      "every event ends in the topic, the dead-letter topic or a typed error; nothing lost, nothing silent",
      () =>
        Effect.gen(function* () {
          const name = `crash-${Date.now()}`
          yield* createTopic(cluster().brokers, name, { partitions: 3 })
          yield* createTopic(cluster().brokers, `${name}.dlt`, { partitions: 1 })
          const topic = Topic.make({ name, schema: Event, key: (e) => e.userId })
          const publisher = yield* Publisher.Publisher
          const total = 2000
          let settled = 0
          const crash = Effect.gen(function* () {
            while (settled < 400) yield* Effect.sleep("5 millis")
            yield* Effect.promise(() => cluster().kill(1))
            yield* Effect.sleep("1 second")
            yield* Effect.promise(() => cluster().restart(1))
          })
          const events = Array.from({ length: total }, (_, id) => new Event({ id, userId: `user-${id % 7}` }))
          const [outcomes] = yield* Effect.all(
            [
              Effect.forEach(
                events,
                (event) =>
                  Effect.exit(publisher.publish(topic, event)).pipe(Effect.ensuring(Effect.sync(() => settled++))),
                { concurrency: 50 }
              ),
              crash
            ],
            { concurrency: 2 }
          )
          const counts = yield* count(cluster().brokers, name, `${name}.dlt`, outcomes)
          console.log(summary(`kill -9 + restart (${driverName})`, counts))
          assert.strictEqual(counts.delivered + counts.deadLettered + counts.errors, total)
          assert.strictEqual(counts.lost, 0, "no delivered or dead-lettered event missing")
          assert.strictEqual(counts.duplicates, 0, "no unmarked duplicate")
          assert.strictEqual(counts.silentlyWritten, 0, "no event reported failed (unambiguously) but written")
          assert.isAbove(counts.delivered, 400, "the stream went on after the restart")
        }).pipe(
          Effect.provide(
            Publisher.layer().pipe(Layer.provide(driver({ brokers: cluster().brokers, clientId: "crash" })))
          )
        ),
      { timeout: 240_000 }
    )
  })
})
