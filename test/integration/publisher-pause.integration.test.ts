// Issue 3's reliability proof on a real broker: the broker is frozen (SIGSTOP) for 2 s and for 15 s in the middle
// of 1,000 publishes. Every publish must resolve Delivered, and a consumer must read back exactly the 1,000 events:
// no loss, no duplicate (idempotent driver retries, no application resend of ambiguous failures).
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Schema } from "effect"
import { Publisher, Topic } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"
import { TopicReader } from "effect-kafka-publisher/testing"
import { describeWithKafka } from "./broker.ts"
import { ownCluster } from "./ownCluster.ts"
import { assertSendInvariants, runPipelined, sendSummary } from "./pipelinedSends.ts"
import { createTopic, type DriverLayer } from "./realHarness.ts"

class Event extends Schema.Class<Event>("Event")({ id: Schema.Int, userId: Schema.String }) {}

const decoder = new TextDecoder()

describeWithKafka("publishing through a broker pause", () => {
  const cluster = ownCluster({ nodes: 1 })

  const publishThroughPause = (pause: Duration.Input, total = 1000, driver: DriverLayer = KafkaJsProducer.layer) =>
    Effect.gen(function* () {
      const name = `pause-${Duration.toSeconds(Duration.fromInputUnsafe(pause))}s-${total}-${Date.now()}`
      yield* createTopic(cluster().brokers, name, { partitions: 3 })
      const topic = Topic.make({ name, schema: Event, key: (e) => e.userId })
      const publisher = yield* Publisher.Publisher
      let settled = 0

      // freeze the broker once 200 publishes have settled, while the rest are in flight
      const freezer = Effect.gen(function* () {
        while (settled < total / 5) yield* Effect.sleep("5 millis")
        cluster().pause(1)
        yield* Effect.sleep(pause)
        cluster().resume(1)
      })
      const events = Array.from({ length: total }, (_, id) => new Event({ id, userId: `user-${(id % 5) + 1}` }))
      const [receipts] = yield* Effect.all(
        [
          Effect.forEach(
            events,
            (event) => publisher.publish(topic, event).pipe(Effect.ensuring(Effect.sync(() => settled++))),
            { concurrency: 50 }
          ),
          freezer
        ],
        { concurrency: 2 }
      )

      assert.strictEqual(receipts.length, total)
      assert.isTrue(
        receipts.every((r) => r._tag === "Delivered" && !r.possibleDuplicate),
        "every publish delivered, none marked as a possible duplicate"
      )

      const records = yield* TopicReader.readAll({ brokers: cluster().brokers, topic: name })
      const ids = records.map((r) => (JSON.parse(decoder.decode(r.value!)) as { id: number }).id)
      const unique = new Set(ids)
      const duplicates = ids.length - unique.size
      const lost = events.filter((e) => !unique.has(e.id)).length
      console.log(
        `pause ${Duration.format(Duration.fromInputUnsafe(pause))}: published ${total}, records ${records.length}, duplicates ${duplicates}, lost ${lost}`
      )
      assert.strictEqual(duplicates, 0)
      assert.strictEqual(lost, 0)
      assert.strictEqual(records.length, total)
    }).pipe(
      Effect.provide(
        Publisher.layer().pipe(Layer.provide(driver({ brokers: cluster().brokers, clientId: "pause-test" })))
      )
    )

  // issue 3
  describe("1,000 publishes", () => {
    it.live("broker frozen for 2 s: 1,000 records, no duplicates, no loss", () => publishThroughPause("2 seconds"), {
      timeout: 120_000
    })
    it.live("broker frozen for 15 s: 1,000 records, no duplicates, no loss", () => publishThroughPause("15 seconds"), {
      timeout: 180_000
    })
  })

  // issue 6: the second driver keeps the same promise
  describe("1,000 publishes, @platformatic/kafka driver", () => {
    it.live("broker frozen for 2 s", () => publishThroughPause("2 seconds", 1000, PlatformaticProducer.layer), {
      timeout: 120_000
    })
    it.live("broker frozen for 15 s", () => publishThroughPause("15 seconds", 1000, PlatformaticProducer.layer), {
      timeout: 180_000
    })
  })

  // issue 13: sends with several in flight (pipelinedSends.ts) through the pause, both drivers at once: every record
  // written (the pause is shorter than the request timeout), in order per key, none twice
  describe("pipelined sends, both drivers", () => {
    for (const pause of ["2 seconds", "15 seconds"] as const)
      it.live(
        `broker frozen for ${pause}: every record written once, in call order per key`,
        () =>
          Effect.gen(function* () {
            const brokers = cluster().brokers
            const drivers = [
              ["kafkajs", KafkaJsProducer.layer],
              ["platformatic", PlatformaticProducer.layer]
            ] as const
            const names = drivers.map(([d]) => `pause-sends-${d}-${Date.now()}`)
            for (const name of names) yield* createTopic(brokers, name, { partitions: 3 })
            let pausedAt = 0
            let resumedAt = 0
            const [audits] = yield* Effect.all(
              [
                Effect.forEach(
                  drivers,
                  ([, layer], i) => runPipelined(layer({ brokers, clientId: `pause-sends-${i}` }), brokers, names[i]!),
                  { concurrency: "unbounded" }
                ),
                Effect.sleep("400 millis").pipe(
                  Effect.andThen(
                    Effect.sync(() => {
                      pausedAt = Date.now()
                      cluster().pause(1)
                    })
                  ),
                  Effect.andThen(Effect.sleep(pause)),
                  Effect.andThen(
                    Effect.sync(() => {
                      resumedAt = Date.now()
                      cluster().resume(1)
                    })
                  )
                )
              ],
              { concurrency: 2 }
            )
            audits.forEach((audit, i) => {
              console.log(sendSummary(`pause ${pause}, ${drivers[i]![0]} sends`, audit))
              assertSendInvariants(`${drivers[i]![0]} sends`, audit)
              assert.isTrue(audit.hitBetween(pausedAt, resumedAt), "sends were in flight while the broker was frozen")
              assert.strictEqual(audit.written, audit.records, "every record written")
            })
          }),
        { timeout: 180_000 }
      )
  })

  // issue 7: every publish resolves, records = delivered receipts, 0 duplicates, 0 lost
  describe("10,000 publishes", () => {
    it.live("broker frozen for 2 s", () => publishThroughPause("2 seconds", 10_000), { timeout: 180_000 })
    it.live("broker frozen for 30 s (the request timeout)", () => publishThroughPause("30 seconds", 10_000), {
      timeout: 240_000
    })
  })
})
