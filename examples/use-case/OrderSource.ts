/**
 * Where the use case finds the events to publish: in a real service an outbox table or a change feed.
 * `markPublished` is called only for events that got a receipt, so a failed one is offered again next run.
 */
import { Context, Effect, Layer, Ref } from "effect"
import type { OrderEvent } from "./Order.ts"

export interface OrderSourceShape {
  readonly pending: Effect.Effect<ReadonlyArray<OrderEvent>>
  readonly markPublished: (event: OrderEvent) => Effect.Effect<void>
}

export class OrderSource extends Context.Service<OrderSource, OrderSourceShape>()("examples/OrderSource") {
  /** An in-memory outbox holding `events`. */
  static readonly layerInMemory = (events: ReadonlyArray<OrderEvent>) =>
    Layer.effect(
      OrderSource,
      Effect.gen(function* () {
        const outbox = yield* Ref.make<ReadonlyArray<OrderEvent>>(events)
        return OrderSource.of({
          pending: Ref.get(outbox),
          markPublished: (event) => Ref.update(outbox, (all) => all.filter((e) => e !== event))
        })
      })
    )
}
