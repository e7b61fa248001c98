/**
 * A driver-level load for the fault suites that keeps several sends in flight, as a pipelined bulk publish
 * does, and checks what the `Producer` contract promises of it: each send's records carry a sequence number
 * per key, taken when the send is called, so the topic must hold every key's records in call order; nothing
 * is written twice (nobody resends here: a copy could only come from the driver); a record reported written
 * is where its receipt says, one reported "notWritten" is not in the topic; and the ordered-failure property:
 * a record "notWritten" holds back the later records of its key whose send was called before its own send
 * returned. The topic may hold another load's records too (values that are not this load's tags are skipped).
 *
 *   const sends = yield* pipelinedSends(producer, topic, { sends: 200 })   // beside a fault
 *   const audit = yield* auditSends(brokers, topic, sends)
 *   assertSendInvariants("kafkajs", audit)
 */
import { assert } from "@effect/vitest"
import { Effect, Exit, type Layer } from "effect"
import { TopicReader } from "effect-kafka-publisher/testing"
import { Producer, type RecordMetadata } from "../../src/Producer.ts"
import type { PublishError, RecordOutcome } from "../../src/PublishError.ts"

/** One record's identity: its key and its place among the key's records (call order). */
interface Tag {
  readonly key: string
  readonly seq: number
}

/** One send of the load: when it was called and returned (one clock for both), its records, its answer. */
export interface SentBatch {
  readonly calledAt: number
  readonly returnedAt: number
  readonly tags: ReadonlyArray<Tag>
  readonly exit: Exit.Exit<ReadonlyArray<RecordMetadata>, PublishError>
}

/** The load's shape; every field has a default. */
export interface LoadOptions {
  /** Sends in all. Default 200. */
  readonly sends?: number
  /** Records per send. Default 4. */
  readonly perSend?: number
  /** Keys the records go round (11 keys over 3 partitions by default). Default 11. */
  readonly keys?: number
  /** The keys' prefix: two loads on one topic need their own. Default "k". */
  readonly keyPrefix?: string
  /** Sends called and not returned, at most. Default 8 (more than the 5 requests a broker takes). */
  readonly concurrency?: number
  /** Each fiber's wait before its next send. Default 40 ms (about 200 sends a second). */
  readonly pauseMs?: number
}

/** Runs the load: `concurrency` fibers, each sending after `pauseMs`, the records numbered per key at the call. */
export const pipelinedSends = (producer: Producer, topic: string, options: LoadOptions = {}) =>
  Effect.gen(function* () {
    const perSend = options.perSend ?? 4
    const keys = options.keys ?? 11
    const prefix = options.keyPrefix ?? "k"
    let clock = 0
    let next = 0
    const seqs = new Map<string, number>()
    const batches: Array<SentBatch> = []
    yield* Effect.forEach(
      Array.from({ length: options.sends ?? 200 }),
      () =>
        Effect.gen(function* () {
          yield* Effect.sleep(`${options.pauseMs ?? 40} millis`)
          const tags = Array.from({ length: perSend }, () => {
            const key = `${prefix}${next++ % keys}`
            const seq = seqs.get(key) ?? 0
            seqs.set(key, seq + 1)
            return { key, seq }
          })
          const records = tags.map((tag) => ({
            topic,
            key: Buffer.from(tag.key),
            value: Buffer.from(JSON.stringify(tag)),
            headers: {}
          }))
          const calledAt = ++clock
          const exit = yield* Effect.exit(producer.send(records))
          batches.push({ calledAt, returnedAt: ++clock, tags, exit })
        }),
      { concurrency: options.concurrency ?? 8, discard: true }
    )
    return batches
  })

/** What the topic holds against what the sends answered. */
export interface SendAudit {
  readonly sends: number
  readonly records: number
  readonly written: number
  readonly notWritten: number
  readonly unknown: number
  /** Sends called while another one was in flight. */
  readonly overlapped: number
  /** Records reported written that are not where their receipt says. */
  readonly lost: number
  /** Extra copies in the topic (nobody resent anything). */
  readonly duplicates: number
  /** Records reported "notWritten" that are in the topic. */
  readonly silentlyWritten: number
  /** Records of a key that come after a later record of the same key. */
  readonly outOfOrder: number
  /** Records in the topic although an earlier record of their key, from a send they overlapped, is "notWritten". */
  readonly writtenAheadOfFailure: number
}

const outcomeOf = (exit: SentBatch["exit"], i: number): RecordOutcome => {
  if (Exit.isSuccess(exit)) return exit.value[i]!
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")?.error
  if (error === undefined) return "unknown" // a defect or an interruption: nothing is known
  const outcome = error.outcomes?.[i]
  if (outcome !== undefined) return outcome
  return error._tag === "Retriable" && error.ambiguous ? "unknown" : "notWritten"
}

