#!/usr/bin/env -S node --disable-warning=TimeoutNegativeWarning
/**
 * The `effect-kafka-publisher` command line:
 *
 *   verify --topic T [--expect N] [--id-header eventId]   read a topic back: count, duplicates, offset gaps
 *   produce --topic T --value V [--key K] [--header k=v]  publish one record (retries and dead-letter included)
 *   dlt --topic T [--dlt-topic T.dlt]                      list dead-lettered records with their headers
 *
 * The broker comes from --brokers or KAFKA_BROKERS (SASL/TLS from the same KAFKA_* variables as
 * `KafkaJsProducer.layerConfig`). `verify` exits 1 when the topic does not hold what was expected.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Config, Console, Effect, Layer, Option } from "effect"
import { Command, Flag } from "effect/cli"
import * as DeadLetter from "../DeadLetter.ts"
import * as KafkaJsProducer from "../kafkajs/KafkaJsProducer.ts"
import * as Publisher from "../Publisher.ts"
import * as TopicAudit from "../reader/TopicAudit.ts"
import * as TopicReader from "../reader/TopicReader.ts"

const brokersFlag = Flag.String("brokers").pipe(
  Flag.withDescription("bootstrap servers, host:port[,host:port]; default: KAFKA_BROKERS"),
  Flag.optional
)

const resolveBrokers = (flag: Option.Option<string>) =>
  Option.match(flag, {
    onSome: (s) => Effect.succeed(s),
    onNone: () =>
      Effect.gen(function* () {
        return yield* Config.String("KAFKA_BROKERS")
      })
  }).pipe(Effect.map((s) => s.split(",").map((b) => b.trim())))

const decoder = new TextDecoder()
const text = (bytes: Uint8Array | null) => (bytes === null ? "(null)" : decoder.decode(bytes))

const verify = Command.make(
  "verify",
  {
    topic: Flag.String("topic").pipe(Flag.withDescription("the topic to read back")),
    expect: Flag.Int("expect").pipe(Flag.withDescription("expected number of records"), Flag.optional),
    idHeader: Flag.String("id-header").pipe(Flag.withDefault("eventId")),
    brokers: brokersFlag
  },
  (options) =>
    Effect.gen(function* () {
      const brokers = yield* resolveBrokers(options.brokers)
      yield* Console.error(`reading ${options.topic} from ${brokers.join(",")} ...`)
      const records = yield* TopicReader.readAll({ brokers, topic: options.topic })
      const report = TopicAudit.audit(records, {
        expect: Option.getOrUndefined(options.expect),
        idHeader: options.idHeader
      })
      for (const p of report.partitions) {
        yield* Console.log(`partition ${p.partition}: ${p.count} records, offsets ${p.first}..${p.last}`)
      }
      yield* Console.log(
        `count ${report.count}${report.expected === undefined ? "" : ` (expected ${report.expected})`}, duplicates ${report.duplicates}, gaps ${report.gaps.length}`
      )
      for (const gap of report.gaps) {
        yield* Console.log(`  gap in partition ${gap.partition}: after ${gap.after}, next ${gap.next}`)
      }
      for (const id of report.duplicateIds) yield* Console.log(`  duplicate: ${id}`)
      yield* Console.log(report.ok ? "OK" : "FAILED")
      // the report above says why; the exit code says whether the topic holds what was expected
      if (!report.ok) yield* Effect.sync(() => process.exit(1))
    })
).pipe(Command.withDescription("Read a topic back and check count, duplicates and offset gaps"))

const produce = Command.make(
  "produce",
  {
    topic: Flag.String("topic"),
    value: Flag.String("value"),
    key: Flag.String("key").pipe(Flag.optional),
    header: Flag.KeyValuePair("header").pipe(Flag.withDefault({})),
    brokers: brokersFlag
  },
  (options) =>
    Effect.gen(function* () {
      const brokers = yield* resolveBrokers(options.brokers)
      const receipt = yield* Publisher.Publisher.use((publisher) =>
        publisher.publishRecord({
          topic: options.topic,
          key: Option.match(options.key, { onNone: () => null, onSome: (k) => Buffer.from(k) }),
          value: Buffer.from(options.value),
          headers: options.header
        })
      ).pipe(Effect.provide(Publisher.layer().pipe(Layer.provide(KafkaJsProducer.layerConfig({ brokers })))))
      yield* Console.log(
        receipt._tag === "Delivered"
          ? `delivered ${receipt.topic} partition ${receipt.partition} offset ${receipt.offset}`
          : `dead-lettered to ${receipt.deadLetterTopic} partition ${receipt.partition} offset ${receipt.offset}: ${DeadLetter.errorType(receipt.error)} ${receipt.error.message}`
      )
    })
).pipe(Command.withDescription("Publish one record"))

const dlt = Command.make(
  "dlt",
  {
    topic: Flag.String("topic").pipe(Flag.withDescription("the original topic")),
    dltTopic: Flag.String("dlt-topic").pipe(Flag.optional),
    brokers: brokersFlag
  },
  (options) =>
    Effect.gen(function* () {
      const brokers = yield* resolveBrokers(options.brokers)
      const topic = Option.getOrElse(options.dltTopic, () => DeadLetter.defaultTopicName(options.topic))
      const records = yield* TopicReader.readAll({ brokers, topic })
      for (const r of records) {
        yield* Console.log(`${topic} partition ${r.partition} offset ${r.offset} key ${text(r.key)}`)
        for (const [name, value] of Object.entries(r.headers)) yield* Console.log(`  ${name}: ${text(value)}`)
      }
      yield* Console.log(`${records.length} dead-lettered record(s) in ${topic}`)
    })
).pipe(Command.withDescription("List dead-lettered records with their headers"))

export const cli = Command.make("effect-kafka-publisher").pipe(
  Command.withDescription("Publish to Kafka and check what a topic holds"),
  Command.withSubcommands([verify, produce, dlt])
)

if (import.meta.main) {
  Command.run(cli, { version: "0.1.0" }).pipe(Effect.provide(NodeServices.layer), NodeRuntime.runMain)
}
