// Issue 7 on a three-node cluster (replication factor 3, min.insync.replicas 2): a partition leader killed
// mid-stream, a follower paused, then two nodes lost. Every event is accounted for by reading both topics back.
import { assert, it } from "@effect/vitest"
import { Effect, Layer, Schedule, Schema } from "effect"
import { Publisher, RetryPolicy, Topic } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { describeWithKafka } from "./broker.ts"
import { ownCluster, quickRestart } from "./ownCluster.ts"
import { leaderOf } from "./partitionLeader.ts"
import { createTopic } from "./realHarness.ts"
import { count, summary } from "./reliabilityCounts.ts"

class Event extends Schema.Class<Event>("Event")({ id: Schema.Int, userId: Schema.String }) {}

describeWithKafka("three-node cluster faults", () => {
  const cluster = ownCluster({ nodes: 3, extraProps: quickRestart })

  /** Publishes `total` events 20 at a time; `fault` runs beside them once `after` have settled. */
  const run = <E>(
    label: string,
    total: number,
    after: number,
    fault: (brokers: ReadonlyArray<string>, topic: string) => Effect.Effect<void, E>,
    publisherOptions: Publisher.Options = {}
  ) =>
    Effect.gen(function* () {
      const name = `cluster-${label.replace(/\W+/g, "-")}-${Date.now()}`
      yield* createTopic(cluster().brokers, name, { partitions: 3, replicationFactor: 3 })
      yield* createTopic(cluster().brokers, `${name}.dlt`, { partitions: 1, replicationFactor: 3 })
      const topic = Topic.make({ name, schema: Event, key: (e) => e.userId })
      const events = Array.from({ length: total }, (_, id) => new Event({ id, userId: `user-${id % 11}` }))
      let settled = 0
      const outcomes = yield* Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const [results] = yield* Effect.all(
          [
            Effect.forEach(
              events,
              (e) => Effect.exit(publisher.publish(topic, e)).pipe(Effect.ensuring(Effect.sync(() => settled++))),
              { concurrency: 20 }
            ),
            Effect.gen(function* () {
              while (settled < after) yield* Effect.sleep("5 millis")
              yield* fault(cluster().brokers, name)
            })
          ],
          { concurrency: 2 }
        )
        return results
      }).pipe(
        Effect.provide(
          Publisher.layer(publisherOptions).pipe(
            Layer.provide(KafkaJsProducer.layer({ brokers: cluster().brokers, clientId: label }))
          )
        )
      )
      return { name, outcomes }
    })

  it.live(
    "leader killed mid-stream, then restarted: 0 lost, 0 duplicates",
    () =>
      Effect.gen(function* () {
        let killed = 0
        const { name, outcomes } = yield* run("leader-kill", 1500, 300, (brokers, topic) =>
          Effect.gen(function* () {
            killed = yield* leaderOf(brokers, topic, 0)
            yield* Effect.promise(() => cluster().kill(killed))
          })
        )
        yield* Effect.promise(() => cluster().restart(killed))
        const counts = yield* count(cluster().brokers, name, `${name}.dlt`, outcomes)
        console.log(summary(`3 nodes, leader ${killed} killed`, counts))
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
        const { name, outcomes } = yield* run("follower-pause", 1500, 300, (brokers, topic) =>
          Effect.gen(function* () {
            const leader = yield* leaderOf(brokers, topic, 0)
            paused = cluster()
              .nodes.map((n) => n.id)
              .find((id) => id !== leader)!
            cluster().pause(paused)
            yield* Effect.sleep("6 seconds")
            cluster().resume(paused)
          })
        )
        const counts = yield* count(cluster().brokers, name, `${name}.dlt`, outcomes)
        console.log(summary(`3 nodes, follower ${paused} paused 6 s`, counts))
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
        const { name, outcomes } = yield* run(
          "two-down",
          100,
          80,
          () =>
            Effect.gen(function* () {
              yield* Effect.promise(() => cluster().kill(2))
              yield* Effect.promise(() => cluster().kill(3))
            }),
          { deliveryTimeout: "15 seconds", retry: RetryPolicy.make({ maxAttempts: 4, maxDelay: "2 seconds" }) }
        )
        yield* Effect.promise(() => Promise.all([cluster().restart(2), cluster().restart(3)]))
        // leaders are elected again a little after the nodes are back
        const counts = yield* count(cluster().brokers, name, `${name}.dlt`, outcomes).pipe(
          Effect.retry(Schedule.spaced("1 second").pipe(Schedule.upTo({ times: 30 })))
        )
        console.log(summary("3 nodes, two lost", counts))
        assert.strictEqual(counts.delivered + counts.deadLettered + counts.errors, 100)
        assert.isAbove(counts.errors + counts.deadLettered, 0, "the loss of two nodes showed")
        assert.strictEqual(counts.lost, 0)
        assert.strictEqual(counts.duplicates, 0)
        assert.strictEqual(counts.silentlyWritten, 0)
      }),
    { timeout: 240_000 }
  )
})
