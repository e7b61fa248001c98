import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, Effect, Exit, Fiber, Metric, Ref } from "effect"
import { TestClock } from "effect/testing"
import { CircuitBreaker } from "effect-kafka-publisher"
import { Fatal, Retriable } from "../../src/PublishError.ts"
import { makeSteppingClock } from "../support/steppingClock.ts"

const down = new Retriable({ reason: "BrokerUnavailable", ambiguous: false, message: "down" })
const tooLarge = new Fatal({ reason: "RecordTooLarge", message: "too large" })

type Scripted = "ok" | "down" | "fatal" | "defect"

const outcome = (scripted: Scripted): Effect.Effect<string, Retriable | Fatal> =>
  scripted === "ok"
    ? Effect.succeed("ok")
    : scripted === "down"
      ? Effect.fail(down)
      : scripted === "fatal"
        ? Effect.fail(tooLarge)
        : Effect.die("bug")

/** What a call ended with: "ok", the error's tag, or "defect". */
const tagOf = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "ok"
  const fail = exit.cause.reasons.find(Cause.isFailReason)
  return fail === undefined ? "defect" : (fail.error as { _tag: string })._tag
}

const circuitOpen = (exit: Exit.Exit<unknown, unknown>): CircuitBreaker.CircuitOpen => {
  const fail = Exit.isFailure(exit) ? exit.cause.reasons.find(Cause.isFailReason) : undefined
  assert.instanceOf(fail?.error, CircuitBreaker.CircuitOpen)
  return fail.error as CircuitBreaker.CircuitOpen
}

/** A breaker (threshold 3, reset 10 s) and a protected call that counts how often it really runs. */
const setup = (options: CircuitBreaker.Options = {}) =>
  Effect.gen(function* () {
    const changes: Array<string> = []
    const breaker = yield* CircuitBreaker.make({
      failureThreshold: 3,
      resetTimeout: "10 seconds",
      onStateChange: (change) => Effect.sync(() => changes.push(`${change.from}->${change.to}@${change.at}`)),
      ...options
    })
    const runs = yield* Ref.make(0)
    const call = (scripted: Scripted) =>
      breaker.protect(Ref.update(runs, (n) => n + 1).pipe(Effect.andThen(outcome(scripted))))
    const attempt = (scripted: Scripted) => Effect.exit(call(scripted)).pipe(Effect.map(tagOf))
    const trip = Effect.gen(function* () {
      for (let i = 0; i < 3; i++) assert.strictEqual(yield* attempt("down"), "Retriable")
      assert.strictEqual(yield* breaker.state, "Open")
    })
    return { breaker, runs: Ref.get(runs), call, attempt, trip, changes }
  })

