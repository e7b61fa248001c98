/**
 * The use case: take the pending order events, translate each into its message, publish it on its topic,
 * and mark it published once it has a receipt. Composed from layers: it needs an `OrderSource` and a
 * `Publisher`, and knows nothing of Kafka drivers.
 */
import { Context, Effect, Exit, Layer } from "effect"
import { Publisher } from "effect-kafka-publisher"
import { OrderSource } from "./OrderSource.ts"
import { publishEvent } from "./OrderTranslator.ts"

export interface Summary {
  readonly published: number
  readonly deadLettered: number
  readonly failed: number
}

export class ExtractAndPublishOrders extends Context.Service<
  ExtractAndPublishOrders,
  { readonly run: Effect.Effect<Summary> }
>()("examples/ExtractAndPublishOrders") {
  static readonly layer = Layer.effect(
    ExtractAndPublishOrders,
    Effect.gen(function* () {
      const source = yield* OrderSource
      const publisher = yield* Publisher.Publisher
      const run = Effect.gen(function* () {
        const events = yield* source.pending
        const outcomes = yield* Effect.forEach(
          events,
          (event) =>
            Effect.exit(publishEvent(publisher, event)).pipe(
              Effect.tap((exit) => (Exit.isSuccess(exit) ? source.markPublished(event) : Effect.void))
            ),
          { concurrency: 8 }
        )
        const summary: Summary = {
          published: outcomes.filter((e) => Exit.isSuccess(e) && e.value._tag === "Delivered").length,
          deadLettered: outcomes.filter((e) => Exit.isSuccess(e) && e.value._tag === "DeadLettered").length,
          failed: outcomes.filter(Exit.isFailure).length
        }
        yield* Effect.logInfo("orders published").pipe(Effect.annotateLogs({ ...summary }))
        return summary
      })
      return ExtractAndPublishOrders.of({ run })
    })
  )
}
