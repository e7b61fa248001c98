/**
 * The anti-corruption translator: domain events in, message contracts out. The only place that knows both
 * sides, so either can change without the other noticing. Routing by event type happens here too.
 */
import type { Effect } from "effect"
import type { Publisher, Receipt } from "effect-kafka-publisher"
import {
  OrderCancelledV1,
  OrderPlacedV1,
  OrderShippedV1,
  orderCancelled,
  orderPlaced,
  orderShipped
} from "./Messages.ts"
import { type OrderEvent, totalCents } from "./Order.ts"

/** Publishes one domain event as its message, on its topic. */
export const publishEvent = (
  publisher: Publisher.Publisher,
  event: OrderEvent
): Effect.Effect<Receipt.Receipt, Publisher.PublishFailure> => {
  const { order } = event
  switch (event._tag) {
    case "OrderPlaced":
      return publisher.publish(
        orderPlaced,
        new OrderPlacedV1({
          orderId: order.id,
          customerId: order.customer.id,
          itemCount: order.lines.reduce((n, line) => n + line.quantity, 0),
          totalCents: totalCents(order),
          currency: order.currency,
          placedAt: order.placedAt.toISOString()
        })
      )
    case "OrderShipped":
      return publisher.publish(
        orderShipped,
        new OrderShippedV1({
          orderId: order.id,
          customerId: order.customer.id,
          carrier: event.carrier,
          shippedAt: event.shippedAt.toISOString()
        })
      )
    case "OrderCancelled":
      return publisher.publish(
        orderCancelled,
        new OrderCancelledV1({
          orderId: order.id,
          customerId: order.customer.id,
          reason: event.reason,
          cancelledAt: event.cancelledAt.toISOString()
        })
      )
  }
}