/** Reads the topic back and checks it against the sends' answers. */
export const auditSends = (brokers: ReadonlyArray<string>, topic: string, batches: ReadonlyArray<SentBatch>) =>
  Effect.gen(function* () {
    const read = yield* TopicReader.readAll({ brokers, topic })
    const decoder = new TextDecoder()
    const ourKeys = new Set(batches.flatMap((b) => b.tags.map((tag) => tag.key)))
    const id = (tag: Tag) => `${tag.key}/${tag.seq}`
    const copies = new Map<string, number>()
    const at = new Map<string, string>()
    let outOfOrder = 0
    const last = new Map<string, number>()
    for (const r of read) {
      const tag = JSON.parse(decoder.decode(r.value!)) as Partial<Tag>
      // another load's records may share the topic (a fault aimed at one partition's leader): not ours
      if (typeof tag.key !== "string" || typeof tag.seq !== "number" || !ourKeys.has(tag.key)) continue
      const ours = tag as Tag
      copies.set(id(ours), (copies.get(id(ours)) ?? 0) + 1)
      at.set(`${r.partition}/${r.offset}`, id(ours))
      // a key is on one partition, read in offset order
      if ((last.get(ours.key) ?? -1) >= ours.seq) outOfOrder++
      last.set(ours.key, Math.max(last.get(ours.key) ?? -1, ours.seq))
    }
    let written = 0
    let notWritten = 0
    let unknown = 0
    let lost = 0
    let silentlyWritten = 0
    const failedBy = new Map<string, Array<{ readonly seq: number; readonly returnedAt: number }>>()
    for (const batch of batches)
      batch.tags.forEach((tag, i) => {
        const outcome = outcomeOf(batch.exit, i)
        if (outcome === "unknown") unknown++
        else if (outcome === "notWritten") {
          notWritten++
          if ((copies.get(id(tag)) ?? 0) > 0) silentlyWritten++
          const list = failedBy.get(tag.key) ?? []
          list.push({ seq: tag.seq, returnedAt: batch.returnedAt })
          failedBy.set(tag.key, list)
        } else {
          written++
          if (at.get(`${outcome.partition}/${outcome.offset}`) !== id(tag)) lost++
        }
      })
    let writtenAheadOfFailure = 0
    for (const batch of batches)
      for (const tag of batch.tags) {
        if ((copies.get(id(tag)) ?? 0) === 0) continue
        const earlier = failedBy.get(tag.key) ?? []
        if (earlier.some((f) => f.seq < tag.seq && batch.calledAt < f.returnedAt)) writtenAheadOfFailure++
      }
    const sorted = [...batches].sort((x, y) => x.calledAt - y.calledAt)
    const overlapped = sorted.filter((b, i) => sorted.slice(0, i).some((a) => a.returnedAt > b.calledAt)).length
    return {
      sends: batches.length,
      records: written + notWritten + unknown,
      written,
      notWritten,
      unknown,
      overlapped,
      lost,
      duplicates: [...copies.values()].reduce((n, c) => n + c - 1, 0),
      silentlyWritten,
      outOfOrder,
      writtenAheadOfFailure
    } satisfies SendAudit
  })

/** One line of an audit, for the test log. */
export const sendSummary = (name: string, a: SendAudit) =>
  `${name}: ${a.sends} sends (${a.overlapped} called while others were in flight), ${a.records} records: written ${a.written}, notWritten ${a.notWritten}, unknown ${a.unknown}; lost ${a.lost}, duplicates ${a.duplicates}, silently written ${a.silentlyWritten}, out of order ${a.outOfOrder}, written ahead of a failure ${a.writtenAheadOfFailure}`

/** What every fault must keep for pipelined sends (and that the sends did overlap: else nothing was shown). */
export const assertSendInvariants = (name: string, a: SendAudit): void => {
  assert.isAbove(a.overlapped, 0, `${name}: no send overlapped another`)
  assert.strictEqual(a.lost, 0, `${name}: lost`)
  assert.strictEqual(a.duplicates, 0, `${name}: duplicates`)
  assert.strictEqual(a.silentlyWritten, 0, `${name}: silently written`)
  assert.strictEqual(a.outOfOrder, 0, `${name}: out of order`)
  assert.strictEqual(a.writtenAheadOfFailure, 0, `${name}: written ahead of a failure`)
}

/**
 * The load through a driver layer (made for it, closed after), then the audit: `brokers` reads the topic back
 * (the direct listener, when the driver's is behind a proxy). The topic must exist.
 */
export const runPipelined = <E>(
  driver: Layer.Layer<Producer, E>,
  brokers: ReadonlyArray<string>,
  topic: string,
  options: LoadOptions = {}
) =>
  Effect.gen(function* () {
    const batches = yield* Producer.use((producer) => pipelinedSends(producer, topic, options)).pipe(
      Effect.provide(driver)
    )
    return yield* auditSends(brokers, topic, batches)
  })