describe("CircuitBreaker", () => {
  it.effect("stays closed below the threshold; a success resets the count", () =>
    Effect.gen(function* () {
      const { breaker, attempt, changes } = yield* setup()
      yield* attempt("down")
      yield* attempt("down")
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.strictEqual(yield* attempt("ok"), "ok")
      yield* attempt("down")
      yield* attempt("down")
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.deepStrictEqual(changes, [])
    })
  )

  it.effect("opens at the Nth consecutive failure, then fails fast without running the effect", () =>
    Effect.gen(function* () {
      const { breaker, call, attempt, runs, trip, changes } = yield* setup()
      yield* TestClock.adjust(1_000)
      yield* trip
      assert.deepStrictEqual(changes, ["Closed->Open@1000"])
      for (let i = 0; i < 5; i++) assert.strictEqual(yield* attempt("ok"), "CircuitOpen")
      assert.strictEqual(yield* runs, 3)
      yield* TestClock.adjust(4_000)
      const error = circuitOpen(yield* Effect.exit(call("ok")))
      assert.strictEqual(error.openedAt, 1_000)
      assert.strictEqual(error.retryAfterMs, 6_000)
      assert.match(error.message, /circuit breaker open/)
      assert.strictEqual(yield* breaker.state, "Open")
    })
  )

  it.effect("half-open after exactly the reset timeout, not 1 ms earlier", () =>
    Effect.gen(function* () {
      const { breaker, attempt, runs, trip } = yield* setup()
      yield* trip
      yield* TestClock.adjust(9_999)
      assert.strictEqual(yield* breaker.state, "Open")
      assert.strictEqual(yield* attempt("ok"), "CircuitOpen")
      assert.strictEqual(yield* runs, 3)
      yield* TestClock.adjust(1)
      // No call needed: reading the state after the timeout already sees it half-open.
      assert.strictEqual(yield* breaker.state, "HalfOpen")
    })
  )

  it.effect("a successful trial closes it", () =>
    Effect.gen(function* () {
      const { breaker, attempt, runs, trip, changes } = yield* setup()
      yield* trip
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* attempt("ok"), "ok")
      assert.strictEqual(yield* runs, 4)
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.deepStrictEqual(changes, ["Closed->Open@0", "Open->HalfOpen@10000", "HalfOpen->Closed@10000"])
      // Closed again with a fresh count: it takes N new failures to open it.
      yield* attempt("down")
      yield* attempt("down")
      assert.strictEqual(yield* breaker.state, "Closed")
    })
  )

  it.effect("half-open lets one trial through at a time; concurrent calls fail fast", () =>
    Effect.gen(function* () {
      const { breaker, call, runs, trip } = yield* setup()
      yield* trip
      yield* TestClock.adjust("10 seconds")
      const trial = yield* Effect.forkChild(breaker.protect(Effect.sleep("1 second").pipe(Effect.as("trial"))))
      yield* Effect.yieldNow
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      const others = yield* Effect.forEach(Array.from({ length: 50 }), () => Effect.exit(call("ok")), {
        concurrency: "unbounded"
      })
      for (const exit of others) assert.strictEqual(circuitOpen(exit).retryAfterMs, 0)
      assert.strictEqual(yield* runs, 3)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(trial), "trial")
      assert.strictEqual(yield* breaker.state, "Closed")
    })
  )

  it.effect("many callers at once when the timeout has passed: exactly one runs as the trial", () =>
    Effect.gen(function* () {
      const { breaker, runs, trip } = yield* setup()
      yield* trip
      yield* TestClock.adjust("10 seconds")
      const ran = yield* Ref.make(0)
      const slow = Ref.update(ran, (n) => n + 1).pipe(Effect.andThen(Effect.sleep("1 second")))
      const fibers = yield* Effect.forEach(Array.from({ length: 20 }), () =>
        Effect.forkChild(Effect.exit(breaker.protect(slow)))
      )
      yield* TestClock.adjust("1 second")
      const tags = (yield* Effect.forEach(fibers, Fiber.join)).map(tagOf)
      assert.strictEqual(tags.filter((t) => t === "ok").length, 1)
      assert.strictEqual(tags.filter((t) => t === "CircuitOpen").length, 19)
      assert.strictEqual(yield* Ref.get(ran), 1)
      assert.strictEqual(yield* runs, 3)
      assert.strictEqual(yield* breaker.state, "Closed")
    })
  )

  it.effect("a failed trial opens it again and restarts the timer", () =>
    Effect.gen(function* () {
      const { breaker, call, attempt, trip, changes } = yield* setup()
      yield* trip
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* attempt("down"), "Retriable")
      assert.strictEqual(yield* breaker.state, "Open")
      const error = circuitOpen(yield* Effect.exit(call("ok")))
      assert.strictEqual(error.openedAt, 10_000)
      assert.strictEqual(error.retryAfterMs, 10_000)
      yield* TestClock.adjust(9_999)
      assert.strictEqual(yield* attempt("ok"), "CircuitOpen")
      yield* TestClock.adjust(1)
      assert.strictEqual(yield* attempt("ok"), "ok")
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.deepStrictEqual(changes, [
        "Closed->Open@0",
        "Open->HalfOpen@10000",
        "HalfOpen->Open@10000",
        "Open->HalfOpen@20000",
        "HalfOpen->Closed@20000"
      ])
    })
  )

  it.effect("Fatal errors do not trip it: they prove the broker answered, so they reset the count", () =>
    Effect.gen(function* () {
      const { breaker, attempt } = yield* setup()
      for (let i = 0; i < 10; i++) assert.strictEqual(yield* attempt("fatal"), "Fatal")
      assert.strictEqual(yield* breaker.state, "Closed")
      yield* attempt("down")
      yield* attempt("down")
      yield* attempt("fatal")
      yield* attempt("down")
      yield* attempt("down")
      assert.strictEqual(yield* breaker.state, "Closed")
      yield* attempt("down")
      assert.strictEqual(yield* breaker.state, "Open")
      // ...and a Fatal answer to the trial closes it.
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* attempt("fatal"), "Fatal")
      assert.strictEqual(yield* breaker.state, "Closed")
    })
  )

  it.effect("defects count as failures", () =>
    Effect.gen(function* () {
      const { breaker, attempt } = yield* setup()
      for (let i = 0; i < 3; i++) assert.strictEqual(yield* attempt("defect"), "defect")
      assert.strictEqual(yield* breaker.state, "Open")
    })
  )

  it.effect("interruptions count as nothing; an interrupted trial leaves it half-open for the next caller", () =>
    Effect.gen(function* () {
      const { breaker, attempt } = yield* setup()
      yield* attempt("down")
      yield* attempt("down")
      for (let i = 0; i < 5; i++) {
        const fiber = yield* Effect.forkChild(breaker.protect(Effect.never))
        yield* Effect.yieldNow
        yield* Fiber.interrupt(fiber)
      }
      assert.strictEqual(yield* breaker.state, "Closed") // neither counted nor reset
      assert.strictEqual(yield* attempt("down"), "Retriable")
      assert.strictEqual(yield* breaker.state, "Open")

      yield* TestClock.adjust("10 seconds")
      const trial = yield* Effect.forkChild(breaker.protect(Effect.never))
      yield* Effect.yieldNow
      assert.strictEqual(yield* attempt("ok"), "CircuitOpen")
      yield* Fiber.interrupt(trial)
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      assert.strictEqual(yield* attempt("ok"), "ok")
      assert.strictEqual(yield* breaker.state, "Closed")
    })
  )

  it.effect("a call let through before the breaker opened changes nothing when it ends later", () =>
    Effect.gen(function* () {
      const { breaker, trip } = yield* setup()
      const slow = yield* Effect.forkChild(breaker.protect(Effect.sleep("1 second")))
      yield* Effect.yieldNow
      yield* trip
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(slow)
      assert.strictEqual(yield* breaker.state, "Open")
    })
  )

  it.effect("isFailure decides which errors count", () =>
    Effect.gen(function* () {
      const { breaker, attempt } = yield* setup({ isFailure: (e) => (e as { _tag?: string })._tag === "Fatal" })
      for (let i = 0; i < 5; i++) yield* attempt("down")
      assert.strictEqual(yield* breaker.state, "Closed")
      for (let i = 0; i < 3; i++) yield* attempt("fatal")
      assert.strictEqual(yield* breaker.state, "Open")
    })
  )

  it.effect("defaults: 5 failures, 30 s", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make()
      const fail = Effect.exit(breaker.protect(Effect.fail(down)))
      for (let i = 0; i < 4; i++) yield* fail
      assert.strictEqual(yield* breaker.state, "Closed")
      yield* fail
      assert.strictEqual(yield* breaker.state, "Open")
      yield* TestClock.adjust(29_999)
      assert.strictEqual(yield* breaker.state, "Open")
      yield* TestClock.adjust(1)
      assert.strictEqual(yield* breaker.state, "HalfOpen")
    })
  )

  it.effect("the state gauge follows the transitions: 0 closed, 2 open, 1 half-open", () =>
    Effect.gen(function* () {
      const { breaker, trip } = yield* setup()
      const gauge = Metric.value(CircuitBreaker.stateGauge).pipe(Effect.map((s) => s.value))
      assert.strictEqual(yield* gauge, 0)
      yield* trip
      assert.strictEqual(yield* gauge, 2)
      yield* TestClock.adjust("10 seconds")
      const trial = yield* Effect.forkChild(breaker.protect(Effect.sleep("1 second")))
      yield* Effect.yieldNow
      assert.strictEqual(yield* gauge, 1)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(trial)
      assert.strictEqual(yield* gauge, 0)
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("layer provides the service", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.CircuitBreaker
      assert.strictEqual(yield* breaker.protect(Effect.succeed(1)), 1)
      assert.strictEqual(yield* breaker.state, "Closed")
    }).pipe(Effect.provide(CircuitBreaker.layer({ failureThreshold: 1 })))
  )
})

describe("CircuitBreaker on a monotonic clock", () => {
  it.effect(
    "issue 18.4: the reset timeout is measured on monotonic time: a wall clock stepped back 2 s does not prolong it",
    () =>
      Effect.gen(function* () {
        const stepping = yield* makeSteppingClock
        yield* Effect.gen(function* () {
          yield* stepping.adjust(100_000)
          const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, resetTimeout: "10 seconds" })
          yield* Effect.exit(breaker.protect(Effect.fail(down)))
          assert.strictEqual(yield* breaker.state, "Open")
          yield* stepping.stepBack(2_000)
          yield* stepping.adjust(9_999)
          assert.strictEqual(yield* breaker.state, "Open")
          yield* stepping.adjust(1)
          assert.strictEqual(yield* breaker.state, "HalfOpen")
        }).pipe(Effect.provideService(Clock.Clock, stepping.clock))
      })
  )
})
