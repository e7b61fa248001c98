// Issue 7: property-based fault schedules on FakeKafka. Random event streams meet random interleavings of
// transient failures, lost answers and fatal errors (left-over injected failures hit the next sends, dead-letter
// writes included, which is the point); every event must end exactly once as delivered,
// dead-lettered or a returned error, retries never exceed the policy, and the topic's offsets stay continuous.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, References, Schema } from "effect"
import { Publisher, RetryPolicy, Topic } from "effect-kafka-publisher"
import { FakeKafka } from "effect-kafka-publisher/testing"
import fc from "fast-check"
import { Fatal, Retriable } from "../../src/PublishError.ts"
import type { PublishFailure } from "../../src/Publisher.ts"
import type { Receipt } from "../../src/Receipt.ts"

class Event extends Schema.Class<Event>("Event")({ id: Schema.Int, userId: Schema.String }) {}

type Fault =
  | { readonly _tag: "none" }
  | { readonly _tag: "transient"; readonly times: number }
  | { readonly _tag: "lostAnswer" }
  | { readonly _tag: "fatal" }
  | { readonly _tag: "fatalDeadLetterToo" }

const fault: fc.Arbitrary<Fault> = fc.oneof(
  { weight: 5, arbitrary: fc.constant({ _tag: "none" } as const) },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 5 }).map((times) => ({ _tag: "transient", times }) as const) },
  { weight: 1, arbitrary: fc.constant({ _tag: "lostAnswer" } as const) },
  { weight: 1, arbitrary: fc.constant({ _tag: "fatal" } as const) },
  { weight: 1, arbitrary: fc.constant({ _tag: "fatalDeadLetterToo" } as const) }
)

const scenario = fc.record({
  maxAttempts: fc.integer({ min: 1, max: 4 }),
  users: fc.integer({ min: 1, max: 6 }),
  faults: fc.array(fault, { minLength: 1, maxLength: 40 })
})

const transient = new Retriable({ reason: "BrokerUnavailable", ambiguous: false, message: "injected" })
const fatal = new Fatal({ reason: "RecordTooLarge", message: "injected" })
const decoder = new TextDecoder()
// a dead letter too large for the dead-letter topic is written without its value: the `id` header says which
const idOf = (record: { readonly value: Uint8Array | null; readonly headers: Readonly<Record<string, Uint8Array>> }) =>
  record.value === null
    ? Number(decoder.decode(record.headers.id!))
    : (JSON.parse(decoder.decode(record.value)) as { id: number }).id

type Scenario = { readonly maxAttempts: number; readonly users: number; readonly faults: ReadonlyArray<Fault> }

const runScenario = ({ maxAttempts, users, faults }: Scenario) =>
  Effect.gen(function* () {
    const publisher = yield* Publisher.Publisher
    const fake = yield* FakeKafka.FakeKafka
    const topic = Topic.make({
      name: "events",
      schema: Event,
      key: (e) => e.userId,
      headers: (e) => ({ id: String(e.id) })
    })
    const outcomes: Array<Exit.Exit<unknown, unknown>> = []
    for (const [id, f] of faults.entries()) {
      if (f._tag === "transient") yield* fake.failNext(f.times, transient)
      if (f._tag === "lostAnswer") yield* fake.loseNextAnswers(1)
      if (f._tag === "fatal") yield* fake.failNext(1, fatal)
      if (f._tag === "fatalDeadLetterToo") yield* fake.failNext(3, fatal) // the record, its dead letter with and without its value
      outcomes.push(yield* Effect.exit(publisher.publish(topic, new Event({ id, userId: `user-${id % users}` }))))
    }
    return {
      outcomes,
      records: yield* fake.records("events"),
      dead: yield* fake.records("events.dlt"),
      sends: yield* fake.sendCount
    }
  }).pipe(
    Effect.provide(
      Publisher.layer({ retry: RetryPolicy.make({ initialDelay: 0, maxAttempts, jitter: false }) }).pipe(
        Layer.provideMerge(FakeKafka.layer({ topics: { events: { partitions: 3 } } }))
      )
    ),
    Effect.provideService(References.MinimumLogLevel, "None") // thousands of retries: keep the output readable
  )

describe("fault schedules (property-based, FakeKafka)", () => {
  it("every event ends exactly once; retries stay within the policy; offsets stay continuous", async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (input) => {
        const { outcomes, records, dead } = await Effect.runPromise(runScenario(input))
        const inTopic = new Map<number, number>()
        for (const r of records) inTopic.set(idOf(r), (inTopic.get(idOf(r)) ?? 0) + 1)
        const inDead = new Map<number, number>()
        for (const r of dead) inDead.set(idOf(r), (inDead.get(idOf(r)) ?? 0) + 1)

        outcomes.forEach((exit, id) => {
          const copies = inTopic.get(id) ?? 0
          const deadCopies = inDead.get(id) ?? 0
          if (Exit.isSuccess(exit)) {
            const receipt = exit.value as Receipt
            assert.isAtMost(receipt.attempts, input.maxAttempts, `event ${id}: attempts within the policy`)
            if (receipt._tag === "Delivered") {
              // more than one copy only after an ambiguous attempt, and then the receipt says so
              assert.isAtLeast(copies, 1, `event ${id} delivered`)
              if (!receipt.possibleDuplicate) assert.strictEqual(copies, 1, `event ${id}: one copy`)
              assert.strictEqual(deadCopies, 0)
            } else {
              assert.strictEqual(deadCopies, 1, `event ${id} dead-lettered once`)
              if (!receipt.possiblyDelivered) assert.strictEqual(copies, 0, `event ${id}: not in the topic`)
            }
          } else {
            const error = exit.cause.reasons.find((r) => r._tag === "Fail")?.error as PublishFailure | undefined
            assert.isDefined(error, `event ${id}: a typed error, not a defect`)
            if (error?._tag !== "DeadLetterFailed") throw new Error(`event ${id}: unexpected ${error?._tag}`)
            // the dead-letter write failed: it is in the dead-letter topic only if that failure was ambiguous
            const deadLetterAmbiguous = error.deadLetterError._tag === "Retriable" && error.deadLetterError.ambiguous
            if (!deadLetterAmbiguous) assert.strictEqual(deadCopies, 0, `event ${id}: no dead letter`)
            if (!error.possiblyDelivered) assert.strictEqual(copies, 0, `event ${id}: not in the topic`)
          }
        })
        // offsets of every partition are 0..n-1
        const byPartition = new Map<number, Array<number>>()
        for (const r of records)
          byPartition.set(r.partition, [...(byPartition.get(r.partition) ?? []), Number(r.offset)])
        for (const offsets of byPartition.values()) {
          assert.deepStrictEqual(
            offsets,
            offsets.map((_, i) => i)
          )
        }
      }),
      { numRuns: 150 }
    )
  })
})
