import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import type { State } from "../../src/CircuitBreaker.ts"
import * as Health from "../../src/Health.ts"

const recordMany = (health: Health.Health, outcome: Health.Outcome, n: number) =>
  Effect.forEach(Array.from({ length: n }), () => health.record(outcome), { discard: true })

describe("Health", () => {
  it.effect("healthy with no traffic", () =>
    Effect.gen(function* () {
      const report = yield* (yield* Health.make()).check
      assert.strictEqual(report.status, "healthy")
      assert.deepStrictEqual(report.reasons, [])
      assert.strictEqual(report.window.errorRate, 0)
      assert.strictEqual(Health.httpStatus(report), 200)
    })
  )

  it.effect("degraded over 10 % errors, unhealthy over 50 %", () =>
    Effect.gen(function* () {
      const health = yield* Health.make()
      yield* recordMany(health, "delivered", 85)
      yield* recordMany(health, "failed", 15)
      const degraded = yield* health.check
      assert.strictEqual(degraded.status, "degraded")
      assert.match(degraded.reasons[0]!, /error rate: 15\.0 % of 100 publishes failed/)
      assert.strictEqual(Health.httpStatus(degraded), 200)
      yield* recordMany(health, "failed", 100)
      const unhealthy = yield* health.check
      assert.strictEqual(unhealthy.status, "unhealthy")
      assert.strictEqual(Health.httpStatus(unhealthy), 503)
    })
  )

  it.effect("error rates count only from minSamples on", () =>
    Effect.gen(function* () {
      const health = yield* Health.make({ minSamples: 10 })
      yield* recordMany(health, "failed", 9)
      assert.strictEqual((yield* health.check).status, "healthy")
      yield* health.record("failed")
      assert.strictEqual((yield* health.check).status, "unhealthy")
    })
  )

  it.effect("old outcomes leave the window after 60 s", () =>
    Effect.gen(function* () {
      const health = yield* Health.make()
      yield* recordMany(health, "failed", 50)
      yield* TestClock.adjust("30 seconds")
      yield* recordMany(health, "delivered", 50)
      assert.strictEqual((yield* health.check).window.total, 100)
      yield* TestClock.adjust("31 seconds")
      const report = yield* health.check
      assert.strictEqual(report.window.total, 50)
      assert.strictEqual(report.window.failed, 0)
      assert.strictEqual(report.status, "healthy")
    })
  )

  it.effect("a recent dead-letter degrades, with a reason", () =>
    Effect.gen(function* () {
      const health = yield* Health.make()
      yield* recordMany(health, "delivered", 100)
      yield* health.record("deadLettered")
      const report = yield* health.check
      assert.strictEqual(report.status, "degraded")
      assert.include(report.reasons.join(), "dead-lettered")
    })
  )

  it.effect("breaker open: unhealthy; half-open: degraded", () =>
    Effect.gen(function* () {
      let state: State = "Open"
      const health = yield* Health.make({ breakerState: Effect.sync(() => state) })
      const open = yield* health.check
      assert.strictEqual(open.status, "unhealthy")
      assert.strictEqual(open.breaker, "Open")
      assert.include(open.reasons.join(), "circuit breaker open")
      state = "HalfOpen"
      assert.strictEqual((yield* health.check).status, "degraded")
      state = "Closed"
      assert.strictEqual((yield* health.check).status, "healthy")
    })
  )
})
