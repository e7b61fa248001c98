// SASL/SCRAM against a real broker with an authorizer: the right password publishes, a wrong one fails fast with a
// Fatal AuthenticationFailed (no retry storm, no password in the error or the logs), a user without ACLs gets a
// Fatal authorization error.
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Logger, Redacted, Schema } from "effect"
import { Publisher, Topic } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"
import type { SaslMechanism } from "../../src/ProducerConfig.ts"
import { describeWithKafka } from "./broker.ts"
import { ownCluster, scramUsers } from "./ownCluster.ts"
import { createTopic, type DriverLayer } from "./realHarness.ts"

const wrongPassword = "wrong-Pa55word-that-must-not-leak"

const drivers: ReadonlyArray<[string, DriverLayer]> = [
  ["kafkajs", KafkaJsProducer.layer],
  ["@platformatic/kafka", PlatformaticProducer.layer]
]

describeWithKafka("SASL/SCRAM", () => {
  const cluster = ownCluster({ sasl: scramUsers })

  describe.each(drivers)("%s driver", (_, driver) => {
    const publisherFor = (username: string, password: string, mechanism: SaslMechanism) =>
      Publisher.layer().pipe(
        Layer.provide(
          driver({
            brokers: cluster().saslBrokers!,
            sasl: { mechanism, username, password: Redacted.make(password) }
          })
        )
      )
    const events = (name: string) => Topic.make({ name, schema: Schema.String })

    it.live("the right password publishes (SCRAM-SHA-512 and SCRAM-SHA-256)", () =>
      Effect.gen(function* () {
        const name = `sasl-ok-${Date.now()}`
        yield* createTopic(cluster().brokers, name, { partitions: 1 })
        for (const mechanism of ["scram-sha-512", "scram-sha-256"] as const) {
          const receipt = yield* Publisher.Publisher.use((p) => p.publish(events(name), `hello ${mechanism}`)).pipe(
            Effect.provide(publisherFor("admin", "admin-secret", mechanism))
          )
          assert.strictEqual(receipt._tag, "Delivered")
        }
      })
    )

    it.live("a wrong password fails fast with Fatal AuthenticationFailed and never shows the password", () =>
      Effect.gen(function* () {
        const logs: Array<string> = []
        const capture = Logger.make((options) => {
          logs.push(JSON.stringify(options.message))
        })
        const started = Date.now()
        const exit = yield* Publisher.Publisher.use((p) => p.publish(events("anything"), "x")).pipe(
          Effect.provide(publisherFor("admin", wrongPassword, "scram-sha-256")),
          Effect.provide(Logger.layer([capture])),
          Effect.exit
        )
        const elapsed = Date.now() - started
        assert.isTrue(Exit.isFailure(exit))
        if (!Exit.isFailure(exit)) return
        const error = Cause.findErrorOption(exit.cause)
        assert.isTrue(error._tag === "Some")
        if (error._tag !== "Some") return
        const failure = error.value as { _tag: string; reason: string; message: string }
        assert.strictEqual(failure._tag, "Fatal")
        assert.strictEqual(failure.reason, "AuthenticationFailed")
        assert.isBelow(elapsed, 5_000, "fails fast: no retry storm")
        const everything = `${Cause.pretty(exit.cause)}\n${failure.message}\n${logs.join("\n")}`
        assert.notInclude(everything, wrongPassword)
        console.log(`wrong password: ${failure._tag}.${failure.reason} after ${elapsed} ms: ${failure.message}`)
      })
    )
  })
})
