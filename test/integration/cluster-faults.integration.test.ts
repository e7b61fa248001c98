// Issue 7 on a three-node cluster (replication factor 3, min.insync.replicas 2): a partition leader killed
// mid-stream, a follower paused, then two nodes lost, on each driver. Every event is accounted for by reading both
// topics back. Beside the leader kill and the follower pause, both drivers also send with several sends in flight
// on the same topic (pipelinedSends.ts): order per key kept, nothing written twice or ahead of a failure.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Schedule, Schema } from "effect"
import { Publisher, RetryPolicy, Topic } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"
import { describeWithKafka, kafkaVersion } from "./broker.ts"
import { ownCluster, quickRestart } from "./ownCluster.ts"
import { leaderOf } from "./partitionLeader.ts"
import { assertSendInvariants, runPipelined, sendSummary } from "./pipelinedSends.ts"
import { createTopic, type DriverLayer } from "./realHarness.ts"
import { count, summary } from "./reliabilityCounts.ts"

class Event extends Schema.Class<Event>("Event")({ id: Schema.Int, userId: Schema.String }) {}

type DriverName = "kafkajs" | "platformatic"
const drivers: Record<DriverName, DriverLayer> = {
  kafkajs: KafkaJsProducer.layer,
  platformatic: PlatformaticProducer.layer
}

