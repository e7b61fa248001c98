import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Random, Ref } from "effect"
import { TestClock } from "effect/testing"
import { RetryPolicy } from "effect-kafka-publisher"
import { Fatal, type PublishError, Retriable } from "../../src/PublishError.ts"

// jittered delay = d * (0.8 * (1 - r) + 1.2 * r): r fixes the jitter factor (0 -> 0.8, 0.5 -> 1, 1 -> 1.2)
const randomAt = (r: number) =>
  Effect.provideService(Random.Random, { nextDoubleUnsafe: () => r, nextIntUnsafe: () => 0 })

const unavailable = new Retriable({ reason: "BrokerUnavailable", ambiguous: false, message: "down" })
const tooLarge = new Fatal({ reason: "RecordTooLarge", message: "too large" })

/** Fails with `error` every time, counting the attempts; returns the fiber and the counter. */
const failingWith = (error: PublishError, policy: RetryPolicy.RetryPolicy) =>
  Effect.gen(function* () {
    const attempts = yield* Ref.make(0)
    const attempt = Ref.update(attempts, (n) => n + 1).pipe(Effect.andThen(Effect.fail(error)))
    const fiber = yield* attempt.pipe(Effect.retry(policy), Effect.forkChild)
    yield* Effect.yieldNow
    return { fiber, attempts }
  })

/** Advances the clock step by step and checks the attempt count after each step. */
const expectAttempts = (attempts: Ref.Ref<number>, steps: ReadonlyArray<readonly [number, number]>) =>
  Effect.forEach(steps, ([ms, expected]) =>
    Effect.gen(function* () {
      yield* TestClock.adjust(ms)
      assert.strictEqual(yield* Ref.get(attempts), expected, `after +${ms} ms`)
    })
  )

describe("RetryPolicy", () => {
  it.effect("default: 3 attempts, 100 ms then 200 ms", () =>
    Effect.gen(function* () {
      const { fiber, attempts } = yield* failingWith(unavailable, RetryPolicy.defaultPolicy)
      assert.strictEqual(yield* Ref.get(attempts), 1)
      yield* expectAttempts(attempts, [
        [99, 1],
        [1, 2],
        [199, 2],
        [1, 3],
        [10_000, 3]
      ])
      const exit = yield* Fiber.await(fiber)
      assert.deepStrictEqual(exit, Exit.fail(unavailable))
    }).pipe(randomAt(0.5))
  )

  it.effect("exponential doubling up to the cap: 100, 200, 400, 800, 1000, 1000", () =>
    Effect.gen(function* () {
      const policy = RetryPolicy.make({ maxAttempts: 7, maxDelay: "1 second" })
      const { fiber, attempts } = yield* failingWith(unavailable, policy)
      yield* expectAttempts(attempts, [
        [100, 2],
        [200, 3],
        [400, 4],
        [799, 4],
        [1, 5],
        [1000, 6],
        [999, 6],
        [1, 7]
      ])
      assert.isTrue(Exit.isFailure(yield* Fiber.await(fiber)))
    }).pipe(randomAt(0.5))
  )

  it.effect("jitter scales a delay by 0.8 at the low end", () =>
    Effect.gen(function* () {
      const { attempts } = yield* failingWith(unavailable, RetryPolicy.make({ maxAttempts: 3 }))
      yield* expectAttempts(attempts, [
        [79, 1],
        [1, 2],
        [159, 2],
        [1, 3]
      ])
    }).pipe(randomAt(0))
  )

  it.effect("jitter scales by 1.2 at the high end, and the cap applies after the jitter", () =>
    Effect.gen(function* () {
      const policy = RetryPolicy.make({ maxAttempts: 4, initialDelay: "500 millis", maxDelay: "1100 millis" })
      const { attempts } = yield* failingWith(unavailable, policy)
      // 500 * 1.2 = 600; 1000 * 1.2 = 1200 -> capped to 1100; 2000 * 1.2 -> 1100
      yield* expectAttempts(attempts, [
        [599, 1],
        [1, 2],
        [1099, 2],
        [1, 3],
        [1100, 4]
      ])
    }).pipe(randomAt(1))
  )

  it.effect("a Fatal error is not retried", () =>
    Effect.gen(function* () {
      const { fiber, attempts } = yield* failingWith(tooLarge, RetryPolicy.defaultPolicy)
      yield* TestClock.adjust(60_000)
      assert.strictEqual(yield* Ref.get(attempts), 1)
      assert.deepStrictEqual(yield* Fiber.await(fiber), Exit.fail(tooLarge))
    })
  )

  it.effect("none: one attempt only", () =>
    Effect.gen(function* () {
      const { fiber, attempts } = yield* failingWith(unavailable, RetryPolicy.none)
      yield* TestClock.adjust(60_000)
      assert.strictEqual(yield* Ref.get(attempts), 1)
      assert.isTrue(Exit.isFailure(yield* Fiber.await(fiber)))
    })
  )

  it.effect("a success after retries ends the schedule", () =>
    Effect.gen(function* () {
      const attempts = yield* Ref.make(0)
      const flaky = Ref.updateAndGet(attempts, (n) => n + 1).pipe(
        Effect.flatMap((n) => (n < 3 ? Effect.fail(unavailable) : Effect.succeed("ok")))
      )
      const fiber = yield* flaky.pipe(Effect.retry(RetryPolicy.defaultPolicy), Effect.forkChild)
      yield* TestClock.adjust(300)
      assert.deepStrictEqual(yield* Fiber.await(fiber), Exit.succeed("ok"))
      assert.strictEqual(yield* Ref.get(attempts), 3)
    }).pipe(randomAt(0.5))
  )

  it("rejects a maxAttempts below 1", () => {
    assert.throws(() => RetryPolicy.make({ maxAttempts: 0 }), /maxAttempts/)
  })
})
