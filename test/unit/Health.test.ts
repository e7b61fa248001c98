import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { CircuitBreaker, Health } from "effect-kafka-publisher"
import { Retriable } from "../../src/PublishError.ts"
import { makeSteppingClock } from "../support/steppingClock.ts"

const recordMany = (health: Health.Health, outcome: Health.Outcome, n: number) =>
  Effect.forEach(Array.from({ length: n }), () => health.record(outcome), { discard: true })

describe("Health", () => {
  it.effect("healthy with no traffic", () =>
    Effect.gen(function* () {
      const report = yield* (yield* Health.make()).check
      assert.deepStrictEqual(report, {
        status: "healthy",
        reasons: [],
        errorRate: 0,
        window: { total: 0, failures: 0, deadLettered: 0 }
      })
      assert.strictEqual(Health.httpStatus(report), 200)
    })
  )

  it.effect("degraded above 10 % errors, not at 10 %", () =>
    Effect.gen(function* () {
      const health = yield* Health.make()
      yield* recordMany(health, "success", 90)
      yield* recordMany(health, "failure", 10)
      const atLimit = yield* health.check
      assert.strictEqual(atLimit.errorRate, 0.1)
      assert.strictEqual(atLimit.status, "healthy")
      yield* health.record("failure")
      const degraded = yield* health.check
      assert.strictEqual(degraded.status, "degraded")
      assert.deepStrictEqual(degraded.window, { total: 101, failures: 11, deadLettered: 0 })
      assert.deepStrictEqual(degraded.reasons, [
        "error rate 10.9 % in the last 1m (11 of 101 publishes failed), above 10 %"
      ])
      assert.strictEqual(Health.httpStatus(degraded), 200)
    })
  )

  it.effect("unhealthy above 50 % errors, not at 50 %", () =>
    Effect.gen(function* () {
      const health = yield* Health.make()
      yield* recordMany(health, "success", 10)
      yield* recordMany(health, "failure", 10)
      assert.strictEqual((yield* health.check).status, "degraded") // 50 %: not above
      yield* health.record("failure")
      const report = yield* health.check
      assert.strictEqual(report.status, "unhealthy")
      assert.strictEqual(report.reasons.length, 1)
      assert.match(report.reasons[0]!, /^error rate 52\.4 % .* above 50 %$/)
      assert.strictEqual(Health.httpStatus(report), 503)
    })
  )

  it.effect("error rates judge nothing below the minimum sample size", () =>
    Effect.gen(function* () {
      const health = yield* Health.make()
      yield* recordMany(health, "failure", 9)
      const few = yield* health.check
      assert.strictEqual(few.errorRate, 1) // reported...
      assert.strictEqual(few.status, "healthy") // ...but not judged
      yield* health.record("failure")
      assert.strictEqual((yield* health.check).status, "unhealthy")
    })
  )

  it.effect("old outcomes age out of the 60 s window", () =>
    Effect.gen(function* () {
      const health = yield* Health.make()
      yield* recordMany(health, "failure", 50)
      yield* TestClock.adjust("30 seconds")
      yield* recordMany(health, "success", 40)
      assert.strictEqual((yield* health.check).status, "unhealthy")
      yield* TestClock.adjust(29_999)
      assert.deepStrictEqual((yield* health.check).window, { total: 90, failures: 50, deadLettered: 0 })
      yield* TestClock.adjust(1) // 60 s after the failures
      const report = yield* health.check
      assert.deepStrictEqual(report.window, { total: 40, failures: 0, deadLettered: 0 })
      assert.strictEqual(report.status, "healthy")
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual((yield* health.check).window.total, 0)
    })
  )

  it.effect("memory is fixed: a slot reused after a full window starts from zero", () =>
    Effect.gen(function* () {
      const health = yield* Health.make()
      yield* recordMany(health, "failure", 20)
      yield* TestClock.adjust("60 seconds") // same slot of the ring, a new bucket
      yield* recordMany(health, "success", 20)
      assert.deepStrictEqual((yield* health.check).window, { total: 20, failures: 0, deadLettered: 0 })
    })
  )

  it.effect("any dead-letter in the window degrades, with a reason; it is not a failure", () =>
    Effect.gen(function* () {
      const health = yield* Health.make()
      yield* recordMany(health, "success", 100)
      yield* health.record("deadLettered")
      const report = yield* health.check
      assert.strictEqual(report.status, "degraded")
      assert.strictEqual(report.errorRate, 0)
      assert.deepStrictEqual(report.reasons, ["1 of 101 publishes dead-lettered in the last 1m"])
      yield* TestClock.adjust("60 seconds")
      assert.strictEqual((yield* health.check).status, "healthy")
    })
  )

  it.effect("breaker open: unhealthy; half-open: degraded; closed: healthy", () =>
    Effect.gen(function* () {
      let state: CircuitBreaker.State = "Open"
      const health = yield* Health.make({ breakerState: Effect.sync(() => state) })
      const open = yield* health.check
      assert.strictEqual(open.status, "unhealthy")
      assert.strictEqual(open.breaker, "Open")
      assert.deepStrictEqual(open.reasons, ["circuit breaker open: publishes fail fast"])
      assert.strictEqual(Health.httpStatus(open), 503)
      state = "HalfOpen"
      const halfOpen = yield* health.check
      assert.strictEqual(halfOpen.status, "degraded")
      assert.deepStrictEqual(halfOpen.reasons, ["circuit breaker half-open: trying the broker again"])
      state = "Closed"
      assert.deepStrictEqual(yield* health.check, {
        status: "healthy",
        reasons: [],
        errorRate: 0,
        window: { total: 0, failures: 0, deadLettered: 0 },
        breaker: "Closed"
      })
    })
  )

  it.effect("the worst rule wins and every reason is listed", () =>
    Effect.gen(function* () {
      const health = yield* Health.make({ breakerState: Effect.succeed("HalfOpen") })
      yield* recordMany(health, "success", 8)
      yield* recordMany(health, "failure", 2)
      yield* health.record("deadLettered")
      const report = yield* health.check
      assert.strictEqual(report.status, "degraded")
      assert.strictEqual(report.reasons.length, 3)
      yield* recordMany(health, "failure", 20)
      assert.strictEqual((yield* health.check).status, "unhealthy")
    })
  )

  it.effect("thresholds, window and sample size are configurable", () =>
    Effect.gen(function* () {
      const health = yield* Health.make({
        window: "10 seconds",
        minSamples: 2,
        degradedErrorRate: 0.2,
        unhealthyErrorRate: 0.9
      })
      yield* health.record("success")
      yield* health.record("failure")
      const report = yield* health.check
      assert.strictEqual(report.status, "degraded")
      assert.match(report.reasons[0]!, /in the last 10s/)
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual((yield* health.check).window.total, 0)
    })
  )

  it.effect("layer reads the CircuitBreaker service when one is provided", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.CircuitBreaker
      const health = yield* Health.Health
      assert.strictEqual((yield* health.check).breaker, "Closed")
      yield* Effect.exit(
        breaker.protect(Effect.fail(new Retriable({ reason: "BrokerUnavailable", ambiguous: false, message: "down" })))
      )
      assert.strictEqual((yield* health.check).status, "unhealthy")
      yield* TestClock.adjust("30 seconds") // no traffic: the breaker is half-open, the instance serves again
      const report = yield* health.check
      assert.strictEqual(report.breaker, "HalfOpen")
      assert.strictEqual(Health.httpStatus(report), 200)
    }).pipe(Effect.provide(Health.layer().pipe(Layer.provideMerge(CircuitBreaker.layer({ failureThreshold: 1 })))))
  )

  it.effect("layer without a breaker reports none", () =>
    Effect.gen(function* () {
      const report = yield* (yield* Health.Health).check
      assert.isFalse("breaker" in report)
    }).pipe(Effect.provide(Health.layer()))
  )
})

describe("Health on a monotonic clock", () => {
  it.effect("issue 18.4: the window is kept on monotonic time: a wall clock stepped back 2 s hides no outcome", () =>
    Effect.gen(function* () {
      const stepping = yield* makeSteppingClock
      yield* Effect.gen(function* () {
        yield* stepping.adjust(100_000)
        const health = yield* Health.make()
        yield* recordMany(health, "failure", 10)
        yield* stepping.stepBack(2_000)
        const report = yield* health.check
        assert.deepStrictEqual(report.window, { total: 10, failures: 10, deadLettered: 0 })
        assert.strictEqual(report.status, "unhealthy")
        yield* stepping.adjust(60_000) // aged out a window later, as without the step
        assert.deepStrictEqual((yield* health.check).window, { total: 0, failures: 0, deadLettered: 0 })
      }).pipe(Effect.provideService(Clock.Clock, stepping.clock))
    })
  )
})