describeWithKafka("three-node cluster faults", () => {
  const cluster = ownCluster({ nodes: 3, extraProps: quickRestart })

  /**
   * Publishes `total` events 20 at a time through `driver`; `fault` runs beside them once `after` have settled.
   * With `sends`, both drivers' pipelined sends run beside them too, on the same topic.
   */
  const run = <E>(
    driver: DriverName,
    label: string,
    total: number,
    after: number,
    fault: (brokers: ReadonlyArray<string>, topic: string) => Effect.Effect<void, E>,
    publisherOptions: Publisher.Options = {},
    sends = false
  ) =>
    Effect.gen(function* () {
      const name = `cluster-${label.replace(/\W+/g, "-")}-${driver}-${Date.now()}`
      yield* createTopic(cluster().brokers, name, { partitions: 3, replicationFactor: 3 })
      yield* createTopic(cluster().brokers, `${name}.dlt`, { partitions: 1, replicationFactor: 3 })
      const topic = Topic.make({ name, schema: Event, key: (e) => e.userId })
      const events = Array.from({ length: total }, (_, id) => new Event({ id, userId: `user-${id % 11}` }))
      let settled = 0
      const pipelined = Effect.forEach(
        sends ? (["kafkajs", "platformatic"] as const) : [],
        (d) =>
          runPipelined(
            drivers[d]({ brokers: cluster().brokers, clientId: `${label}-sends` }),
            cluster().brokers,
            name,
            {
              keyPrefix: `${d}-`,
              // about 6 s: the fault, once 300 publishes settled, comes in the middle
              sends: 600,
              pauseMs: 80
            }
          ).pipe(Effect.map((audit) => ({ driver: d, audit }))),
        { concurrency: "unbounded" }
      )
      const [outcomes, audits] = yield* Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const [results, , audits] = yield* Effect.all(
          [
            Effect.forEach(
              events,
              (e) => Effect.exit(publisher.publish(topic, e)).pipe(Effect.ensuring(Effect.sync(() => settled++))),
              { concurrency: 20 }
            ),
            Effect.gen(function* () {
              while (settled < after) yield* Effect.sleep("5 millis")
              yield* fault(cluster().brokers, name)
            }),
            pipelined
          ],
          { concurrency: 3 }
        )
        return [results, audits] as const
      }).pipe(
        Effect.provide(
          Publisher.layer(publisherOptions).pipe(
            Layer.provide(drivers[driver]({ brokers: cluster().brokers, clientId: label }))
          )
        )
      )
      for (const { driver: d, audit } of audits) {
        console.log(sendSummary(`3 nodes, ${label}, ${d} sends, Kafka ${kafkaVersion()}`, audit))
        assertSendInvariants(`${label}, ${d} sends`, audit)
      }
      return { name, outcomes }
    })

  describe.each(["kafkajs", "platformatic"] as const)("%s driver", (driver) => {
    it.live(
      "leader killed mid-stream, then restarted: 0 lost, 0 duplicates",
      () =>
        Effect.gen(function* () {
          let killed = 0
          const { name, outcomes } = yield* run(
            driver,
            "leader-kill",
            1500,
            300,
            (brokers, topic) =>
              Effect.gen(function* () {
                killed = yield* leaderOf(brokers, topic, 0)
                yield* Effect.promise(() => cluster().kill(killed))
              }),
            {},
            true
          ).pipe(
            // restarted whatever the load found, so the next test has three nodes
            Effect.ensuring(Effect.promise(() => (killed === 0 ? Promise.resolve() : cluster().restart(killed))))
          )

          const counts = yield* count(cluster().brokers, name, `${name}.dlt`, outcomes)
          console.log(summary(`3 nodes, leader ${killed} killed, ${driver}, Kafka ${kafkaVersion()}`, counts))
          assert.strictEqual(counts.lost, 0)
          assert.strictEqual(counts.duplicates, 0)
          assert.strictEqual(counts.silentlyWritten, 0)
          assert.strictEqual(counts.delivered, 1500, "two replicas left are enough for acks=all")
        }),
      { timeout: 180_000 }
    )

    it.live(
      "a follower paused for 6 s: 0 lost, 0 duplicates",
      () =>
        Effect.gen(function* () {
          let paused = 0
          const { name, outcomes } = yield* run(
            driver,
            "follower-pause",
            1500,
            300,
            (brokers, topic) =>
              Effect.gen(function* () {
                const leader = yield* leaderOf(brokers, topic, 0)
                paused = cluster()
                  .nodes.map((n) => n.id)
                  .find((id) => id !== leader)!
                cluster().pause(paused)
                yield* Effect.sleep("6 seconds").pipe(Effect.ensuring(Effect.sync(() => cluster().resume(paused))))
              }),
            {},
            true
          )
          const counts = yield* count(cluster().brokers, name, `${name}.dlt`, outcomes)
          console.log(summary(`3 nodes, follower ${paused} paused 6 s, ${driver}, Kafka ${kafkaVersion()}`, counts))
          assert.strictEqual(counts.lost, 0)
          assert.strictEqual(counts.duplicates, 0)
          assert.strictEqual(counts.silentlyWritten, 0)
          assert.strictEqual(counts.delivered, 1500)
        }),
      { timeout: 180_000 }
    )

    it.live(
      "two nodes lost: not enough replicas until the delivery timeout, then a typed outcome; nothing silent",
      () =>
        Effect.gen(function* () {
          let downed = false
          const { name, outcomes } = yield* run(
            driver,
            "two-down",
            100,
            80,
            () =>
              Effect.gen(function* () {
                downed = true
                yield* Effect.promise(() => cluster().kill(2))
                yield* Effect.promise(() => cluster().kill(3))
              }),
            { deliveryTimeout: "15 seconds", retry: RetryPolicy.make({ maxAttempts: 4, maxDelay: "2 seconds" }) }
          ).pipe(
            // back whatever the load found, so the next test has three nodes
            Effect.ensuring(
              Effect.promise(async () => {
                if (downed) await Promise.all([cluster().restart(2), cluster().restart(3)])
              })
            )
          )
          // leaders are elected again a little after the nodes are back
          const counts = yield* count(cluster().brokers, name, `${name}.dlt`, outcomes).pipe(
            Effect.retry(Schedule.spaced("1 second").pipe(Schedule.upTo({ times: 30 })))
          )
          console.log(summary(`3 nodes, two lost, ${driver}, Kafka ${kafkaVersion()}`, counts))
          assert.strictEqual(counts.delivered + counts.deadLettered + counts.errors, 100)
          assert.isAbove(counts.errors + counts.deadLettered, 0, "the loss of two nodes showed")
          assert.strictEqual(counts.lost, 0)
          assert.strictEqual(counts.duplicates, 0)
          assert.strictEqual(counts.silentlyWritten, 0)
        }),
      { timeout: 240_000 }
    )
  })
})
