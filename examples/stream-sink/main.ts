/**
 * Stream sink: `npm run example:stream-sink`.
 *
 * Publishes a Stream of EVENTS (default 20,000) readings through `Publisher.sink`: requests of up to 500,
 * backpressure from the broker, and a summary at the end. Embedded FakeKafka unless KAFKA_BROKERS is set.
 * The last line is the summary as JSON: {"delivered":N,"possibleDuplicates":N,"deadLettered":N}
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect, Layer, Logger, Schema, Stream } from "effect"
import { Publisher, Topic } from "effect-kafka-publisher"
import { producerLayer } from "../shared/broker.ts"

class Reading extends Schema.Class<Reading>("Reading")({ id: Schema.Int, sensor: Schema.String }) {}

const readings = Topic.make({
  name: process.env.TOPIC ?? "readings",
  schema: Reading,
  key: (r) => r.sensor,
  headers: (r) => ({ eventId: String(r.id) })
})
const count = Number(process.env.EVENTS ?? 20_000)

const program = Effect.gen(function* () {
  const events = Stream.range(0, count - 1).pipe(
    Stream.map((id) => new Reading({ id, sensor: `sensor-${id % 8}` })),
    Stream.rechunk(500)
  )
  const summary = yield* Stream.run(events, Publisher.sink(readings))
  console.log(JSON.stringify(summary))
})

program.pipe(
  Effect.provide(Publisher.layer().pipe(Layer.provide(producerLayer()))),
  Effect.provideService(Logger.LogToStderr, true),
  NodeRuntime.runMain
)
