import { describe, expect, it } from "@effect/vitest"
import kafkajs from "kafkajs"
// kafkajs's own table of protocol errors, so each row is tested against the errors the client really raises
import protocol from "kafkajs/src/protocol/error.js"
import { type Classification, protocolErrors } from "../../../src/ErrorClassification.ts"
import { classify, clientErrors, toPublishError } from "../../../src/kafkajs/KafkaJsErrors.ts"

const { errorCodes } = protocol

// kafkajs's typings declare fewer constructor arguments and classes than its runtime has: use the runtime.
type ErrorClass = new (...args: ReadonlyArray<unknown>) => Error
const K = kafkajs as unknown as Record<string, ErrorClass>

/** The protocol error kafkajs raises for a type; a synthetic one for names newer than kafkajs 2.2.4. */
const protocolError = (type: string): Error => {
  const known = errorCodes.find((e) => e.type === type)
  return new K.KafkaJSProtocolError!(known ?? { type, code: -2, retriable: false, message: type })
}

/** kafkajs wraps a failure the way its retrier does when it gives up (here: on its first attempt). */
const retriesExceeded = (error: Error, retryCount = 0) =>
  new K.KafkaJSNumberOfRetriesExceeded!(error, { retryCount, retryTime: 1000 })
const nonRetriable = (error: Error) => new K.KafkaJSNonRetriableError!(error, { cause: error })

const context = { autoCreateTopics: true }

