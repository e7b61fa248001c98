/**
 * The use-case example: `npm run example:use-case`. Publishes a small batch of order events (placed,
 * shipped, cancelled) to three topics through the anti-corruption translator.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect, Layer } from "effect"
import { Publisher } from "effect-kafka-publisher"
import { producerLayer } from "../shared/broker.ts"
import { ExtractAndPublishOrders } from "./ExtractAndPublishOrders.ts"
import type { Order, OrderEvent } from "./Order.ts"
import { OrderSource } from "./OrderSource.ts"

const order = (n: number): Order => ({
  id: `order-${n}`,
  customer: { id: `customer-${n % 3}`, email: `customer-${n % 3}@example.com` },
  lines: [
    { sku: "book", quantity: 1 + (n % 2), unitPriceCents: 1299 },
    { sku: "pen", quantity: 3, unitPriceCents: 199 }
  ],
  currency: "EUR",
  placedAt: new Date(Date.UTC(2026, 10, 22, 9, n))
})

export const sampleEvents: ReadonlyArray<OrderEvent> = [
  ...Array.from({ length: 6 }, (_, n) => ({ _tag: "OrderPlaced" as const, order: order(n) })),
  { _tag: "OrderShipped", order: order(0), carrier: "DHL", shippedAt: new Date(Date.UTC(2026, 10, 23, 8)) },
  { _tag: "OrderShipped", order: order(1), carrier: "UPS", shippedAt: new Date(Date.UTC(2026, 10, 23, 9)) },
  {
    _tag: "OrderCancelled",
    order: order(5),
    reason: "customer request",
    cancelledAt: new Date(Date.UTC(2026, 10, 22, 10))
  }
]

export const UseCaseLive = ExtractAndPublishOrders.layer.pipe(
  Layer.provide(OrderSource.layerInMemory(sampleEvents)),
  Layer.provide(Publisher.layer())
)

if (import.meta.main) {
  Effect.gen(function* () {
    const summary = yield* ExtractAndPublishOrders.use((useCase) => useCase.run)
    console.log(`published ${summary.published}, dead-lettered ${summary.deadLettered}, failed ${summary.failed}`)
    if (summary.published !== sampleEvents.length) return yield* Effect.fail(new Error("not every event was published"))
  }).pipe(Effect.provide(UseCaseLive.pipe(Layer.provide(producerLayer()))), NodeRuntime.runMain)
}
