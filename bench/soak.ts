/**
 * `npm run soak`: steady publishing against a real broker (started by the test bed) for SOAK_SECONDS
 * (default 600), with the broker frozen (SIGSTOP) for 1-10 s at random moments. Every 10 s it prints the
 * throughput, the outcomes so far and the process's RSS; at the end it reads the topic back and audits it
 * (count, duplicates, gaps). Not part of `npm test`.
 */
import { Effect, Layer, Schema } from "effect"
import { Batcher, Publisher, Topic } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { TopicAudit, TopicReader } from "effect-kafka-publisher/testing"
import { startCluster } from "../testbed/KafkaCluster.ts"
import { createTopics } from "../testbed/topics.ts"

const seconds = Number(process.env.SOAK_SECONDS ?? 600)
const rate = Number(process.env.SOAK_RATE ?? 2000) // events per second

class Tick extends Schema.Class<Tick>("Tick")({ id: Schema.Int, at: Schema.Number }) {}

const main = async () => {
  const cluster = await startCluster({ nodes: 1 })
  const name = `soak-${Date.now()}`
  await createTopics(cluster.brokers, [{ topic: name, numPartitions: 6 }])
  const topic = Topic.make({
    name,
    schema: Tick,
    key: (t) => `k${t.id % 100}`,
    headers: (t) => ({ eventId: String(t.id) })
  })
  const stats = { offered: 0, delivered: 0, deadLettered: 0, failed: 0, pauses: 0 }
  let last = { delivered: 0, at: Date.now() }
  const report = setInterval(() => {
    const now = Date.now()
    const perSecond = Math.round(((stats.delivered - last.delivered) / (now - last.at)) * 1000)
    last = { delivered: stats.delivered, at: now }
    console.log(
      `${new Date(now).toISOString()} ${perSecond}/s delivered ${stats.delivered} dead-lettered ${stats.deadLettered} failed ${stats.failed} pauses ${stats.pauses} rss ${Math.round(process.memoryUsage().rss / 1048576)} MB`
    )
  }, 10_000)

  const chaos = (async () => {
    const end = Date.now() + seconds * 1000
    while (Date.now() < end - 20_000) {
      await new Promise((r) => setTimeout(r, 20_000 + Math.random() * 40_000))
      const pause = 1000 + Math.random() * 9000
      stats.pauses++
      cluster.pause(1)
      await new Promise((r) => setTimeout(r, pause))
      cluster.resume(1)
    }
  })()

  const program = Effect.gen(function* () {
    const publisher = yield* Publisher.Publisher
    const end = Date.now() + seconds * 1000
    const tickMs = 100
    while (Date.now() < end) {
      const started = Date.now()
      for (let i = 0; i < (rate * tickMs) / 1000; i++) {
        const id = stats.offered++
        yield* Effect.forkDetach(
          Effect.exit(publisher.publish(topic, new Tick({ id, at: Date.now() }))).pipe(
            Effect.tap((exit) =>
              Effect.sync(() => {
                if (exit._tag === "Failure") stats.failed++
                else if (exit.value._tag === "Delivered") stats.delivered++
                else stats.deadLettered++
              })
            )
          )
        )
      }
      yield* Effect.sleep(Math.max(0, tickMs - (Date.now() - started)))
    }
  }).pipe(
    Effect.provide(
      Publisher.layer().pipe(
        Layer.provide(Batcher.layer()),
        Layer.provide(KafkaJsProducer.layer({ brokers: cluster.brokers, clientId: "soak" }))
      )
    )
  )
  await Effect.runPromise(program)
  await chaos
  clearInterval(report)
  const records = await Effect.runPromise(
    TopicReader.readAll({ brokers: cluster.brokers, topic: name, timeout: "5 minutes" })
  )
  const audit = TopicAudit.audit(records, { expect: stats.delivered })
  console.log(
    `soak ${seconds} s: offered ${stats.offered}, delivered ${stats.delivered}, dead-lettered ${stats.deadLettered}, failed ${stats.failed}, pauses ${stats.pauses}; topic holds ${audit.count}, duplicates ${audit.duplicates}, gaps ${audit.gaps.length}: ${audit.ok ? "OK" : "FAILED"}`
  )
  await cluster.stop()
  process.exit(audit.ok ? 0 : 1)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