describe("KafkaJsErrors: kafkajs errors on the classification table", () => {
  describe.each(Object.entries(protocolErrors))("protocol error %s", (type, expected) => {
    it("is classified by its row", () => {
      expect(classify(protocolError(type), context)).toEqual(expected)
    })
    it("is found under kafkajs's wrappers", () => {
      expect(classify(retriesExceeded(protocolError(type)), context)).toEqual(expected)
      expect(classify(nonRetriable(protocolError(type)), context)).toEqual(expected)
    })
  })

  it("UNKNOWN_TOPIC_OR_PARTITION is retriable while topics are auto-created, fatal otherwise", () => {
    const error = retriesExceeded(protocolError("UNKNOWN_TOPIC_OR_PARTITION"))
    expect(classify(error, { autoCreateTopics: true })).toEqual({
      kind: "Retriable",
      reason: "UnknownTopicOrPartition",
      ambiguous: false
    })
    expect(classify(error, { autoCreateTopics: false })).toEqual({ kind: "Fatal", reason: "UnknownTopic" })
  })

  const clientCases: ReadonlyArray<[string, Error, Classification]> = [
    [
      "connection refused",
      new K.KafkaJSConnectionError!("Connection error: connect ECONNREFUSED 127.0.0.1:1", {
        broker: "127.0.0.1:1",
        code: "ECONNREFUSED"
      }),
      { kind: "Retriable", reason: "BrokerUnavailable", ambiguous: false }
    ],
    [
      "connection timeout",
      new K.KafkaJSConnectionError!("Connection timeout", { broker: "b:1" }),
      { kind: "Retriable", reason: "BrokerUnavailable", ambiguous: false }
    ],
    [
      "other connection error (mid-request)",
      new K.KafkaJSConnectionError!("Connection error: write EPIPE", { broker: "b:1" }),
      { kind: "Retriable", reason: "ConnectionClosed", ambiguous: true }
    ],
    [
      "connection closed",
      new K.KafkaJSConnectionClosedError!("Closed connection", { host: "b", port: 1 }),
      { kind: "Retriable", reason: "ConnectionClosed", ambiguous: true }
    ],
    [
      "request timeout",
      new K.KafkaJSRequestTimeoutError!("Request Produce(key: 0, version: 7) timed out", {}),
      { kind: "Retriable", reason: "RequestTimeout", ambiguous: true }
    ],
    [
      "metadata not loaded",
      new K.KafkaJSMetadataNotLoaded!("Producing to topic without metadata"),
      { kind: "Retriable", reason: "BrokerUnavailable", ambiguous: false }
    ],
    [
      "transaction coordinator not found (no broker answered FindCoordinator)",
      new K.KafkaJSGroupCoordinatorNotFound!("Failed to find group coordinator"),
      { kind: "Retriable", reason: "BrokerUnavailable", ambiguous: false }
    ],
    [
      "SASL authentication failed",
      new K.KafkaJSSASLAuthenticationError!("SASL SCRAM SHA256 authentication failed"),
      { kind: "Fatal", reason: "AuthenticationFailed" }
    ],
    [
      "client-side invalid topic",
      new K.KafkaJSNonRetriableError!("Invalid topic"),
      { kind: "Fatal", reason: "InvalidTopic" }
    ],
    [
      "client-side invalid message",
      new K.KafkaJSNonRetriableError!('Invalid message without value for topic "t": {}'),
      { kind: "Fatal", reason: "InvalidRecord" }
    ],
    [
      "unknown retriable error",
      new K.KafkaJSError!("something odd"),
      { kind: "Retriable", reason: "Unknown", ambiguous: true }
    ],
    ["unknown plain error", new TypeError("bug"), { kind: "Fatal", reason: "Unknown" }]
  ]

  it.each(clientCases)("%s", (_, error, expected) => {
    expect(classify(error, context)).toEqual(expected)
    expect(classify(retriesExceeded(error), context)).toEqual(expected)
  })

  it("every client row is covered by a case above or is a plain class-name row", () => {
    for (const name of Object.keys(clientErrors)) {
      const ErrorClass = K[name]
      if (!ErrorClass) continue // KafkaJSNoBrokerAvailableError & co. are not exported: matched by name only
      const error = new ErrorClass("x")
      expect(classify(error, context)).toEqual(clientErrors[name])
    }
  })

  it("a retriable failure reported after kafkajs retried the request itself is ambiguous", () => {
    const refused = new K.KafkaJSConnectionError!("Connection error: connect ECONNREFUSED 127.0.0.1:1", {
      broker: "127.0.0.1:1",
      code: "ECONNREFUSED"
    })
    expect(classify(retriesExceeded(refused, 0), context)).toEqual({
      kind: "Retriable",
      reason: "BrokerUnavailable",
      ambiguous: false
    })
    expect(classify(retriesExceeded(refused, 3), context)).toEqual({
      kind: "Retriable",
      reason: "BrokerUnavailable",
      ambiguous: true
    })
    // a fatal answer stays fatal: the broker refused the record, retried or not
    expect(classify(retriesExceeded(protocolError("MESSAGE_TOO_LARGE"), 3), context)).toEqual({
      kind: "Fatal",
      reason: "RecordTooLarge"
    })
  })

  it("the innermost known cause decides, not the wrapper", () => {
    const inner = protocolError("MESSAGE_TOO_LARGE")
    const outer = new K.KafkaJSError!("wrapper", { cause: inner })
    expect(classify(outer, context)).toEqual({ kind: "Fatal", reason: "RecordTooLarge" })
  })

  it("toPublishError keeps the cause, topic and partition, and joins the messages", () => {
    const inner = protocolError("NOT_ENOUGH_REPLICAS")
    const error = toPublishError(retriesExceeded(inner), { autoCreateTopics: true, topic: "orders", partition: 2 })
    expect(error._tag).toBe("Retriable")
    expect(error.reason).toBe("NotEnoughReplicas")
    expect(error.topic).toBe("orders")
    expect(error.partition).toBe(2)
    expect(error.cause).toBeInstanceOf(K.KafkaJSNumberOfRetriesExceeded!)
    expect(error.message).toContain("replicas")
  })

  it("a cyclic cause chain terminates", () => {
    const a = new Error("a") as Error & { cause?: unknown }
    const b = new Error("b") as Error & { cause?: unknown }
    a.cause = b
    b.cause = a
    expect(classify(a, context)).toEqual({ kind: "Fatal", reason: "Unknown" })
  })
})
