/**
 * The core of the classification: the protocol table, Node's socket codes and the cause walk, through a
 * vocabulary that knows no client beyond where the protocol name sits. The drivers' vocabularies are
 * tested with their drivers (test/unit/kafkajs/KafkaJsErrors.test.ts, test/unit/platformatic/PlatformaticErrors.test.ts).
 */
import { describe, expect, it } from "@effect/vitest"
import {
  type ClientVocabulary,
  classify,
  lookup,
  noClient,
  protocolErrors,
  toPublishError
} from "../../src/ErrorClassification.ts"
import * as KafkaJsErrors from "../../src/kafkajs/KafkaJsErrors.ts"
import * as PlatformaticErrors from "../../src/platformatic/PlatformaticErrors.ts"

/** A client whose errors carry the protocol name as `protocol`. */
const testClient: ClientVocabulary = {
  ...noClient,
  protocolName: (error) => (typeof error.protocol === "string" ? error.protocol : undefined)
}
const answer = (protocol: string) => Object.assign(new Error(protocol), { protocol })
const context = { autoCreateTopics: true }

describe("ErrorClassification (core)", () => {
  it.each(Object.entries(protocolErrors))("protocol error %s is classified by its row", (name, row) => {
    expect(classify(answer(name), context, testClient)).toEqual(row)
  })

  it("UNKNOWN_TOPIC_OR_PARTITION follows auto-creation", () => {
    const error = answer("UNKNOWN_TOPIC_OR_PARTITION")
    expect(classify(error, { autoCreateTopics: true }, testClient)).toEqual({
      kind: "Retriable",
      reason: "UnknownTopicOrPartition",
      ambiguous: false
    })
    expect(classify(error, { autoCreateTopics: false }, testClient)).toEqual({ kind: "Fatal", reason: "UnknownTopic" })
  })

  it.each([
    ["ECONNREFUSED", "BrokerUnavailable", false],
    ["ENOTFOUND", "BrokerUnavailable", false],
    ["EHOSTUNREACH", "BrokerUnavailable", false],
    ["ECONNRESET", "ConnectionClosed", true],
    ["EPIPE", "ConnectionClosed", true]
  ] as const)(
    "Node socket code %s is Retriable %s (ambiguous: %s) with no client vocabulary",
    (code, reason, ambiguous) => {
      const error = Object.assign(new Error(`socket ${code}`), { code })
      expect(classify(error, context, noClient)).toEqual({ kind: "Retriable", reason, ambiguous })
    }
  )

  it("the innermost known error decides, through causes and aggregated errors", () => {
    const inner = answer("MESSAGE_TOO_LARGE")
    const wrapped = new Error("wrapper", { cause: new AggregateError([new Error("other"), inner], "all failed") })
    expect(classify(wrapped, context, testClient)).toEqual({ kind: "Fatal", reason: "RecordTooLarge" })
  })

  it("an ambiguous error earlier in the chain makes a retriable failure ambiguous", () => {
    const error = new AggregateError([answer("REQUEST_TIMED_OUT"), answer("NOT_LEADER_OR_FOLLOWER")], "gave up")
    expect(classify(error, context, testClient)).toEqual({ kind: "Retriable", reason: "NotLeader", ambiguous: true })
  })

  it("a cyclic cause chain terminates", () => {
    const a = new Error("a") as Error & { cause?: unknown }
    const b = new Error("b") as Error & { cause?: unknown }
    a.cause = b
    b.cause = a
    expect(classify(a, context, testClient)).toEqual({ kind: "Fatal", reason: "Unknown" })
  })

  describe("issue 18 (small): table look-ups do not go through Object.prototype", () => {
    it("lookup finds own rows only", () => {
      expect(lookup(protocolErrors, "constructor")).toBeUndefined()
      expect(lookup(protocolErrors, "toString")).toBeUndefined()
      expect(lookup(protocolErrors, "__proto__")).toBeUndefined()
      expect(lookup(protocolErrors, "MESSAGE_TOO_LARGE")).toEqual({ kind: "Fatal", reason: "RecordTooLarge" })
    })
    it.each(["constructor", "toString", "hasOwnProperty", "__proto__"])(
      "an error named %s is Fatal Unknown on every vocabulary",
      (name) => {
        const unknown = { kind: "Fatal", reason: "Unknown" }
        expect(classify({ protocol: name }, context, testClient)).toEqual(unknown)
        expect(KafkaJsErrors.classify({ type: name }, context)).toEqual(unknown)
        expect(KafkaJsErrors.classify({ name }, context)).toEqual(unknown)
        expect(PlatformaticErrors.classify({ apiId: name }, context)).toEqual(unknown)
      }
    )
  })

  describe("issue 18 suspicions: producer-state errors", () => {
    it("DUPLICATE_SEQUENCE_NUMBER: the broker already has the batch, so it is Retriable and ambiguous (a resend is marked)", () => {
      expect(classify(answer("DUPLICATE_SEQUENCE_NUMBER"), context, testClient)).toEqual({
        kind: "Retriable",
        reason: "Unknown",
        ambiguous: true
      })
    })
    it("UNKNOWN_PRODUCER_ID: nothing was written and a new producer session succeeds, so it is Retriable, not ambiguous", () => {
      expect(classify(answer("UNKNOWN_PRODUCER_ID"), context, testClient)).toEqual({
        kind: "Retriable",
        reason: "Unknown",
        ambiguous: false
      })
    })
  })

  it("toPublishError: partly written or a lost request make a retriable failure ambiguous; Fatal stays Fatal", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })
    expect(toPublishError(refused, { ...context, topic: "t", partition: 1 }, noClient)).toMatchObject({
      _tag: "Retriable",
      reason: "BrokerUnavailable",
      ambiguous: false,
      topic: "t",
      partition: 1
    })
    expect(toPublishError(refused, { ...context, requestSent: true }, noClient)).toMatchObject({ ambiguous: true })
    expect(
      toPublishError(answer("NOT_LEADER_OR_FOLLOWER"), { ...context, partlyWritten: true }, testClient)
    ).toMatchObject({
      ambiguous: true
    })
    expect(toPublishError(answer("MESSAGE_TOO_LARGE"), { ...context, partlyWritten: true }, testClient)).toMatchObject({
      _tag: "Fatal",
      reason: "RecordTooLarge"
    })
  })
})
