/**
 * Graceful shutdown: `npm run example:graceful-shutdown`.
 *
 * Publishes continuously from 16 workers until SIGINT or SIGTERM. Then it stops accepting (no worker starts
 * a new publish), lets the publishes in flight finish (the Publisher's scope waits for them, then the
 * producer disconnects), reports what happened to every accepted event, and exits 0.
 *
 * The last line is a JSON summary, so a test can check it against what the topic holds:
 * {"accepted":N,"delivered":N,"deadLettered":N,"failed":[ids...],"shutdownMs":N}
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit, Layer, Logger, Schema } from "effect"
import { Publisher, Topic } from "effect-kafka-publisher"
import { producerLayer } from "../shared/broker.ts"

class Tick extends Schema.Class<Tick>("Tick")({ id: Schema.Int, workerId: Schema.Int }) {}

const topicName = process.env.TOPIC ?? "ticks"
const ticks = Topic.make({
  name: topicName,
  schema: Tick,
  key: (t) => `worker-${t.workerId}`,
  headers: (t) => ({ eventId: String(t.id) })
})

const stats = { accepted: 0, delivered: 0, deadLettered: 0, failed: [] as Array<number> }
let signalledAt = 0

const worker = (workerId: number) =>
  Effect.gen(function* () {
    const publisher = yield* Publisher.Publisher
    while (true) {
      // uninterruptible: a signal lets this publish finish (and be counted) before the worker stops. The
      // count is taken inside: a signal between counting and publishing would leave one counted, not sent.
      yield* Effect.uninterruptible(
        Effect.suspend(() => {
          const id = stats.accepted++
          return Effect.exit(publisher.publish(ticks, new Tick({ id, workerId }))).pipe(
            Effect.tap((exit) =>
              Effect.sync(() => {
                if (Exit.isSuccess(exit)) {
                  if (exit.value._tag === "Delivered") stats.delivered++
                  else stats.deadLettered++
                } else stats.failed.push(id)
              })
            )
          )
        })
      )
    }
  })

const run = Effect.gen(function* () {
  yield* Effect.logInfo("publishing until SIGINT/SIGTERM")
  yield* Effect.forEach(
    Array.from({ length: 16 }, (_, i) => i),
    worker,
    { concurrency: "unbounded", discard: true }
  )
}).pipe(Effect.onInterrupt(() => Effect.sync(() => (signalledAt = Date.now()))))

const report = Effect.sync(() => {
  const shutdownMs = signalledAt === 0 ? 0 : Date.now() - signalledAt
  console.error(
    `stopped: accepted ${stats.accepted}, delivered ${stats.delivered}, dead-lettered ${stats.deadLettered}, failed ${stats.failed.length}; shutdown took ${shutdownMs} ms`
  )
  console.log(JSON.stringify({ ...stats, shutdownMs }))
})

run.pipe(
  Effect.provide(Publisher.layer({ shutdownTimeout: "20 seconds" }).pipe(Layer.provide(producerLayer()))),
  Effect.ensuring(report), // after the Publisher and the producer were released: everything is settled
  Effect.provideService(Logger.LogToStderr, true), // stdout carries only the JSON summary
  (main) =>
    NodeRuntime.runMain(main, {
      // a signal is the normal way to stop this program: exit 0 when the shutdown itself went well
      teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? 0 : 1)
    })
)
