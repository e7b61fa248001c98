// Issue 7's bad-input catalogue, the cases that need a real broker (the others run on FakeKafka and in unit
// tests: schema-invalid event, key function that throws, header value that is not bytes, malformed config,
// oversize record, invalid topic name, unknown topic with auto-create off, wrong SASL password).
import { assert, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Redacted, Schema } from "effect"
import { Publisher, Topic } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { describeWithKafka } from "./broker.ts"
import { ownCluster, scramUsers } from "./ownCluster.ts"
import { createTopic } from "./realHarness.ts"

const typedFailure = (exit: Exit.Exit<unknown, unknown>) => {
  assert.isTrue(Exit.isFailure(exit), "expected a failure")
  const error = Exit.isFailure(exit) ? Cause.findErrorOption(exit.cause) : undefined
  assert.isTrue(error?._tag === "Some", "expected a typed error, not a defect")
  return (error as { value: { _tag: string; reason?: string; message: string } }).value
}

describeWithKafka("bad input on a real broker", () => {
  const cluster = ownCluster({ sasl: scramUsers })

  it.live("an unauthorised topic: a Fatal authorization error, fast, not retried", () =>
    Effect.gen(function* () {
      const name = `acl-protected-${Date.now()}`
      yield* createTopic(cluster().brokers, name, { partitions: 1 })
      const started = Date.now()
      const exit = yield* Publisher.Publisher.use((p) =>
        p.publish(Topic.make({ name, schema: Schema.String }), "x")
      ).pipe(
        Effect.provide(
          Publisher.layer({ deadLetter: false }).pipe(
            Layer.provide(
              KafkaJsProducer.layer({
                brokers: cluster().saslBrokers!,
                sasl: { mechanism: "scram-sha-256", username: "alice", password: Redacted.make("alice-secret") }
              })
            )
          )
        ),
        Effect.exit
      )
      const elapsed = Date.now() - started
      const error = typedFailure(exit)
      console.log(`unauthorised topic: ${error._tag}.${error.reason} after ${elapsed} ms: ${error.message}`)
      assert.strictEqual(error._tag, "Fatal")
      assert.include(["TopicAuthorizationFailed", "ClusterAuthorizationFailed"], error.reason)
      assert.isBelow(elapsed, 5_000, "no retry storm")
      assert.notInclude(Cause.pretty((exit as Exit.Failure<unknown, unknown>).cause), "alice-secret")
    })
  )

  it.live("an unreachable broker address: the layer fails with a Retriable BrokerUnavailable, bounded in time", () =>
    Effect.gen(function* () {
      const started = Date.now()
      const exit = yield* Effect.exit(
        Effect.scoped(Layer.build(KafkaJsProducer.layer({ brokers: ["127.0.0.1:1"], connectionTimeout: "500 millis" })))
      )
      const elapsed = Date.now() - started
      const error = typedFailure(exit)
      console.log(`unreachable broker: ${error._tag}.${error.reason} after ${elapsed} ms`)
      assert.strictEqual(error._tag, "Retriable")
      assert.strictEqual(error.reason, "BrokerUnavailable")
      assert.isBelow(elapsed, 30_000)
    })
  )
})
