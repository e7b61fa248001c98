/**
 * An app that installs only `effect` and `kafkajs` (no kafkajs-snappy, no @platformatic/kafka) imports
 * "effect-kafka-publisher/kafkajs"; asking for snappy then fails the layer with a typed Fatal InvalidConfig
 * naming the package. Run in a child process whose resolve hook hides those packages.
 */

import { describe, expect, it } from "@effect/vitest"
import { runWithout } from "../../support/runWithout.ts"

const script = `
import { Effect, Exit } from "effect"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
const exit = await Effect.runPromiseExit(
  Effect.scoped(KafkaJsProducer.make({ brokers: ["127.0.0.1:1"], compression: "snappy" }))
)
const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail")?.error : undefined
console.log(JSON.stringify({ tag: error?._tag, reason: error?.reason, message: error?.message }))
`

describe("kafkajs driver without the optional packages", () => {
  it("imports without kafkajs-snappy and @platformatic/kafka; snappy is a typed Fatal InvalidConfig", () => {
    const result = runWithout(["kafkajs-snappy", "@platformatic/kafka"], script)
    expect(result.stderr).not.toMatch(/Cannot find package/)
    const answer = JSON.parse(result.stdout.trim().split("\n").at(-1)!)
    expect(answer).toMatchObject({ tag: "Fatal", reason: "InvalidConfig" })
    expect(answer.message).toContain("kafkajs-snappy")
  })
})
