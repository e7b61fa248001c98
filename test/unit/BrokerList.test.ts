// KAFKA_BROKERS is parsed once, for the library and the CLI: a bad list fails at startup with one line that
// names the bad entry, an empty one says what to set.
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit } from "effect"
import * as ProducerConfig from "../../src/ProducerConfig.ts"

const load = (env: Record<string, string>) =>
  ProducerConfig.config.parse(ConfigProvider.fromEnv({ env })).pipe(
    Effect.map((config) => config.brokers),
    Effect.exit
  )

const failure = (exit: Exit.Exit<unknown, { readonly message: string }>): string => {
  assert.isTrue(Exit.isFailure(exit))
  return Exit.isFailure(exit) ? String(exit.cause.reasons.map((r) => (r._tag === "Fail" ? r.error.message : ""))) : ""
}

describe("ProducerConfig broker list", () => {
  it.effect("splits and trims host:port entries; a trailing comma is harmless", () =>
    Effect.gen(function* () {
      const exit = yield* load({ KAFKA_BROKERS: " kafka-1:9092, 10.0.0.2:9093 ," })
      assert.deepStrictEqual(exit, Exit.succeed(["kafka-1:9092", "10.0.0.2:9093"]))
    })
  )

  for (const [list, bad] of [
    ["not-a-host", "not-a-host"],
    ["kafka-1:9092,kafka-2", "kafka-2"],
    ["kafka:0", "kafka:0"],
    ["kafka:65536", "kafka:65536"],
    ["kafka 1:9092", "kafka 1:9092"]
  ] as const) {
    it.effect(`'${list}' fails naming the bad entry and the variable`, () =>
      Effect.gen(function* () {
        const message = failure(yield* load({ KAFKA_BROKERS: list }))
        assert.include(message, `'${bad}' is not host:port`)
        assert.include(message, "KAFKA_BROKERS")
      })
    )
  }

  for (const [what, env] of [
    ["empty", { KAFKA_BROKERS: "" }],
    ["blank", { KAFKA_BROKERS: " , " }],
    ["unset", {}]
  ] as const) {
    it.effect(`an ${what} list says it is empty and what to set`, () =>
      Effect.gen(function* () {
        const message = failure(yield* load(env))
        assert.include(message, "empty or not set; set it to host:port")
        assert.include(message, "KAFKA_BROKERS")
      })
    )
  }

  it.effect("parseBrokers parses a --brokers value the same way", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* ProducerConfig.parseBrokers("a:1,b:2"), ["a:1", "b:2"])
      const error = yield* Effect.flip(ProducerConfig.parseBrokers("a:1,b"))
      assert.strictEqual(error.message, "'b' is not host:port")
    })
  )
})
