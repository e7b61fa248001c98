/**
 * Reads a topic back from a real broker, from the beginning up to the end offsets it had when the read
 * started: what tests, the `verify` command and users checking a deployment need to prove what was written.
 *
 * It asks the broker for each partition's end offset first, then consumes until every partition reached
 * it, so it never waits on an idle timeout to decide it is done.
 */
import { Data, Duration, Effect, Schedule } from "effect"
import kafkajs from "kafkajs"
import { compressionType } from "../kafkajs/compressionCodecs.ts"

export interface ReadRecord {
  readonly topic: string
  readonly partition: number
  readonly offset: string
  readonly key: Uint8Array | null
  readonly value: Uint8Array | null
  readonly headers: Readonly<Record<string, Uint8Array>>
  readonly timestamp: number
}

export class ReadFailed extends Data.TaggedError("ReadFailed")<{
  readonly message: string
  readonly topic: string
  readonly cause?: unknown
}> {}

export interface Options {
  readonly brokers: ReadonlyArray<string>
  readonly topic: string
  /** Give up after this long. Default 60 s. */
  readonly timeout?: Duration.Input | undefined
  /** Extra kafkajs client options (ssl, sasl). */
  readonly client?: Partial<kafkajs.KafkaConfig> | undefined
}

const headerBytes = (headers: kafkajs.IHeaders | undefined): Record<string, Uint8Array> => {
  const out: Record<string, Uint8Array> = {}
  for (const [name, value] of Object.entries(headers ?? {})) {
    const last = Array.isArray(value) ? value[value.length - 1] : value
    if (last !== undefined) out[name] = typeof last === "string" ? Buffer.from(last) : last
  }
  return out
}

/** Every record of the topic, ordered by partition then offset. */
export const readAll = (options: Options): Effect.Effect<ReadonlyArray<ReadRecord>, ReadFailed> => {
  compressionType("none") // registers the snappy and zstd codecs, so compressed batches can be read
  const timeout = Duration.fromInputUnsafe(options.timeout ?? Duration.seconds(60))
  const fail = (message: string) => (cause: unknown) => new ReadFailed({ message, topic: options.topic, cause })
  const kafka = new kafkajs.Kafka({
    clientId: "effect-kafka-publisher-reader",
    brokers: [...options.brokers],
    logLevel: kafkajs.logLevel.NOTHING,
    ...options.client
  })
  return Effect.scoped(
    Effect.gen(function* () {
      const admin = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            const admin = kafka.admin()
            await admin.connect()
            return admin
          },
          catch: fail("cannot connect")
        }),
        (admin) => Effect.promise(() => admin.disconnect())
      )
      // right after a topic is created or a leader moves, a broker can answer NOT_LEADER for a moment
      const offsets = yield* Effect.tryPromise({
        try: () => admin.fetchTopicOffsets(options.topic),
        catch: fail("cannot fetch the end offsets")
      }).pipe(
        Effect.retry({
          schedule: Schedule.spaced("200 millis"),
          times: 25,
          while: (error) => (error.cause as { retriable?: unknown } | undefined)?.retriable === true
        })
      )
      // next offset to reach per partition
      const remaining = new Map(
        offsets.filter((o) => BigInt(o.high) > BigInt(o.low)).map((o) => [o.partition, BigInt(o.high)] as const)
      )
      if (remaining.size === 0) return []
      const consumer = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            const consumer = kafka.consumer({
              groupId: `reader-${options.topic}-${Date.now()}-${Math.random().toString(36).slice(2)}`
            })
            await consumer.connect()
            await consumer.subscribe({ topic: options.topic, fromBeginning: true })
            return consumer
          },
          catch: fail("cannot start the consumer")
        }),
        (consumer) => Effect.promise(() => consumer.disconnect())
      )
      const records: Array<ReadRecord> = []
      yield* Effect.callback<void, ReadFailed>((resume) => {
        consumer
          .run({
            eachBatchAutoResolve: true,
            eachBatch: async ({ batch }) => {
              const end = remaining.get(batch.partition)
              for (const m of batch.messages) {
                if (end === undefined || BigInt(m.offset) >= end) continue
                records.push({
                  topic: batch.topic,
                  partition: batch.partition,
                  offset: m.offset,
                  key: m.key,
                  value: m.value,
                  headers: headerBytes(m.headers),
                  timestamp: Number(m.timestamp)
                })
              }
              const last = batch.messages.at(-1)
              if (end !== undefined && last !== undefined && BigInt(last.offset) + 1n >= end) {
                remaining.delete(batch.partition)
                if (remaining.size === 0) resume(Effect.void)
              }
            }
          })
          .catch((cause) => resume(Effect.fail(fail("consumer failed")(cause))))
      }).pipe(
        Effect.timeoutOrElse({
          duration: timeout,
          orElse: () =>
            Effect.fail(
              new ReadFailed({
                topic: options.topic,
                message: `read ${records.length} records, partitions ${[...remaining.keys()].join(",")} not read to the end within ${Duration.format(timeout)}`
              })
            )
        })
      )
      return records.sort((a, b) =>
        a.partition !== b.partition ? a.partition - b.partition : Number(BigInt(a.offset) - BigInt(b.offset))
      )
    })
  )
}
