/**
 * What the network-fault suites share: a describe() that needs toxiproxy (skipped with the reason locally, a
 * failure under CI=true), the publisher they put behind the faults (short documented timeouts, either driver, with
 * or without the Batcher), a paced load that records how long each publish took, and the invariants every fault
 * must keep.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, type Exit, Layer } from "effect"
import { Batcher, Publisher, RetryPolicy, type Topic } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"
import type { Producer } from "../../src/Producer.ts"
import type { PublishError } from "../../src/PublishError.ts"
import type { PublishFailure } from "../../src/Publisher.ts"
import type { Receipt } from "../../src/Receipt.ts"
import { toxiproxyProblem } from "../../testbed/toxiproxy.ts"
import { describeWithKafka } from "./broker.ts"
import type { Counts } from "./reliabilityCounts.ts"

/** describeWithKafka() whose body needs toxiproxy (testbed/toxiproxy.ts). */
export const describeWithToxiproxy = (name: string, inner: string, body: () => void): void => {
  const problem = toxiproxyProblem()
  describeWithKafka(name, () => {
    if (problem !== undefined && process.env.CI === "true") {
      it("needs toxiproxy (testbed/toxiproxy.ts builds it with Go)", () => {
        throw new Error(`CI=true and toxiproxy cannot run: ${problem}`)
      })
      return
    }
    describe.skipIf(problem !== undefined)(problem === undefined ? inner : `skipped: ${problem}`, body)
  })
}

// Short documented timeouts keep the black holes short: request timeout 5 s (driver), delivery timeout 20 s and
// dead-letter write 5 s (Publisher), so the documented bound of one publish is 20 s + 5 s.
export const requestTimeoutMs = 5_000
export const deliveryTimeoutMs = 20_000
export const deadLetterTimeoutMs = 5_000
/** The documented bound of one publish: the delivery timeout, then the dead-letter write's own timeout. */
export const boundMs = deliveryTimeoutMs + deadLetterTimeoutMs
/** Scheduling slack on a shared 2-core machine. */
export const slackMs = 3_000

export type DriverName = "kafkajs" | "platformatic"
/** Which driver, with or without the Batcher in front of it. */
export interface Variant {
  readonly driver: DriverName
  readonly batcher: boolean
}
export const label = (v: Variant) => `${v.driver}${v.batcher ? "+Batcher" : ""}`

/** The driver alone behind the faults: the request timeout above, the default 5 requests in flight. */
export const faultDriverLayer = (
  driver: DriverName,
  brokers: ReadonlyArray<string>,
  clientId: string
): Layer.Layer<Producer, PublishError> => {
  const config = { brokers, clientId, requestTimeout: `${requestTimeoutMs} millis` as const }
  return driver === "kafkajs" ? KafkaJsProducer.layer(config) : PlatformaticProducer.layer(config)
}

// the Batcher keeps 5 batches in flight: the driver pipelines them (@platformatic/kafka) or queues them (kafkajs)
const driverLayer = (v: Variant, brokers: ReadonlyArray<string>, clientId: string) => {
  const base = faultDriverLayer(v.driver, brokers, clientId)
  return v.batcher ? Batcher.layer({ linger: "5 millis", maxInFlightBatches: 5 }).pipe(Layer.provide(base)) : base
}

/** The publisher behind the faults: the timeouts above, 5 attempts, the variant's driver to `brokers`. */
export const faultPublisherLayer = (v: Variant, brokers: ReadonlyArray<string>, clientId: string) =>
  Publisher.layer({
    deliveryTimeout: `${deliveryTimeoutMs} millis`,
    deadLetter: { timeout: `${deadLetterTimeoutMs} millis` },
    retry: RetryPolicy.make({ maxAttempts: 5, maxDelay: "2 seconds" })
  }).pipe(Layer.provide(driverLayer(v, brokers, clientId)))

/**
 * Publishes `events` from `fibers` fibers (default 16), each waiting `pauseMs` (default 50) before its next
 * publish: about fibers * 1000 / pauseMs a second while publishes are quick.
 */
export const pacedPublishes = <A, I>(
  publisher: Publisher.Publisher,
  topic: Topic.Topic<A, I>,
  events: ReadonlyArray<A>,
  pace: { readonly fibers?: number; readonly pauseMs?: number } = {}
) =>
  Effect.gen(function* () {
    let longestMs = 0
    const outcomes: Array<Exit.Exit<Receipt, PublishFailure>> = yield* Effect.forEach(
      events,
      (e) =>
        Effect.gen(function* () {
          yield* Effect.sleep(`${pace.pauseMs ?? 50} millis`)
          const started = Date.now()
          const exit = yield* Effect.exit(publisher.publish(topic, e))
          longestMs = Math.max(longestMs, Date.now() - started)
          return exit
        }),
      { concurrency: pace.fibers ?? 16 }
    )
    return { outcomes, longestMs }
  })

/** What every fault must keep: nothing lost, no unmarked duplicate, nothing silently written, the bound held. */
export const assertFaultInvariants = (variant: string, counts: Counts, longestMs: number): void => {
  assert.strictEqual(counts.lost, 0, `${variant}: lost`)
  assert.strictEqual(counts.duplicates, 0, `${variant}: unmarked duplicates`)
  assert.strictEqual(counts.silentlyWritten, 0, `${variant}: silently written`)
  assert.isAtMost(longestMs, boundMs + slackMs, `${variant}: a publish outlived its bound`)
}
