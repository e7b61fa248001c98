/** The order service's commands, its two events and their topics. */
import { Schema } from "effect"
import { Topic } from "effect-kafka-publisher"

/** A command to place an order: what the caller asked for. */
export interface PlaceOrder {
  readonly orderId: string
  readonly userId: string
  readonly amountCents: number
  /** The card the payment is asked of; "declined" is refused after both events are sent (the demo's failure). */
  readonly card: string
}

export class OrderPlaced extends Schema.Class<OrderPlaced>("OrderPlaced")({
  orderId: Schema.String,
  userId: Schema.String,
  amountCents: Schema.Int.check(Schema.isGreaterThan(0))
}) {}

export class PaymentRequested extends Schema.Class<PaymentRequested>("PaymentRequested")({
  orderId: Schema.String,
  amountCents: Schema.Int.check(Schema.isGreaterThan(0)),
  card: Schema.String
}) {}

/** The topics, named `<prefix>orders` and `<prefix>payments`; both carry the order id and this run's id. */
export const topics = (prefix: string, runId: string) => ({
  orders: Topic.make({
    name: `${prefix}orders`,
    schema: OrderPlaced,
    key: (e) => e.orderId,
    headers: (e) => ({ eventType: "OrderPlaced", orderId: e.orderId, runId })
  }),
  payments: Topic.make({
    name: `${prefix}payments`,
    schema: PaymentRequested,
    key: (e) => e.orderId,
    headers: (e) => ({ eventType: "PaymentRequested", orderId: e.orderId, runId })
  })
})
