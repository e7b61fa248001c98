import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Exit, Redacted } from "effect"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"

const load = (env: Record<string, string>) =>
  Effect.exit(
    Effect.gen(function* () {
      return yield* KafkaJsProducer.config
    }).pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(env))))
  )

const errorText = (exit: Exit.Exit<unknown, unknown>): string => {
  assert.isTrue(Exit.isFailure(exit), "expected the config to be rejected")
  return Exit.isFailure(exit) ? String(exit.cause.reasons.map((r) => (r._tag === "Fail" ? r.error : r))) : ""
}

describe("KafkaJsProducer.config (environment)", () => {
  it.effect("defaults follow the Java client: acks=all, idempotence, request timeout 30 s", () =>
    Effect.gen(function* () {
      const exit = yield* load({ KAFKA_BROKERS: "127.0.0.1:9092, kafka-2:9093" })
      assert.isTrue(Exit.isSuccess(exit))
      if (!Exit.isSuccess(exit)) return
      const config = exit.value
      assert.deepStrictEqual(config.brokers, ["127.0.0.1:9092", "kafka-2:9093"])
      assert.strictEqual(config.acks, "all")
      assert.strictEqual(config.idempotent, true)
      assert.strictEqual(Duration.toMillis(Duration.fromInputUnsafe(config.requestTimeout!)), 30_000)
      assert.isUndefined(config.sasl)
    })
  )

  it.effect("KAFKA_COMPRESSION accepts every codec, lz4 included; an unknown one is rejected naming it", () =>
    Effect.gen(function* () {
      for (const compression of ["none", "gzip", "snappy", "lz4", "zstd"]) {
        const exit = yield* load({ KAFKA_BROKERS: "b:1", KAFKA_COMPRESSION: compression })
        assert.isTrue(Exit.isSuccess(exit), compression)
        if (Exit.isSuccess(exit)) assert.strictEqual(exit.value.compression, compression)
      }
      assert.include(errorText(yield* load({ KAFKA_BROKERS: "b:1", KAFKA_COMPRESSION: "brotli" })), "KAFKA_COMPRESSION")
    })
  )

  it.effect("SASL settings: the password stays Redacted", () =>
    Effect.gen(function* () {
      const exit = yield* load({
        KAFKA_BROKERS: "b:1",
        KAFKA_SASL_MECHANISM: "scram-sha-512",
        KAFKA_SASL_USERNAME: "svc",
        KAFKA_SASL_PASSWORD: "hunter2"
      })
      assert.isTrue(Exit.isSuccess(exit))
      if (!Exit.isSuccess(exit)) return
      const sasl = exit.value.sasl!
      assert.strictEqual(sasl.mechanism, "scram-sha-512")
      assert.isTrue(Redacted.isRedacted(sasl.password))
      assert.notInclude(String(sasl.password), "hunter2")
      assert.notInclude(JSON.stringify(exit.value), "hunter2")
      assert.strictEqual(Redacted.value(sasl.password), "hunter2")
    })
  )

  const rejected: ReadonlyArray<[string, Record<string, string>, string]> = [
    ["missing brokers", {}, "KAFKA_BROKERS"],
    ["a broker without a port", { KAFKA_BROKERS: "localhost" }, "KAFKA_BROKERS"],
    ["an empty broker list", { KAFKA_BROKERS: " , " }, "KAFKA_BROKERS"],
    ["unknown acks", { KAFKA_BROKERS: "b:1", KAFKA_ACKS: "most" }, "KAFKA_ACKS"],
    [
      "a timeout that is not a duration",
      { KAFKA_BROKERS: "b:1", KAFKA_REQUEST_TIMEOUT: "soon" },
      "KAFKA_REQUEST_TIMEOUT"
    ],
    ["a boolean that is not one", { KAFKA_BROKERS: "b:1", KAFKA_IDEMPOTENT: "maybe" }, "KAFKA_IDEMPOTENT"],
    [
      "an unknown SASL mechanism",
      { KAFKA_BROKERS: "b:1", KAFKA_SASL_MECHANISM: "gssapi", KAFKA_SASL_USERNAME: "u", KAFKA_SASL_PASSWORD: "p" },
      "KAFKA_SASL_MECHANISM"
    ]
  ]
  for (const [what, env, variable] of rejected) {
    it.effect(`${what} fails at startup naming ${variable}`, () =>
      Effect.gen(function* () {
        assert.include(errorText(yield* load(env)), variable)
      })
    )
  }

  it.effect("a malformed password never appears in the error", () =>
    Effect.gen(function* () {
      const text = errorText(
        yield* load({
          KAFKA_BROKERS: "nope",
          KAFKA_SASL_MECHANISM: "plain",
          KAFKA_SASL_USERNAME: "u",
          KAFKA_SASL_PASSWORD: "s3cr3t-value"
        })
      )
      assert.notInclude(text, "s3cr3t-value")
    })
  )
})
