import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import * as SendQueue from "../../../src/internal/sendQueue.ts"

const never = () => new Promise<never>(() => {})

describe("sendQueue", () => {
  it.effect("issue 18 (suspicion): drain waits at most its timeout, not twice it", () =>
    Effect.gen(function* () {
      const queue = SendQueue.make(true)
      void queue.run(never, new AbortController().signal).catch(() => undefined)
      const drained = yield* Effect.forkChild(queue.drain("1 second"))
      yield* TestClock.adjust("1 second")
      yield* Effect.yieldNow
      assert.isTrue(drained.pollUnsafe() !== undefined, "drain returned after 1 s")
      yield* Fiber.join(drained)
    })
  )

  it.effect("drain returns once the sends in flight finished", () =>
    Effect.gen(function* () {
      const queue = SendQueue.make(true)
      let finish: () => void = () => {}
      const sent = queue.run(() => new Promise<void>((resolve) => (finish = resolve)), new AbortController().signal)
      const drained = yield* Effect.forkChild(queue.drain("1 minute"))
      yield* Effect.yieldNow
      assert.isUndefined(drained.pollUnsafe())
      yield* Effect.promise(async () => {
        finish()
        await sent
      })
      yield* TestClock.adjust("20 millis")
      yield* Fiber.join(drained)
      assert.strictEqual(queue.inFlight(), 0)
    })
  )

  it.effect("a queued send whose caller gave up is never started", () =>
    Effect.gen(function* () {
      const queue = SendQueue.make(true)
      let release: () => void = () => {}
      const first = queue.run(() => new Promise<void>((resolve) => (release = resolve)), new AbortController().signal)
      const gaveUp = new AbortController()
      let started = false
      const second = queue.run(async () => {
        started = true
      }, gaveUp.signal)
      gaveUp.abort()
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 0))) // the first send started
      release()
      yield* Effect.promise(() => first)
      const error = yield* Effect.promise(() =>
        second.then(
          () => undefined,
          (e: unknown) => e
        )
      )
      assert.instanceOf(error, SendQueue.SendCancelled)
      assert.isFalse(started)
    })
  )
})
