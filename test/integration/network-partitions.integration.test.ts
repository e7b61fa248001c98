// Issue 12, three nodes behind toxiproxy (`startCluster({ nodes: 3, proxy: true })`): a partition leader cut off
// from its followers and the controllers while clients still reach it, the client cut off from one broker, and a
// flapping client link. Every event is accounted for by reading both topics back (direct PLAINTEXT listener).
//
// Short documented timeouts: request timeout 5 s (driver), delivery timeout 20 s, dead-letter write 5 s.
import { afterAll, assert, beforeAll, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { Publisher, RetryPolicy, Topic } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"
import { type KafkaCluster, startCluster } from "../../testbed/KafkaCluster.ts"
import { kafkaVersion } from "./broker.ts"
import { describeWithToxiproxy, faultDriverLayer, pacedPublishes } from "./networkFaults.ts"
import { quickRestart } from "./ownCluster.ts"
import { leaderOf } from "./partitionLeader.ts"
import { assertSendInvariants, runPipelined, sendSummary } from "./pipelinedSends.ts"
import { createTopic } from "./realHarness.ts"
import { count, summary } from "./reliabilityCounts.ts"

class Event extends Schema.Class<Event>("Event")({ id: Schema.Int, userId: Schema.String }) {}

// A timeline in the log (ms since the file started): when a cut does not heal, a CI log shows which step hung.
const t0 = Date.now()
const timeline = (...what: ReadonlyArray<unknown>) => console.log(`[timeline ${Date.now() - t0} ms]`, ...what)

const boundMs = 20_000 + 5_000 + 3_000 // delivery timeout + dead-letter write + scheduling slack

describeWithToxiproxy("network partitions (toxiproxy, three nodes)", "three nodes", () => {
  let cluster: KafkaCluster
  beforeAll(async () => {
    // followers that stop fetching leave the ISR after 5 s (default 30 s)
    cluster = await startCluster({
      version: kafkaVersion(),
      nodes: 3,
      proxy: true,
      extraProps: { ...quickRestart, "replica.lag.time.max.ms": 5000 }
    })
  }, 180_000)
  afterAll(async () => {
    await cluster?.stop()
  })

  /** `total` publishes (one partition, RF 3) from 16 fibers while `fault(topic)` runs beside them. */
  const run = (
    label: string,
    driver: "kafkajs" | "platformatic",
    total: number,
    fault: (topic: string) => Effect.Effect<void, unknown>
  ) =>
    Effect.gen(function* () {
      const name = `part-${label}-${driver}-${Date.now()}`.replace(/[^A-Za-z0-9.-]+/g, "-")
      timeline(label, "create topics")
      yield* createTopic(cluster.brokers, name, { partitions: 1, replicationFactor: 3 })
      yield* createTopic(cluster.brokers, `${name}.dlt`, { partitions: 1, replicationFactor: 3 })
      const topic = Topic.make({ name, schema: Event, key: (e) => e.userId })
      const events = Array.from({ length: total }, (_, id) => new Event({ id, userId: `user-${id % 11}` }))
      const config = { brokers: cluster.proxyBrokers!, clientId: name, requestTimeout: "5 seconds" as const }
      // beside the publishes, both drivers' sends with several in flight, on the same partition (pipelinedSends.ts)
      const sends = Effect.forEach(
        ["kafkajs", "platformatic"] as const,
        (d) =>
          runPipelined(faultDriverLayer(d, cluster.proxyBrokers!, `${name}-sends-${d}`), cluster.brokers, name, {
            keyPrefix: `${d}-`,
            sends: 150
          }).pipe(Effect.map((audit) => ({ driver: d, audit }))),
        { concurrency: "unbounded" }
      )
      const [{ outcomes, longestMs }, audits] = yield* Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const [results, , audits] = yield* Effect.all(
          [
            pacedPublishes(publisher, topic, events),
            Effect.sleep("300 millis").pipe(Effect.andThen(fault(name))),
            sends
          ],
          { concurrency: 3 }
        )
        return [results, audits] as const
      }).pipe(
        Effect.ensuring(
          Effect.promise(() => cluster.toxiproxy!.reset()).pipe(
            Effect.andThen(Effect.sync(() => timeline(label, "healed")))
          )
        ),
        Effect.provide(
          Publisher.layer({
            deliveryTimeout: "20 seconds",
            deadLetter: { timeout: "5 seconds" },
            retry: RetryPolicy.make({ maxAttempts: 8, maxDelay: "2 seconds" })
          }).pipe(
            Layer.provide(driver === "kafkajs" ? KafkaJsProducer.layer(config) : PlatformaticProducer.layer(config))
          )
        )
      )
      timeline(label, "publishes done, longest", longestMs)
      const counts = yield* count(cluster.brokers, name, `${name}.dlt`, outcomes)
      timeline(label, "counted")
      console.log(
        `${summary(`3 nodes, ${label}, ${driver}, Kafka ${kafkaVersion()}`, counts)}, longest publish ${longestMs} ms`
      )
      for (const { driver: d, audit } of audits)
        console.log(sendSummary(`3 nodes, ${label}, ${d} sends, Kafka ${kafkaVersion()}`, audit))
      assert.strictEqual(counts.lost, 0)
      assert.strictEqual(counts.duplicates, 0)
      assert.strictEqual(counts.silentlyWritten, 0)
      assert.isAtMost(longestMs, boundMs)
      for (const { driver: d, audit } of audits) assertSendInvariants(`${label}, ${d} sends`, audit)
      return counts
    })

  it.live(
    "partition leader cut off from followers and controllers, reachable by the client: it loses leadership",
    () =>
      Effect.gen(function* () {
        let isolated = 0
        let after = 0
        yield* run("leader-isolated", "kafkajs", 300, (name) =>
          Effect.gen(function* () {
            isolated = yield* leaderOf(cluster.brokers, name, 0)
            const mine = cluster.proxies!.get(isolated)!
            yield* Effect.promise(async () => {
              await mine.replication!.down() // followers cannot fetch from it
              await mine.controller!.down() // its advertised controller endpoint: raft followers fetch there
              for (const link of mine.controllerLinks.values()) await link.down() // it reaches no controller
              for (const [id, other] of cluster.proxies!)
                if (id !== isolated) await other.controllerLinks.get(isolated)!.down()
            })
            timeline("isolated", isolated)
            // fenced after the broker session timeout (6 s); a new leader is elected among the followers
            for (let i = 0; i < 40; i++) {
              yield* Effect.sleep("500 millis")
              after = yield* leaderOf(
                cluster.brokers.filter((_, index) => index + 1 !== isolated),
                name,
                0
              ).pipe(Effect.orElseSucceed(() => isolated))
              if (after !== isolated) break
            }
            timeline("new leader", after)
            yield* Effect.sleep("3 seconds")
            // healed here, not after the load: a partition that never elects a leader must not hold 300 publishes
            yield* Effect.promise(() => cluster.toxiproxy!.reset())
          })
        )
        assert.notStrictEqual(after, isolated, "the isolated leader kept its leadership")
        assert.isAbove(after, 0, "no leader was elected among the followers")
      }),
    { timeout: 150_000 }
  )

  it.live(
    "client cut off from one broker for 8 s, then a link flapping 1 s down / 1 s up for 10 s",
    () =>
      Effect.gen(function* () {
        yield* run("client-cut", "platformatic", 300, (name) =>
          Effect.gen(function* () {
            const leader = cluster.proxies!.get(yield* leaderOf(cluster.brokers, name, 0))!
            yield* Effect.promise(() => leader.client.down())
            yield* Effect.sleep("8 seconds")
            yield* Effect.promise(() => leader.client.up())
          })
        )
        yield* run("flapping", "kafkajs", 300, (name) =>
          Effect.gen(function* () {
            const leader = cluster.proxies!.get(yield* leaderOf(cluster.brokers, name, 0))!
            for (let i = 0; i < 5; i++) {
              yield* Effect.promise(() => leader.client.down())
              yield* Effect.sleep("1 second")
              yield* Effect.promise(() => leader.client.up())
              yield* Effect.sleep("1 second")
            }
          })
        )
      }),
    { timeout: 150_000 }
  )
})
