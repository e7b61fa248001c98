/**
 * The published contract: one message schema and one topic per event type. Versioned, flat, and free of
 * personal data: consumers get what they need, not the domain's internals.
 */
import { Schema } from "effect"
import { Topic } from "effect-kafka-publisher"

export class OrderPlacedV1 extends Schema.Class<OrderPlacedV1>("OrderPlacedV1")({
  orderId: Schema.String,
  customerId: Schema.String,
  itemCount: Schema.Int.check(Schema.isGreaterThan(0)),
  totalCents: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  currency: Schema.Literals(["EUR", "USD"]),
  placedAt: Schema.String
}) {}

export class OrderShippedV1 extends Schema.Class<OrderShippedV1>("OrderShippedV1")({
  orderId: Schema.String,
  customerId: Schema.String,
  carrier: Schema.String,
  shippedAt: Schema.String
}) {}

export class OrderCancelledV1 extends Schema.Class<OrderCancelledV1>("OrderCancelledV1")({
  orderId: Schema.String,
  customerId: Schema.String,
  reason: Schema.String,
  cancelledAt: Schema.String
}) {}

const headers = (eventType: string) => (m: { readonly orderId: string }) => ({
  eventType,
  schemaVersion: "1",
  eventId: `${m.orderId}:${eventType}`
})

// keyed by customer: all of a customer's events stay in order on one partition
export const orderPlaced = Topic.make({
  name: "orders.placed.v1",
  schema: OrderPlacedV1,
  key: (m) => m.customerId,
  headers: headers("OrderPlaced")
})
export const orderShipped = Topic.make({
  name: "orders.shipped.v1",
  schema: OrderShippedV1,
  key: (m) => m.customerId,
  headers: headers("OrderShipped")
})
export const orderCancelled = Topic.make({
  name: "orders.cancelled.v1",
  schema: OrderCancelledV1,
  key: (m) => m.customerId,
  headers: headers("OrderCancelled")
})
