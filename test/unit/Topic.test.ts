import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { Topic } from "effect-kafka-publisher"
import { failureOf } from "../support/exits.ts"

class Order extends Schema.Class<Order>("Order")({
  orderId: Schema.String,
  userId: Schema.String,
  amountCents: Schema.Int.check(Schema.isGreaterThan(0)),
  placedAt: Schema.DateTimeUtcFromString
}) {}

const orders = Topic.make({
  name: "orders",
  schema: Order,
  key: (order) => order.userId,
  headers: (order) => ({ eventType: "OrderPlaced", orderId: order.orderId })
})

const decoder = new TextDecoder()
const order = (amountCents: number) =>
  new Order(
    {
      orderId: "o-1",
      userId: "user-1",
      amountCents,
      placedAt: Schema.decodeSync(Schema.DateTimeUtcFromString)("2026-11-22T10:00:00.000Z")
    },
    { disableChecks: true }
  )

describe("Topic", () => {
  it.effect("encodes an event to JSON bytes with its key and headers", () =>
    Effect.gen(function* () {
      const record = yield* Topic.encode(orders, order(1250))
      assert.strictEqual(record.topic, "orders")
      assert.strictEqual(decoder.decode(record.key!), "user-1")
      assert.deepStrictEqual(JSON.parse(decoder.decode(record.value!)), {
        orderId: "o-1",
        userId: "user-1",
        amountCents: 1250,
        placedAt: "2026-11-22T10:00:00.000Z"
      })
      assert.deepStrictEqual(record.headers, { eventType: "OrderPlaced", orderId: "o-1" })
    })
  )

  it.effect("an invalid event is a Fatal SchemaInvalid error and nothing is built", () =>
    Effect.gen(function* () {
      const error = failureOf(yield* Effect.exit(Topic.encode(orders, order(-5))))
      assert.strictEqual(error._tag, "Fatal")
      assert.strictEqual(error.reason, "SchemaInvalid")
      assert.strictEqual(error.topic, "orders")
      assert.match(error.message, /amountCents/)
    })
  )

  it.effect("a key function that throws is a Fatal InvalidRecord error", () =>
    Effect.gen(function* () {
      const broken = Topic.make({
        name: "t",
        schema: Schema.String,
        key: () => {
          throw new Error("no key")
        }
      })
      const error = failureOf(yield* Effect.exit(Topic.encode(broken, "x")))
      assert.strictEqual(error.reason, "InvalidRecord")
      assert.match(error.message, /no key/)
    })
  )

  it.effect("a header value that is neither string nor bytes is a Fatal InvalidRecord error", () =>
    Effect.gen(function* () {
      const broken = Topic.make({
        name: "t",
        schema: Schema.String,
        headers: () => ({ count: 3 as unknown as string })
      })
      const error = failureOf(yield* Effect.exit(Topic.encode(broken, "x")))
      assert.strictEqual(error.reason, "InvalidRecord")
      assert.match(error.message, /header "count"/)
    })
  )

  it.effect("the serializer is pluggable: raw bytes pass through", () =>
    Effect.gen(function* () {
      const raw = Topic.make({ name: "raw", schema: Schema.Uint8Array, serializer: Topic.bytes })
      const record = yield* Topic.encode(raw, new Uint8Array([1, 2, 3]))
      assert.deepStrictEqual([...record.value!], [1, 2, 3])
      assert.strictEqual(record.key, null)
    })
  )
})

describe("Topic key and headers types", () => {
  it.effect(
    "issue 18 (smaller): a key function returning a number fails with Fatal InvalidRecord, not a TypeError",
    () =>
      Effect.gen(function* () {
        const numeric = Topic.make({ name: "orders", schema: Order, key: (o) => o.amountCents as unknown as string })
        const error = failureOf(yield* Effect.exit(Topic.encode(numeric, order(5))))
        assert.strictEqual(error._tag, "Fatal")
        assert.strictEqual(error.reason, "InvalidRecord")
        assert.include(error.message, "key")
        assert.include(error.message, "number")
      })
  )
})
