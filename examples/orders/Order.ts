/** The demo's domain event and its topic. */
import { Schema } from "effect"
import { Topic } from "effect-kafka-publisher"

export class OrderPlaced extends Schema.Class<OrderPlaced>("OrderPlaced")({
  orderId: Schema.String,
  userId: Schema.String,
  amountCents: Schema.Int.check(Schema.isGreaterThan(0)),
  currency: Schema.Literals(["EUR", "USD"]),
  placedAt: Schema.DateTimeUtcFromString,
  note: Schema.optional(Schema.String)
}) {}

export const ordersTopic = (name = "orders") =>
  Topic.make({
    name,
    schema: OrderPlaced,
    key: (order) => order.userId,
    headers: (order) => ({ eventType: "OrderPlaced", orderId: order.orderId })
  })
