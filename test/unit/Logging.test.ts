import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Random, Redacted, Schema } from "effect"
import { TestClock, TestConsole } from "effect/testing"
import { Logging, Publisher, Topic } from "effect-kafka-publisher"
import { FakeKafka } from "effect-kafka-publisher/testing"
import { Retriable } from "../../src/PublishError.ts"

describe("Logging", () => {
  it.effect("JSON lines with the annotations: a retry is a warning, a dead-letter an error; no secret", () =>
    Effect.gen(function* () {
      const secret = Redacted.make("super-secret-password")
      yield* Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const fake = yield* FakeKafka.FakeKafka
        const topic = Topic.make({ name: "orders", schema: Schema.String, key: () => "user-1" })
        yield* fake.failNext(3, new Retriable({ reason: "BrokerUnavailable", ambiguous: false, message: "down" }))
        const fiber = yield* Effect.forkChild(publisher.publish(topic, "hello"))
        yield* TestClock.adjust(300)
        yield* Fiber.join(fiber)
        yield* Effect.logInfo("config loaded", { password: secret })
      }).pipe(
        Effect.provide(Publisher.layer().pipe(Layer.provideMerge(FakeKafka.layer()))),
        Effect.provide(Logging.layer({ format: "json" })),
        Effect.provideService(Random.Random, { nextDoubleUnsafe: () => 0.5, nextIntUnsafe: () => 0 })
      )
      // it.effect routes console output to the TestConsole
      const lines = (yield* TestConsole.logLines).map(String)
      const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>)
      const retries = entries.filter((e) => JSON.stringify(e.message).includes("retrying"))
      assert.strictEqual(retries.length, 2)
      assert.strictEqual(retries[0]!.level, "WARN")
      assert.deepInclude(retries[0]!.annotations as object, {
        topic: "orders",
        key: "user-1",
        attempt: 1,
        delayMs: 100,
        errorType: "Retriable.BrokerUnavailable"
      })
      const dead = entries.find((e) => JSON.stringify(e.message).includes("dead-lettered"))!
      assert.strictEqual(dead.level, "ERROR")
      assert.deepInclude(dead.annotations as object, { deadLetterTopic: "orders.dlt", attempts: 3 })
      assert.notInclude(lines.join("\n"), "super-secret-password")
    })
  )
})
