/**
 * What the network-fault suites share: a describe() that needs toxiproxy (skipped with the reason locally, a
 * failure under CI=true), and a paced load that records how long each publish took.
 */
import { describe, it } from "@effect/vitest"
import { Effect, type Exit } from "effect"
import type { Publisher, Topic } from "effect-kafka-publisher"
import type { PublishFailure } from "../../src/Publisher.ts"
import type { Receipt } from "../../src/Receipt.ts"
import { toxiproxyProblem } from "../../testbed/toxiproxy.ts"
import { describeWithKafka } from "./broker.ts"

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

/** Publishes `events` from 16 fibers, each waiting 50 ms before its next publish (about 300/s). */
export const pacedPublishes = <A, I>(
  publisher: Publisher.Publisher,
  topic: Topic.Topic<A, I>,
  events: ReadonlyArray<A>
) =>
  Effect.gen(function* () {
    let longestMs = 0
    const outcomes: Array<Exit.Exit<Receipt, PublishFailure>> = yield* Effect.forEach(
      events,
      (e) =>
        Effect.gen(function* () {
          yield* Effect.sleep("50 millis")
          const started = Date.now()
          const exit = yield* Effect.exit(publisher.publish(topic, e))
          longestMs = Math.max(longestMs, Date.now() - started)
          return exit
        }),
      { concurrency: 16 }
    )
    return { outcomes, longestMs }
  })
