// Issue 16.1 on the real broker: dead letters of a topic that refused them (too large) are redriven once the
// topic is fixed (max.message.bytes raised); a second run sends nothing again; a --where filter leaves other
// dead letters alone; a record still too large goes back to the dead-letter topic with its history, and
// --max-redrives stops it. The counts of each run are printed.
import { assert, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Publisher, Redrive } from "effect-kafka-publisher"
import { KafkaJsProducer } from "effect-kafka-publisher/kafkajs"
import { TopicReader } from "effect-kafka-publisher/testing"
import kafkajs from "kafkajs"
import { counts } from "../support/redrive.ts"
import { runCli } from "../support/runCli.ts"
import { bootstrapServers, describeWithKafka } from "./broker.ts"
import { createTopic } from "./realHarness.ts"

const bytes = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array | null | undefined) => (b == null ? undefined : new TextDecoder().decode(b))

const raiseMaxMessageBytes = (brokers: Array<string>, topic: string, value: number) =>
  Effect.promise(async () => {
    const admin = new kafkajs.Kafka({ brokers, logLevel: kafkajs.logLevel.NOTHING }).admin()
    await admin.connect()
    try {
      await admin.alterConfigs({
        validateOnly: false,
        resources: [
          {
            type: kafkajs.ConfigResourceTypes.TOPIC,
            name: topic,
            configEntries: [{ name: "max.message.bytes", value: String(value) }]
          }
        ]
      })
    } finally {
      await admin.disconnect()
    }
  })

describeWithKafka("Redrive on the real broker (issue 16.1)", () => {
  it.live(
    "after a fix: sent once, a second run sends nothing, a filter, a record failing again goes back with history",
    () =>
      Effect.gen(function* () {
        const brokers = bootstrapServers()
        const topic = `redrive-${Date.now()}`
        const dlt = `${topic}.dlt`
        yield* createTopic(brokers, topic, { partitions: 1, maxMessageBytes: 1_000 })
        yield* createTopic(brokers, dlt, { partitions: 1 })
        const driver = KafkaJsProducer.layer({ brokers })
        const publish = (records: ReadonlyArray<{ value: string; headers?: Record<string, string> }>, to = topic) =>
          Publisher.Publisher.use((p) =>
            Effect.forEach(records, (r, i) =>
              p.publishRecord({ topic: to, key: bytes(`k${i}`), value: bytes(r.value), headers: r.headers ?? {} })
            )
          ).pipe(Effect.provide(Publisher.layer().pipe(Layer.provide(driver))))
        // three refused (too large), and one dead letter of another kind written straight to the DLT
        const receipts = yield* publish([
          { value: "a".repeat(3_000) },
          { value: "b".repeat(3_000) },
          { value: "d".repeat(20_000) }
        ])
        assert.deepStrictEqual(
          receipts.map((r) => r._tag),
          ["DeadLettered", "DeadLettered", "DeadLettered"]
        )
        yield* publish([{ value: "c", headers: { originalTopic: topic, errorType: "Fatal.SchemaInvalid" } }], dlt)

        yield* raiseMaxMessageBytes(brokers, topic, 10_000) // the fix: d (20 kB) is still too large
        const source = Redrive.brokerSource({ brokers })
        const options = { deadLetterTopic: dlt, filters: [Redrive.parseFilter("errorType=Fatal.RecordToo*")!] }
        const redrive = Redrive.run(source, options).pipe(Effect.provide(driver))

        const first = yield* redrive
        console.log(`redrive run 1 (${Redrive.summarize(first)})`)
        assert.deepStrictEqual(counts(first), { read: 4, sent: 2, deadLetteredAgain: 1, failed: 0, skipped: 1 })
        assert.strictEqual(first.skipped.filtered, 1)

        const second = yield* redrive
        console.log(`redrive run 2 (${Redrive.summarize(second)})`)
        assert.deepStrictEqual(counts(second), { read: 5, sent: 0, deadLetteredAgain: 1, failed: 0, skipped: 4 })
        assert.strictEqual(second.skipped.alreadyRedriven, 3)

        const delivered = yield* TopicReader.readAll({ brokers, topic })
        assert.deepStrictEqual(
          delivered.map((r) => [text(r.value)?.[0], text(r.headers.redrivenFrom)]),
          [
            ["a", `${dlt}/0/0`],
            ["b", `${dlt}/0/1`]
          ]
        )
        const letters = yield* TopicReader.readAll({ brokers, topic: dlt })
        const last = letters[letters.length - 1]!
        assert.strictEqual(text(last.headers.redrivenFrom), `${dlt}/0/4`)
        assert.strictEqual(text(last.headers.redriveCount), "2")
        assert.strictEqual(text(last.headers.previousErrorTypes), "Fatal.RecordTooLarge,Fatal.RecordTooLarge")
        assert.strictEqual(text(last.headers.errorType), "Fatal.RecordTooLarge")

        // the CLI: a dry run in JSON, then the rest without a filter, at most 2 redrives
        const env = { KAFKA_BROKERS: brokers.join(",") }
        const dry = yield* Effect.promise(() =>
          runCli(["dlt", "replay", "--topic", dlt, "--max-redrives", "2", "--dry-run", "--json"], env)
        )
        console.log(`redrive CLI dry run: ${dry.stdout.trim()}`)
        assert.strictEqual(dry.code, 0, dry.stderr)
        const planned = JSON.parse(dry.stdout)
        assert.deepStrictEqual(
          [planned.read, planned.sent, planned.skipped],
          [6, 0, { alreadyRedriven: 4, maxRedrives: 1 }]
        )
        const wouldSend = planned.wouldSend.map((w: { from: string }) => w.from)
        assert.deepStrictEqual(wouldSend, [`${dlt}/0/3`])
        // the last redrive allowed for d: it fails again, so exit 1; progress lines on stderr (not a TTY)
        const replay = yield* Effect.promise(() =>
          runCli(["dlt", "replay", "--topic", dlt, "--max-redrives", "3", "--progress-interval", "0"], env)
        )
        console.log(`redrive CLI run 3: ${replay.stdout.trim()} (exit ${replay.code})`)
        assert.strictEqual(replay.code, 1, replay.stderr)
        assert.match(
          replay.stdout,
          /^read 6, sent 1, dead-lettered again 1, failed 0, skipped 4 \(alreadyRedriven 4\)$/m
        )
        assert.match(replay.stderr, new RegExp(`^reading ${dlt}: 6/6 records, \\d+/s`, "m"))
        assert.strictEqual((yield* TopicReader.readAll({ brokers, topic })).length, 3)
      }),
    60_000
  )
})
