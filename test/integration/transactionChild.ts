// A publishing process of the transaction fault tests (transaction-faults.integration.test.ts), run as its own
// Node process:
// - kill -9 test (default): commits a transaction of 3 records, opens a second one, sends 10 records into it
//   (each answered by the broker, so in the log), prints "sent 10" and waits, the transaction open, to be killed.
// - MODE=loop (the fencing test): one transaction of one record (n = 1, 2, ...) after the other, printing
//   "committed <n>" or "failed <n> <_tag> <reason>"; after 3 failures in a row it prints "done" and exits.
//
//   DRIVER=kafkajs|platformatic BROKERS=h:p,... TOPIC=t TRANSACTIONAL_ID=id TRANSACTION_TIMEOUT_MS=3000 [MODE=loop]
import { Duration, Effect, Layer, Schema } from "effect"
import { Publisher, Topic, TransactionalPublisher } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"

const env = (name: string): string => {
  const value = process.env[name]
  if (value === undefined) throw new Error(`transactionChild needs ${name}`)
  return value
}

const config = {
  brokers: env("BROKERS").split(","),
  clientId: "txn-child",
  transactionalId: env("TRANSACTIONAL_ID"),
  transactionTimeout: Duration.millis(Number(env("TRANSACTION_TIMEOUT_MS")))
}
const driver =
  env("DRIVER") === "kafkajs"
    ? KafkaJsProducer.layerTransactional(config)
    : PlatformaticProducer.layerTransactional(config)
const events = Topic.make({ name: env("TOPIC"), schema: Schema.Struct({ n: Schema.Number }) })
const numbers = (from: number, count: number) => Array.from({ length: count }, (_, i) => ({ n: from + i }))
const say = (line: string) => Effect.sync(() => process.stdout.write(`${line}\n`))

const loop = Effect.gen(function* () {
  const txp = yield* TransactionalPublisher.TransactionalPublisher
  let failures = 0
  for (let n = 1; failures < 3; n++) {
    const exit = yield* Effect.exit(
      txp.transaction(Effect.flatMap(Publisher.Publisher, (p) => p.publish(events, { n })))
    )
    if (exit._tag === "Success") {
      failures = 0
      yield* say(`committed ${n}`)
    } else {
      failures++
      const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
      const error = (reason?._tag === "Fail" ? reason.error : {}) as { _tag?: string; reason?: string }
      yield* say(`failed ${n} ${error._tag} ${error.reason}`)
    }
    yield* Effect.sleep("100 millis")
  }
  yield* say("done")
})

const program =
  process.env.MODE === "loop"
    ? loop
    : Effect.gen(function* () {
        const txp = yield* TransactionalPublisher.TransactionalPublisher
        yield* txp.transaction(Effect.flatMap(Publisher.Publisher, (p) => p.publishAll(events, numbers(1, 3))))
        yield* say("committed 3")
        yield* txp.transaction(
          Effect.gen(function* () {
            const publisher = yield* Publisher.Publisher
            yield* publisher.publishAll(events, numbers(100, 10))
            yield* say("sent 10")
            return yield* Effect.never
          })
        )
      })

Effect.runPromise(program.pipe(Effect.provide(TransactionalPublisher.layer().pipe(Layer.provide(driver))))).catch(
  (error: unknown) => {
    process.stderr.write(`transactionChild failed: ${String(error)}\n`)
    process.exit(1)
  }
)
