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

  describe("keepOrder", () => {
    const signal = () => new AbortController().signal
    const outcome = (p: Promise<unknown>) =>
      p.then(
        (value) => ({ value }),
        (error: unknown) => ({ error })
      )

    it("the sends queued behind a failed one are not started: NotSentAfterFailure, carrying the failure", async () => {
      const queue = SendQueue.make(true, { keepOrder: true })
      let fail: (error: Error) => void = () => {}
      const a = queue.turn()
      const b = queue.turn()
      const c = queue.turn()
      const started: Array<string> = []
      const first = outcome(a.run(() => new Promise((_, reject) => (fail = reject)), signal()))
      const second = outcome(b.run(async () => started.push("b"), signal()))
      const third = outcome(c.run(async () => started.push("c"), signal()))
      await new Promise((resolve) => setTimeout(resolve, 0))
      const broken = new Error("broker gone")
      fail(broken)
      assert.strictEqual(((await first) as { error: unknown }).error, broken)
      a.done()
      const refusedB = ((await second) as { error: unknown }).error
      assert.instanceOf(refusedB, SendQueue.NotSentAfterFailure)
      assert.strictEqual((refusedB as SendQueue.NotSentAfterFailure).earlier, broken)
      b.done()
      // c was queued before b's caller was done too: refused behind b
      assert.instanceOf(((await third) as { error: unknown }).error, SendQueue.NotSentAfterFailure)
      c.done()
      assert.deepStrictEqual(started, [])
      // a send taken after the callers were done runs
      const d = queue.turn()
      assert.deepStrictEqual(await outcome(d.run(async () => "sent", signal())), { value: "sent" })
    })

    it("a send taken in line after the failure, before the failed send's caller was done, is refused too", async () => {
      const queue = SendQueue.make(true, { keepOrder: true })
      const a = queue.turn()
      const failedA = await outcome(a.run(() => Promise.reject(new Error("refused")), signal()))
      assert.property(failedA, "error")
      const b = queue.turn() // the failure happened, a's caller is not done with it yet
      a.done()
      const refused = await outcome(b.run(async () => "b", signal()))
      assert.instanceOf((refused as { error: unknown }).error, SendQueue.NotSentAfterFailure)
      b.done()
      // taken once every failed send's caller was done: it runs
      const c = queue.turn()
      assert.deepStrictEqual(await outcome(c.run(async () => "c", signal())), { value: "c" })
    })

    it("without keepOrder a failure holds nothing back (the transactional queue)", async () => {
      const queue = SendQueue.make(true)
      const first = outcome(queue.run(() => Promise.reject(new Error("refused")), signal()))
      const second = outcome(queue.run(async () => "ran", signal()))
      assert.property(await first, "error")
      assert.deepStrictEqual(await second, { value: "ran" })
    })
  })
})
