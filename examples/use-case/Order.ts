/** The domain: orders as the ordering service knows them. Nothing here knows about Kafka. */
export interface OrderLine {
  readonly sku: string
  readonly quantity: number
  readonly unitPriceCents: number
}

export interface Order {
  readonly id: string
  readonly customer: { readonly id: string; readonly email: string }
  readonly lines: ReadonlyArray<OrderLine>
  readonly currency: "EUR" | "USD"
  readonly placedAt: Date
}

/** What happened to an order: the domain events the use case publishes. */
export type OrderEvent =
  | { readonly _tag: "OrderPlaced"; readonly order: Order }
  | { readonly _tag: "OrderShipped"; readonly order: Order; readonly carrier: string; readonly shippedAt: Date }
  | { readonly _tag: "OrderCancelled"; readonly order: Order; readonly reason: string; readonly cancelledAt: Date }

export const totalCents = (order: Order): number =>
  order.lines.reduce((sum, line) => sum + line.quantity * line.unitPriceCents, 0)
