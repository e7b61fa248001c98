import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber } from "effect"
import { TestClock } from "effect/testing"
import * as Deadlines from "../../src/internal/deadlines.ts"

const timedOut = Effect.succeed("timed out" as const)

describe("Deadlines", () => {
  it.effect("an effect done in time answers its own result; a later one times out at its own deadline", () =>
    Effect.gen(function* () {
      const deadlines = yield* Deadlines.make(Duration.seconds(10))
      const quick = yield* Deferred.make<string>()
      const first = yield* Effect.forkChild(deadlines.bound(Deferred.await(quick), () => timedOut))
      yield* TestClock.adjust("5 seconds")
      const second = yield* Effect.forkChild(deadlines.bound(Effect.never, () => timedOut))
      yield* Deferred.succeed(quick, "done")
      assert.strictEqual(yield* Fiber.join(first), "done")
      // the watcher slept until the first deadline (10 s); the second one is at 15 s
      yield* TestClock.adjust("9 seconds")
      assert.isUndefined(second.pollUnsafe())
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(second), "timed out")
    })
  )

  it.effect("deadlines expire in the order the effects started; the effect is interrupted first", () =>
    Effect.gen(function* () {
      const deadlines = yield* Deadlines.make(Duration.seconds(10))
      const order: Array<string> = []
      const waiting = (name: string) =>
        Effect.forkChild(
          deadlines.bound(
            Effect.onInterrupt(Effect.never, () => Effect.sync(() => order.push(`${name} stopped`))),
            () =>
              Effect.sync(() => {
                order.push(`${name} timed out`)
                return name
              })
          )
        )
      const a = yield* waiting("a")
      yield* TestClock.adjust("1 second")
      const b = yield* waiting("b")
      yield* TestClock.adjust("9 seconds")
      assert.strictEqual(yield* Fiber.join(a), "a")
      assert.isUndefined(b.pollUnsafe())
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(b), "b")
      assert.deepStrictEqual(order, ["a stopped", "a timed out", "b stopped", "b timed out"])
    })
  )

  it.effect("a failure or an immediate result passes through; an interrupted caller stops the effect", () =>
    Effect.gen(function* () {
      const deadlines = yield* Deadlines.make(Duration.seconds(10))
      assert.strictEqual(yield* deadlines.bound(Effect.succeed(1), () => timedOut), 1)
      const failed = yield* Effect.exit(deadlines.bound(Effect.fail("boom"), () => timedOut))
      assert.deepStrictEqual(failed, Exit.fail("boom"))
      const stopped = yield* Deferred.make<void>()
      const caller = yield* Effect.forkChild(
        deadlines.bound(
          Effect.onInterrupt(Effect.never, () => Deferred.succeed(stopped, undefined)),
          () => timedOut
        )
      )
      yield* Effect.yieldNow
      yield* Fiber.interrupt(caller)
      assert.isTrue(yield* Deferred.isDone(stopped))
    })
  )

  it.effect("an infinite timeout never fires", () =>
    Effect.gen(function* () {
      const deadlines = yield* Deadlines.make(Duration.infinity)
      const fiber = yield* Effect.forkChild(deadlines.bound(Effect.never, () => timedOut))
      yield* TestClock.adjust("1000 days")
      assert.isUndefined(fiber.pollUnsafe())
      yield* Fiber.interrupt(fiber)
    })
  )
})
