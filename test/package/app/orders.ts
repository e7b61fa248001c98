// The part both apps share: a Schema-typed topic and a run on FakeKafka that checks every receipt. Written
// as a user writes it (imports by package name, ".js" relative imports, no repo-only settings).
import { Effect, Layer, Schema } from "effect"
import { Publisher, Receipt, Topic } from "effect-kafka-publisher"
import { FakeKafka } from "effect-kafka-publisher/testing"

export class OrderPlaced extends Schema.Class<OrderPlaced>("OrderPlaced")({
  orderId: Schema.String,
  userId: Schema.String,
  amountCents: Schema.Int
}) {}

// the key decides the partition: one user's orders stay in order
export const orders = Topic.make({ name: "orders", schema: OrderPlaced, key: (order) => order.userId })

const events = Array.from(
  { length: 6 },
  (_, i) => new OrderPlaced({ orderId: `o-${i + 1}`, userId: `user-${i % 3}`, amountCents: 100 * (i + 1) })
)

const program = Effect.gen(function* () {
  const publisher = yield* Publisher.Publisher
  const fake = yield* FakeKafka.FakeKafka
  const one = yield* publisher.publish(orders, events[0]!)
  const rest = yield* publisher.publishAll(orders, events.slice(1), { concurrency: 1 })
  const stored = yield* fake.records(orders.name)
  return { receipts: [one, ...rest], stored }
})

const check = (condition: boolean, what: string) => {
  if (!condition) throw new Error(`package test: ${what}`)
}

/**
 * Publishes the events on FakeKafka (3 partitions) through the Publisher, with `extra` beside it (telemetry,
 * say), and checks the receipts.
 */
export const runOnFakeKafka = async <E>(app: string, extra: Layer.Layer<never, E> = Layer.empty): Promise<void> => {
  const fakeKafka = FakeKafka.layer({ topics: { orders: { partitions: 3 } } })
  const live = Layer.merge(Publisher.layer().pipe(Layer.provideMerge(fakeKafka)), extra)
  const { receipts, stored } = await Effect.runPromise(program.pipe(Effect.provide(live)))
  const delivered = receipts.filter(Receipt.isDelivered)
  check(delivered.length === events.length, `${delivered.length} of ${events.length} receipts are Delivered`)
  check(
    delivered.every((r) => r.topic === "orders" && r.attempts === 1 && !r.possibleDuplicate),
    "every receipt: topic orders, 1 attempt"
  )
  const partitions = new Set(delivered.map((r) => r.partition))
  check(partitions.size > 1, "the keys spread over partitions")
  for (const partition of partitions) {
    const offsets = delivered.filter((r) => r.partition === partition).map((r) => r.offset)
    check(
      offsets.every((offset, i) => offset === String(i)),
      `partition ${partition}: offsets 0.. in publish order (${offsets})`
    )
  }
  check(stored.length === events.length, `FakeKafka stored ${stored.length} records`)
  console.log(
    `${app}: ${delivered.length} events Delivered on FakeKafka (partitions ${[...partitions].sort().join(", ")})`
  )
}
