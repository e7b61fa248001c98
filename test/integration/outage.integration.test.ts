// Issue 4: the broker is stopped for 60 s while a service keeps publishing. The circuit breaker opens and callers
// fail fast with CircuitOpen, health says unhealthy; after the broker is back, it recovers by itself.
import { assert, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Schema } from "effect"
import { CircuitBreaker, Health, Publisher, Topic } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { describeWithKafka } from "./broker.ts"
import { ownCluster, quickRestart } from "./ownCluster.ts"
import { createTopic } from "./realHarness.ts"

class Ping extends Schema.Class<Ping>("Ping")({ id: Schema.Int }) {}

describeWithKafka("a 60 s broker outage", () => {
  const cluster = ownCluster({ nodes: 1, extraProps: quickRestart })

  it.live(
    "breaker opens, callers fail fast with CircuitOpen, health unhealthy; recovers by itself after the restart",
    () =>
      Effect.gen(function* () {
        const name = `outage-${Date.now()}`
        yield* createTopic(cluster().brokers, name, { partitions: 2 })
        const topic = Topic.make({ name, schema: Ping })
        const publisher = yield* Publisher.Publisher
        const breaker = yield* CircuitBreaker.CircuitBreaker
        const health = yield* Health.Health

        type Outcome = { readonly at: number; readonly tag: string; readonly ms: number; readonly breaker: string }
        const outcomes: Array<Outcome> = []
        const healthSeen = new Set<string>()
        let id = 0
        // a service publishing 20 events a second, each on its own fiber
        const traffic = Effect.gen(function* () {
          while (true) {
            const started = Date.now()
            const breakerAtStart = yield* breaker.state
            yield* Effect.forkChild(
              Effect.exit(publisher.publish(topic, new Ping({ id: id++ }))).pipe(
                Effect.tap((exit) =>
                  Effect.sync(() => {
                    const tag = Exit.isSuccess(exit)
                      ? exit.value._tag
                      : ((exit.cause.reasons.find((r) => r._tag === "Fail")?.error as { _tag: string } | undefined)
                          ?._tag ?? "Interrupted")
                    outcomes.push({ at: started, tag, ms: Date.now() - started, breaker: breakerAtStart })
                  })
                )
              )
            )
            healthSeen.add((yield* health.check).status)
            yield* Effect.sleep("50 millis")
          }
        })
        const fiber = yield* Effect.forkChild(traffic)
        yield* Effect.sleep("3 seconds")
        assert.strictEqual(yield* breaker.state, "Closed")

        const stoppedAt = Date.now()
        yield* Effect.promise(() => cluster().kill(1))
        yield* Effect.sleep("60 seconds")
        const stateDuringOutage = yield* breaker.state
        const healthDuringOutage = yield* health.check
        yield* Effect.promise(() => cluster().restart(1))
        const restartedAt = Date.now()
        // the breaker tries again after its reset timeout (30 s at most) and closes on the first success
        let recoveredAt = 0
        while (recoveredAt === 0 && Date.now() - restartedAt < 60_000) {
          yield* Effect.sleep("500 millis")
          if (
            (yield* breaker.state) === "Closed" &&
            outcomes.some((o) => o.at > restartedAt && o.tag === "Delivered")
          ) {
            recoveredAt = Date.now()
          }
        }
        yield* Effect.sleep("2 seconds")
        yield* Fiber.interrupt(fiber)

        const during = outcomes.filter((o) => o.at > stoppedAt && o.at < restartedAt)
        const fastFails = during.filter((o) => o.tag === "CircuitOpen")
        const after = outcomes.filter((o) => o.at > recoveredAt && recoveredAt > 0)
        // publishes that found the breaker open: each must fail at once, without touching the broker
        const whileOpen = during.filter((o) => o.breaker === "Open")
        const slowest = Math.max(...whileOpen.map((o) => o.ms))
        console.log(
          `outage: ${outcomes.length} publishes; during the outage ${during.length}, of which CircuitOpen ${fastFails.length}; ${whileOpen.length} found the breaker open (slowest answer ${slowest} ms); breaker ${stateDuringOutage}, health ${healthDuringOutage.status} (${healthDuringOutage.reasons.join("; ")}); recovered ${((recoveredAt - restartedAt) / 1000).toFixed(1)} s after the restart; delivered after recovery ${after.filter((o) => o.tag === "Delivered").length}/${after.length}`
        )
        assert.notStrictEqual(stateDuringOutage, "Closed")
        assert.strictEqual(healthDuringOutage.status, stateDuringOutage === "Open" ? "unhealthy" : "degraded")
        assert.isTrue(healthSeen.has("unhealthy"), "health said unhealthy during the outage")
        assert.isAbove(fastFails.length, during.length / 2, "most callers failed fast")
        assert.isAbove(whileOpen.length, 0)
        assert.isTrue(
          whileOpen.every((o) => o.tag === "CircuitOpen"),
          "an open breaker rejects every call"
        )
        // a call that reached the dead broker would take seconds (connection timeout); the bound leaves room for a
        // loaded event loop (the broker restarting on the same 2 cores)
        assert.isBelow(slowest, 1000, "CircuitOpen is immediate: no call reaches the broker")
        assert.isAbove(recoveredAt, 0, "recovered by itself")
        assert.isAbove(after.length, 0)
        assert.isTrue(
          after.every((o) => o.tag === "Delivered"),
          "every publish after the recovery is delivered"
        )
      }).pipe(
        Effect.provide(
          Publisher.layer({ deadLetter: false }).pipe(
            Layer.provideMerge(Health.layer()),
            Layer.provideMerge(CircuitBreaker.layer()),
            Layer.provide(KafkaJsProducer.layer({ brokers: cluster().brokers, clientId: "outage" }))
          )
        )
      ),
    { timeout: 240_000 }
  )
})
