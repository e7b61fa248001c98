/**
 * The classification table against @platformatic/kafka's own error classes, built the way the client builds
 * them (a produce failure is a MultipleErrors per attempt, holding a ResponseError of ProtocolErrors).
 */

import { describe, expect, it } from "@effect/vitest"
import {
  AuthenticationError,
  protocolErrors as clientProtocolErrors,
  MultipleErrors,
  NetworkError,
  ProtocolError,
  ResponseError,
  TimeoutError,
  UnsupportedApiError,
  UserError
} from "@platformatic/kafka"
import { type Classification, protocolErrors } from "../../../src/ErrorClassification.ts"
import { classify, toPublishError } from "../../../src/platformatic/PlatformaticErrors.ts"

const context = { autoCreateTopics: true }

/** A broker's error answer to Produce, as the client raises it for one attempt. */
const answered = (apiId: string) =>
  new ResponseError(0, 11, { "/responses/0/partitionResponses/0": [clientProtocolErrors[apiId]!.code, null] }, {})

/** The client gave up after `attempts` attempts (it keeps every attempt's error), wrapped once more per send. */
const gaveUp = (...attempts: ReadonlyArray<Error>) =>
  new MultipleErrors("Producing messages failed.", [
    attempts.length === 1 ? attempts[0]! : new MultipleErrors(`produce failed ${attempts.length} times.`, [...attempts])
  ])

const refused = () => {
  const cause = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" })
  return new NetworkError("Connection to 127.0.0.1:1 failed.", { cause })
}

describe("PlatformaticErrors: @platformatic/kafka errors on the classification table", () => {
  // rows the client knows (its table is older or newer than the protocol in places)
  const known = Object.entries(protocolErrors).filter(([id]) => clientProtocolErrors[id] !== undefined)

  it("knows most rows of the table", () => {
    expect(known.length).toBeGreaterThan(Object.keys(protocolErrors).length - 3)
  })

  describe.each(known)("protocol error %s", (id, expected) => {
    it("is classified by its row, inside the client's wrappers", () => {
      expect(classify(new ProtocolError(id), context)).toEqual(expected)
      expect(classify(gaveUp(answered(id)), context)).toEqual(expected)
    })
  })

  it("UNKNOWN_TOPIC_OR_PARTITION and the client's 'Unknown topic' follow auto-creation", () => {
    for (const error of [gaveUp(answered("UNKNOWN_TOPIC_OR_PARTITION")), new UserError("Unknown topic orders.")]) {
      expect(classify(error, { autoCreateTopics: true })).toEqual({
        kind: "Retriable",
        reason: "UnknownTopicOrPartition",
        ambiguous: false
      })
      expect(classify(error, { autoCreateTopics: false })).toEqual({ kind: "Fatal", reason: "UnknownTopic" })
    }
  })

  const clientCases: ReadonlyArray<[string, Error, Classification]> = [
    ["connection refused", refused(), { kind: "Retriable", reason: "BrokerUnavailable", ambiguous: false }],
    [
      "connect timeout",
      new TimeoutError("Connection to 127.0.0.1:1 timed out.", { canRetry: true }),
      { kind: "Retriable", reason: "BrokerUnavailable", ambiguous: false }
    ],
    [
      "broker not in the metadata",
      new NetworkError("Cannot get a connection: the broker is not available in the current cluster metadata."),
      { kind: "Retriable", reason: "BrokerUnavailable", ambiguous: false }
    ],
    [
      "request timeout",
      new TimeoutError("Request timed out", { canRetry: true }),
      { kind: "Retriable", reason: "RequestTimeout", ambiguous: true }
    ],
    [
      "connection closed mid-request",
      new NetworkError("Connection closed"),
      { kind: "Retriable", reason: "ConnectionClosed", ambiguous: true }
    ],
    [
      "connection reset",
      new NetworkError("Connection error", {
        cause: Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" })
      }),
      { kind: "Retriable", reason: "ConnectionClosed", ambiguous: true }
    ],
    [
      "SASL authentication failed",
      new NetworkError("Connection to b:1 failed.", {
        cause: new AuthenticationError("SASL authentication failed.", { cause: answered("SASL_AUTHENTICATION_FAILED") })
      }),
      { kind: "Fatal", reason: "AuthenticationFailed" }
    ],
    [
      "unsupported API",
      new UnsupportedApiError("Unsupported API Produce."),
      { kind: "Fatal", reason: "UnsupportedVersion" }
    ],
    [
      "closed client (not retriable)",
      new NetworkError("Client is closed.", { canRetry: false, closed: true }),
      { kind: "Fatal", reason: "Unknown" }
    ],
    ["a bug inside the client", new TypeError("list[18] must be a Buffer"), { kind: "Fatal", reason: "Unknown" }]
  ]

  it.each(clientCases)("%s", (_, error, expected) => {
    expect(classify(error, context)).toEqual(expected)
    expect(classify(gaveUp(error), context)).toEqual(expected)
  })

  it("the last attempt decides; an earlier ambiguous attempt makes a retriable failure ambiguous", () => {
    // refused three times: never sent
    expect(classify(gaveUp(refused(), refused(), refused()), context)).toEqual({
      kind: "Retriable",
      reason: "BrokerUnavailable",
      ambiguous: false
    })
    // closed mid-request, then refused while the broker restarts: the first attempt may have been written
    expect(classify(gaveUp(new NetworkError("Connection closed"), refused()), context)).toEqual({
      kind: "Retriable",
      reason: "BrokerUnavailable",
      ambiguous: true
    })
    // a fatal answer stays fatal
    expect(classify(gaveUp(new NetworkError("Connection closed"), answered("MESSAGE_TOO_LARGE")), context)).toEqual({
      kind: "Fatal",
      reason: "RecordTooLarge"
    })
  })

  it("toPublishError: part of the request written (another broker answered) makes it ambiguous", () => {
    const error = gaveUp(answered("NOT_LEADER_OR_FOLLOWER"))
    expect(toPublishError(error, context)).toMatchObject({ _tag: "Retriable", reason: "NotLeader", ambiguous: false })
    expect(toPublishError(error, { ...context, partlyWritten: true })).toMatchObject({
      _tag: "Retriable",
      reason: "NotLeader",
      ambiguous: true
    })
    expect(toPublishError(gaveUp(answered("MESSAGE_TOO_LARGE")), { ...context, partlyWritten: true })).toMatchObject({
      _tag: "Fatal",
      reason: "RecordTooLarge"
    })
  })
})
