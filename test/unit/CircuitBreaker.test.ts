import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Metric, Ref } from "effect"
import { TestClock } from "effect/testing"
import * as CircuitBreaker from "../../src/CircuitBreaker.ts"
import { Fatal, Retriable } from "../../src/PublishError.ts"

const down = new Retriable({ reason: "BrokerUnavailable", ambiguous: false, message: "down" })
const tooLarge = new Fatal({ reason: "RecordTooLarge", message: "too large" })

/** A breaker and a protected call whose outcome the test sets, counting how often it really runs. */
const setup = (options: CircuitBreaker.Options = {}) =>
  Effect.gen(function* () {
    const breaker = yield* CircuitBreaker.make({ failureThreshold: 3, resetTimeout: "10 seconds", ...options })
    const runs = yield* Ref.make(0)
    const result = (outcome: "ok" | "down" | "fatal" | "defect"): Effect.Effect<string, Retriable | Fatal> =>
      outcome === "ok"
        ? Effect.succeed("ok")
        : outcome === "down"
          ? Effect.fail(down)
          : outcome === "fatal"
            ? Effect.fail(tooLarge)
            : Effect.die("bug")
    const call = (outcome: "ok" | "down" | "fatal" | "defect") =>
      breaker.protect(Ref.update(runs, (n) => n + 1).pipe(Effect.andThen(result(outcome))))
    const tagOf = (exit: Exit.Exit<unknown, unknown>) =>
      Exit.isSuccess(exit)
        ? "ok"
        : ((exit.cause.reasons.find((r) => r._tag === "Fail")?.error as { _tag?: string } | undefined)?._tag ??
          "defect")
    const attempt = (outcome: "ok" | "down" | "fatal" | "defect") => Effect.exit(call(outcome)).pipe(Effect.map(tagOf))
    return { breaker, runs, call, attempt }
  })

describe("CircuitBreaker", () => {
  it.effect("stays closed below the threshold; a success resets the count", () =>
    Effect.gen(function* () {
      const { breaker, attempt } = yield* setup()
      yield* attempt("down")
      yield* attempt("down")
      assert.strictEqual(yield* breaker.state, "Closed")
      yield* attempt("ok")
      yield* attempt("down")
      yield* attempt("down")
      assert.strictEqual(yield* breaker.state, "Closed")
    })
  )

  it.effect("opens after N consecutive failures and then fails fast without running the call", () =>
    Effect.gen(function* () {
      const { breaker, attempt, runs } = yield* setup()
      for (let i = 0; i < 3; i++) yield* attempt("down")
      assert.strictEqual(yield* breaker.state, "Open")
      assert.strictEqual(yield* attempt("ok"), "CircuitOpen")
      assert.strictEqual(yield* Ref.get(runs), 3)
      const exit = yield* Effect.exit((yield* setup()).breaker.protect(Effect.void))
      assert.isTrue(Exit.isSuccess(exit)) // another breaker is independent
    })
  )

  it.effect("CircuitOpen says when the next trial comes", () =>
    Effect.gen(function* () {
      const { call, attempt } = yield* setup()
      for (let i = 0; i < 3; i++) yield* attempt("down")
      yield* TestClock.adjust("4 seconds")
      const exit = yield* Effect.exit(call("ok"))
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit)
        ? (exit.cause.reasons[0] as { error: CircuitBreaker.CircuitOpen }).error
        : undefined
      assert.strictEqual(error?.retryAfterMs, 6000)
    })
  )

  it.effect("half-open exactly after the reset timeout, not a millisecond earlier", () =>
    Effect.gen(function* () {
      const { breaker, attempt, runs } = yield* setup()
      for (let i = 0; i < 3; i++) yield* attempt("down")
      yield* TestClock.adjust(9_999)
      assert.strictEqual(yield* attempt("ok"), "CircuitOpen")
      assert.strictEqual(yield* Ref.get(runs), 3)
      yield* TestClock.adjust(1)
      assert.strictEqual(yield* attempt("ok"), "ok")
      assert.strictEqual(yield* Ref.get(runs), 4)
      assert.strictEqual(yield* breaker.state, "Closed")
    })
  )

  it.effect("half-open lets one trial through at a time; the others fail fast", () =>
    Effect.gen(function* () {
      const { breaker, attempt, runs } = yield* setup()
      for (let i = 0; i < 3; i++) yield* attempt("down")
      yield* TestClock.adjust("10 seconds")
      const trial = yield* Effect.forkChild(breaker.protect(Effect.sleep("1 second")))
      yield* Effect.yieldNow
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      assert.strictEqual(yield* attempt("ok"), "CircuitOpen")
      assert.strictEqual(yield* Ref.get(runs), 3)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(trial)
      assert.strictEqual(yield* breaker.state, "Closed")
    })
  )

  it.effect("a failed trial opens it again and restarts the timer", () =>
    Effect.gen(function* () {
      const { breaker, attempt } = yield* setup()
      for (let i = 0; i < 3; i++) yield* attempt("down")
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* attempt("down"), "Retriable")
      assert.strictEqual(yield* breaker.state, "Open")
      yield* TestClock.adjust(9_999)
      assert.strictEqual(yield* attempt("ok"), "CircuitOpen")
      yield* TestClock.adjust(1)
      assert.strictEqual(yield* attempt("ok"), "ok")
      assert.strictEqual(yield* breaker.state, "Closed")
    })
  )

  it.effect("Fatal errors do not trip it (the broker answered); defects do", () =>
    Effect.gen(function* () {
      const { breaker, attempt } = yield* setup()
      for (let i = 0; i < 10; i++) yield* attempt("fatal")
      assert.strictEqual(yield* breaker.state, "Closed")
      yield* attempt("down")
      yield* attempt("down")
      yield* attempt("fatal") // resets the count
      yield* attempt("down")
      assert.strictEqual(yield* breaker.state, "Closed")
      for (let i = 0; i < 3; i++) yield* attempt("defect")
      assert.strictEqual(yield* breaker.state, "Open")
    })
  )

  it.effect("an interrupted trial leaves it half-open for the next caller", () =>
    Effect.gen(function* () {
      const { breaker, attempt } = yield* setup()
      for (let i = 0; i < 3; i++) yield* attempt("down")
      yield* TestClock.adjust("10 seconds")
      const trial = yield* Effect.forkChild(breaker.protect(Effect.never))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(trial)
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      assert.strictEqual(yield* attempt("ok"), "ok")
      assert.strictEqual(yield* breaker.state, "Closed")
    })
  )

  it.effect("the state gauge follows the transitions: 0 closed, 2 open, 1 half-open", () =>
    Effect.gen(function* () {
      const { breaker, attempt } = yield* setup()
      const gauge = () => Metric.value(CircuitBreaker.stateGauge).pipe(Effect.map((s) => s.value))
      assert.strictEqual(yield* gauge(), 0)
      for (let i = 0; i < 3; i++) yield* attempt("down")
      assert.strictEqual(yield* gauge(), 2)
      yield* TestClock.adjust("10 seconds")
      const trial = yield* Effect.forkChild(breaker.protect(Effect.sleep("1 second")))
      yield* Effect.yieldNow
      assert.strictEqual(yield* gauge(), 1)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(trial)
      assert.strictEqual(yield* gauge(), 0)
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )
})
