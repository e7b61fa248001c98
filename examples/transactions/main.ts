/**
 * Kafka transactions: `npm run example:transactions`.
 *
 * An order service that, per `PlaceOrder` command, publishes `OrderPlaced` to `orders` and
 * `PaymentRequested` to `payments` in one transaction (`TransactionalPublisher.transaction`). The first
 * command commits; the second is refused after both of its events were sent (the card is declined), so its
 * transaction aborts. Then a read_committed reader shows what a consumer sees: the first order on both
 * topics, nothing of the second; a read_uncommitted reader shows that the aborted records are in the log.
 *
 * No KAFKA_BROKERS: the embedded in-memory broker (FakeKafka's transactional producer). KAFKA_BROKERS=host:port:
 * that broker (topics created; KAFKA_DRIVER=platformatic for the second driver; KAFKA_TRANSACTIONAL_ID, default
 * orders-service). TOPIC_PREFIX names other topics (`<prefix>orders`, `<prefix>payments`); the readers show
 * only this run's records (header runId). The last line is a JSON summary; exit 0 when the read_committed
 * reader saw exactly the committed order on both topics, 1 otherwise.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { type Cause, Config, Data, Effect, Layer, Logger, Option } from "effect"
import { Publisher, type Receipt, TransactionalPublisher } from "effect-kafka-publisher"
import { FakeKafka, TopicReader } from "effect-kafka-publisher/testing"
import { brokersFromEnv, driverName, transactionalDriverLayer } from "../shared/broker.ts"
import { ensureTopics } from "../shared/topics.ts"
import { OrderPlaced, PaymentRequested, type PlaceOrder, topics } from "./Events.ts"

const runId = `${Date.now()}-${process.pid}`
const prefix = process.env.TOPIC_PREFIX ?? ""
const { orders, payments } = topics(prefix, runId)

/** The business refusal that aborts a transaction after its events were sent. */
class PaymentDeclined extends Data.TaggedError("PaymentDeclined")<{ readonly orderId: string }> {}

const commands: ReadonlyArray<PlaceOrder> = [
  { orderId: "order-1", userId: "user-1", amountCents: 1250, card: "visa-4242" },
  { orderId: "order-2", userId: "user-2", amountCents: 9900, card: "declined" }
]

/** Both events of one command in one transaction: committed together, or aborted together. */
const placeOrder = (command: PlaceOrder) =>
  Effect.gen(function* () {
    const txp = yield* TransactionalPublisher.TransactionalPublisher
    return yield* txp.transaction(
      Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const order = yield* publisher.publish(orders, new OrderPlaced(command))
        const payment = yield* publisher.publish(payments, new PaymentRequested(command))
        // refused after both sends: the records are in the log, the abort hides them from read_committed
        if (command.card === "declined") return yield* new PaymentDeclined({ orderId: command.orderId })
        return [order, payment] as const
      })
    )
  })

const where = (receipt: Receipt.Receipt) =>
  receipt._tag === "Delivered" ? `${receipt.topic} p${receipt.partition}@${receipt.offset}` : receipt._tag

type Isolation = "read_committed" | "read_uncommitted"
type Reader<R> = (
  topic: string,
  isolation: Isolation
) => Effect.Effect<ReadonlyArray<TopicReader.ReadRecord>, unknown, R>

const decoder = new TextDecoder()
const header = (record: TopicReader.ReadRecord, name: string) => {
  const value = record.headers[name]
  return value === undefined ? undefined : decoder.decode(value)
}

/** The order ids of this run's records in `topic`, as a reader at `isolation` sees them. */
const seen = <R>(read: Reader<R>, topic: string, isolation: Isolation) =>
  Effect.map(read(topic, isolation), (records) =>
    records
      .filter((r) => header(r, "runId") === runId)
      .map((r) => header(r, "orderId") ?? "?")
      .sort()
  )

const demo = <R>(read: Reader<R>) =>
  Effect.gen(function* () {
    const committed: Array<string> = []
    const aborted: Array<string> = []
    for (const command of commands) {
      const exit = yield* Effect.exit(placeOrder(command))
      if (exit._tag === "Success") {
        committed.push(command.orderId)
        console.log(`${command.orderId}: committed (${exit.value.map(where).join(", ")})`)
      } else {
        aborted.push(command.orderId)
        console.log(`${command.orderId}: aborted (${describe(exit.cause)}); neither event is visible`)
      }
    }
    const view = (isolation: Isolation) =>
      Effect.all({ orders: seen(read, orders.name, isolation), payments: seen(read, payments.name, isolation) })
    const readCommitted = yield* view("read_committed")
    const readUncommitted = yield* view("read_uncommitted")
    console.log("\na read_committed consumer sees:")
    console.log(`  ${orders.name}: ${readCommitted.orders.join(", ") || "(nothing)"}`)
    console.log(`  ${payments.name}: ${readCommitted.payments.join(", ") || "(nothing)"}`)
    console.log(
      `a read_uncommitted consumer sees the aborted records too: ${orders.name} ${readUncommitted.orders.join(", ")}; ${payments.name} ${readUncommitted.payments.join(", ")}`
    )
    console.log(JSON.stringify({ committed, aborted, readCommitted, readUncommitted }))
    const expected = JSON.stringify(committed)
    if (JSON.stringify(readCommitted.orders) !== expected || JSON.stringify(readCommitted.payments) !== expected) {
      return yield* Effect.fail(new Error("the read_committed reader saw other than the committed orders"))
    }
  })

const describe = (cause: Cause.Cause<{ readonly _tag: string; readonly message: string }>) => {
  const reason = cause.reasons[0]
  if (reason?._tag !== "Fail") return "defect or interruption"
  return reason.error._tag === "PaymentDeclined" ? "payment declined" : `${reason.error._tag}: ${reason.error.message}`
}

const main = Effect.gen(function* () {
  const transactionalId = yield* Config.String("KAFKA_TRANSACTIONAL_ID").pipe(Config.withDefault("orders-service"))
  const brokers = yield* brokersFromEnv
  if (Option.isNone(brokers)) {
    console.error("broker: embedded in-memory Kafka (set KAFKA_BROKERS to use a real one)")
    const fromFake: Reader<FakeKafka.FakeKafka> = (topic, isolation) =>
      FakeKafka.FakeKafka.use((fake) => fake.records(topic, { isolation }))
    const embedded = TransactionalPublisher.layer().pipe(
      Layer.provideMerge(FakeKafka.layerTransactional({ transactionalId })),
      Layer.provideMerge(
        FakeKafka.layer({ topics: { [orders.name]: { partitions: 3 }, [payments.name]: { partitions: 3 } } })
      )
    )
    return yield* demo(fromFake).pipe(Effect.provide(embedded))
  }
  console.error(`broker: ${brokers.value.join(",")} (${yield* driverName} driver, transactional id ${transactionalId})`)
  yield* ensureTopics(brokers.value, [
    { name: orders.name, partitions: 3 },
    { name: payments.name, partitions: 3 }
  ])
  const fromBroker: Reader<never> = (topic, isolation) =>
    TopicReader.readAll({ brokers: brokers.value, topic, isolation, timeout: "30 seconds" })
  return yield* demo(fromBroker).pipe(
    Effect.provide(TransactionalPublisher.layer().pipe(Layer.provide(transactionalDriverLayer(transactionalId))))
  )
})

main.pipe(Effect.provideService(Logger.LogToStderr, true), NodeRuntime.runMain)
