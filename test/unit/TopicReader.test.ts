// TopicReader loads kafkajs only when a read starts: without kafkajs installed, importing
// effect-kafka-publisher/testing works and a read fails with a typed ReadFailed that says what to install.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TopicReader } from "effect-kafka-publisher/testing"
import { freePort } from "../support/freePort.ts"
import { runWithout } from "../support/runWithout.ts"

const withoutKafkaJs = `
import { Effect } from "effect"
import { FakeKafka, TopicReader } from "effect-kafka-publisher/testing"
const error = await Effect.runPromise(Effect.flip(TopicReader.readAll({ brokers: ["127.0.0.1:9"], topic: "t" })))
console.log(JSON.stringify({ fake: typeof FakeKafka.layer, tag: error._tag, reason: error.reason, message: error.message }))
`

describe("TopicReader", { timeout: 30_000 }, () => {
  it("without kafkajs installed: the import works, a read fails with ReadFailed naming the package", async () => {
    const { stdout } = runWithout(["kafkajs"], withoutKafkaJs)
    assert.deepStrictEqual(JSON.parse(stdout), {
      fake: "function",
      tag: "ReadFailed",
      reason: "ClientMissing",
      message: "TopicReader needs the kafkajs package: npm install kafkajs"
    })
  })

  it.live("checkConnection: a refused connection fails at once, Unreachable, naming the broker", () =>
    Effect.gen(function* () {
      const broker = `127.0.0.1:${yield* Effect.promise(freePort)}`
      const started = Date.now()
      const error = yield* Effect.flip(TopicReader.checkConnection({ brokers: [broker] }))
      assert.strictEqual(error.reason, "Unreachable")
      assert.include(error.message, `cannot connect to ${broker}`)
      assert.include(error.message, "ECONNREFUSED")
      assert.isBelow(Date.now() - started, 5_000, "no client retries (they wait over 7 s)")
    })
  )
})
