// What the transactional drivers make of a failed send (src/internal/transactionalSends.ts), read with each
// client's vocabulary from the errors the clients really raise.
import { assert, describe, it } from "@effect/vitest"
import { ProtocolError, ResponseError } from "@platformatic/kafka"
import kafkajs from "kafkajs"
import { failedSend } from "../../../src/internal/transactionalSends.ts"
import * as KafkaJsErrors from "../../../src/kafkajs/KafkaJsErrors.ts"
import * as PlatformaticErrors from "../../../src/platformatic/PlatformaticErrors.ts"

const context = { autoCreateTopics: false, topic: "orders", requestSent: true }

// kafkajs raises a KafkaJSProtocolError whose `type` is the protocol error's name
const kafkajsError = (type: string) =>
  KafkaJsErrors.toPublishError(Object.assign(new kafkajs.KafkaJSProtocolError(type), { type }), context)
// @platformatic/kafka raises a ResponseError holding one ProtocolError per failed partition
const platformaticError = (code: number) =>
  PlatformaticErrors.toPublishError(
    new ResponseError(0, 11, { "/responses/0/partitionResponses/0": [code, null] }, {}),
    context
  )

describe("a failed send inside a transaction", () => {
  const cases = [
    ["kafkajs", (name: string, _code: number) => kafkajsError(name), KafkaJsErrors.vocabulary],
    ["@platformatic/kafka", (_name: string, code: number) => platformaticError(code), PlatformaticErrors.vocabulary]
  ] as const
  for (const [client, errorOf, vocabulary] of cases) {
    it(`${client}: OUT_OF_ORDER_SEQUENCE_NUMBER is no fencing: Retriable, the producer starts a new epoch`, () => {
      const error = errorOf("OUT_OF_ORDER_SEQUENCE_NUMBER", 45)
      assert.strictEqual(`${error._tag} ${error.reason}`, "Fatal ProducerFenced", "the core table's reading")
      const read = failedSend(error, vocabulary)
      assert.isFalse(read.fenced)
      assert.strictEqual(`${read.error._tag} ${read.error.reason}`, "Retriable Unknown")
      assert.include(read.error.message, "OUT_OF_ORDER_SEQUENCE_NUMBER")
      assert.strictEqual(read.error.topic, "orders")
    })

    it(`${client}: PRODUCER_FENCED and INVALID_PRODUCER_EPOCH are fencings: the error stays, no new epoch`, () => {
      for (const [name, code] of [
        ["PRODUCER_FENCED", 90],
        ["INVALID_PRODUCER_EPOCH", 47]
      ] as const) {
        const error = errorOf(name, code)
        assert.deepStrictEqual(failedSend(error, vocabulary), { error, fenced: true })
      }
    })

    it(`${client}: any other failure keeps its error and asks for a new epoch`, () => {
      const error = errorOf("NOT_LEADER_OR_FOLLOWER", 6)
      assert.deepStrictEqual(failedSend(error, vocabulary), { error, fenced: false })
    })
  }

  it("platformatic's own ProtocolError names work as well", () => {
    const error = PlatformaticErrors.toPublishError(new ProtocolError("OUT_OF_ORDER_SEQUENCE_NUMBER"), context)
    assert.isFalse(failedSend(error, PlatformaticErrors.vocabulary).fenced)
  })
})
