import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Redacted } from "effect"
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"
import * as ProducerConfig from "../../src/ProducerConfig.ts"

describe("PlatformaticProducer.clientOptions", () => {
  it("defaults follow the Java client: acks=all, idempotence, request timeout 30 s", () => {
    const options = PlatformaticProducer.clientOptions({ brokers: ["127.0.0.1:9092"] })
    expect(options).toMatchObject({
      bootstrapBrokers: ["127.0.0.1:9092"],
      clientId: "effect-kafka-publisher",
      idempotent: true,
      acks: -1,
      timeout: 30_000,
      requestTimeout: 30_000,
      connectTimeout: 3_000,
      retries: 5,
      autocreateTopics: true,
      compression: "none"
    })
    expect(options).not.toHaveProperty("sasl")
    expect(options).not.toHaveProperty("tls")
  })

  it("the SASL password is handed over as a function: no options object holds it", () => {
    const options = PlatformaticProducer.clientOptions({
      brokers: ["b:1"],
      sasl: { mechanism: "scram-sha-512", username: "svc", password: Redacted.make("hunter2") }
    })
    expect(options.sasl?.mechanism).toBe("SCRAM-SHA-512")
    expect(JSON.stringify(options)).not.toContain("hunter2")
    expect(options.sasl?.password()).toBe("hunter2")
  })

  it("the client's retry delay is exponential, jittered by 20 %, capped at maxRetryTime", () => {
    const { retryDelay } = PlatformaticProducer.clientOptions({
      brokers: ["b:1"],
      retry: { initialRetryTime: "100 millis", maxRetryTime: "1 second" }
    })
    const delays = [1, 2, 3, 4, 5, 6].map((attempt) => retryDelay(undefined, "produce", attempt))
    const expected = [100, 200, 400, 800, 1000, 1000]
    delays.forEach((delay, i) => {
      expect(delay).toBeGreaterThanOrEqual(expected[i]! * 0.8)
      expect(delay).toBeLessThanOrEqual(Math.min(expected[i]! * 1.2, 1000))
    })
  })

  it("acks and TLS map to the client's values", () => {
    expect(PlatformaticProducer.clientOptions({ brokers: ["b:1"], idempotent: false, acks: "leader" }).acks).toBe(1)
    expect(PlatformaticProducer.clientOptions({ brokers: ["b:1"], idempotent: false, acks: "none" }).acks).toBe(0)
    expect(PlatformaticProducer.clientOptions({ brokers: ["b:1"], ssl: true }).tls).toEqual({})
  })
})

describe("PlatformaticProducer.make", () => {
  it.effect("idempotence with acks other than all fails with a typed Fatal InvalidConfig, before any connection", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(PlatformaticProducer.make({ brokers: ["127.0.0.1:1"], acks: "none" }))
      expect(Exit.isFailure(exit)).toBe(true)
      const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail")?.error : undefined
      expect(error).toMatchObject({ _tag: "Fatal", reason: "InvalidConfig" })
      expect(error?.message).toContain("acks=all")
    }).pipe(Effect.scoped)
  )
})

describe("maxInFlightRequests (KAFKA_MAX_IN_FLIGHT_REQUESTS)", () => {
  const load = (env: Record<string, string>) =>
    Effect.exit(
      Effect.gen(function* () {
        return yield* PlatformaticProducer.config
      }).pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ KAFKA_BROKERS: "b:1", ...env }))))
    )

  it.effect("default 5 (Java: max.in.flight.requests.per.connection); read from the environment", () =>
    Effect.gen(function* () {
      const defaulted = yield* load({})
      expect(Exit.isSuccess(defaulted) && defaulted.value.maxInFlightRequests).toBe(5)
      const three = yield* load({ KAFKA_MAX_IN_FLIGHT_REQUESTS: "3" })
      expect(Exit.isSuccess(three) && three.value.maxInFlightRequests).toBe(3)
      const bad = yield* load({ KAFKA_MAX_IN_FLIGHT_REQUESTS: "many" })
      expect(Exit.isFailure(bad)).toBe(true)
      expect(
        Exit.isFailure(bad) ? String(bad.cause.reasons.map((r) => (r._tag === "Fail" ? r.error : r))) : ""
      ).toContain("KAFKA_MAX_IN_FLIGHT_REQUESTS")
    })
  )

  it.effect("checked: 1 to 5 with idempotence, any whole number from 1 without", () =>
    Effect.gen(function* () {
      const check = (config: Partial<ProducerConfig.ProducerConfig>) =>
        Effect.exit(ProducerConfig.maxInFlightOf({ brokers: ["b:1"], ...config }))
      for (const maxInFlightRequests of [1, 5]) expect(Exit.isSuccess(yield* check({ maxInFlightRequests }))).toBe(true)
      for (const maxInFlightRequests of [0, 6, 1.5, Number.NaN]) {
        const exit = yield* check({ maxInFlightRequests })
        expect(Exit.isFailure(exit)).toBe(true)
      }
      expect(Exit.isSuccess(yield* check({ maxInFlightRequests: 50, idempotent: false, acks: "leader" }))).toBe(true)
    })
  )

  it.effect("a bad value fails the layer with a typed Fatal InvalidConfig, before any connection", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(PlatformaticProducer.make({ brokers: ["127.0.0.1:1"], maxInFlightRequests: 6 }))
      const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail")?.error : undefined
      expect(error).toMatchObject({ _tag: "Fatal", reason: "InvalidConfig" })
      expect(error?.message).toContain("KAFKA_MAX_IN_FLIGHT_REQUESTS")
    }).pipe(Effect.scoped)
  )
})
