/**
 * A driver-level load for the fault suites that keeps several sends in flight, as a pipelined bulk publish
 * does, and checks what the `Producer` contract promises of it: each send's records carry a sequence number
 * per key, taken when the send is called, so the topic must hold every key's records in call order (first
 * copies); nothing reported written or not written is in the topic twice (nobody resends here: a copy could
 * only come from the driver, and is allowed only for a record it reported "unknown"); a record reported
 * written is where its receipt says, one reported "notWritten" is not in the topic; and the ordered-failure property:
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

/** One send of the load: when it was called and returned (one clock for both, and the wall clock), its records, its answer. */
export interface SentBatch {
  readonly calledAt: number
  readonly returnedAt: number
  readonly startedMs: number
  readonly endedMs: number
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
          const startedMs = Date.now()
          const calledAt = ++clock
          const exit = yield* Effect.exit(producer.send(records))
          batches.push({ calledAt, returnedAt: ++clock, startedMs, endedMs: Date.now(), tags, exit })
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
  /** Extra copies in the topic of records reported written or not written (nobody resent anything). */
  readonly duplicates: number
  /** Extra copies of records reported "unknown" (the driver said they may be written: marked for the caller). */
  readonly unknownCopies: number
  /** Records reported "notWritten" that are in the topic. */
  readonly silentlyWritten: number
  /** Records of a key that come after a later record of the same key (first copies). */
  readonly outOfOrder: number
  /** Records in the topic although an earlier record of their key, from a send they overlapped, is "notWritten". */
  readonly writtenAheadOfFailure: number
  /** The first few violations, each with the sends involved and what they answered: to find out why. */
  readonly notes: ReadonlyArray<string>
  /**
   * Whether a send was in flight during this wall-clock window (a fault's, from its start to its end): the
   * fault hit the load. The sends are paced, so at the fault's very start none may be in flight; the next
   * ones meet it.
   */
  readonly hitBetween: (fromMs: number, toMs: number) => boolean
}

/** An error in one line: tag, reason, ambiguity, message, and the names down its cause chain. */
const describeError = (error: unknown): string => {
  const names: Array<string> = []
  let current: unknown = error
  for (let depth = 0; depth < 8 && typeof current === "object" && current !== null; depth++) {
    const e = current as { name?: unknown; _tag?: unknown; type?: unknown; retryCount?: unknown; cause?: unknown }
    names.push([e._tag ?? e.name, e.type, e.retryCount].filter((x) => x !== undefined).join("/"))
    current = e.cause
  }
  const e = error as { reason?: unknown; ambiguous?: unknown; message?: unknown }
  return `${String(e.reason)} ambiguous=${String(e.ambiguous)} "${String(e.message)}" [${names.join(" > ")}]`
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
    const offsetsOf = new Map<string, Array<string>>()
    const at = new Map<string, string>()
    let outOfOrder = 0
    const outOfOrderAt: Array<string> = []
    const last = new Map<string, number>()
    for (const r of read) {
      const tag = JSON.parse(decoder.decode(r.value!)) as Partial<Tag>
      // another load's records may share the topic (a fault aimed at one partition's leader): not ours
      if (typeof tag.key !== "string" || typeof tag.seq !== "number" || !ourKeys.has(tag.key)) continue
      const ours = tag as Tag
      copies.set(id(ours), (copies.get(id(ours)) ?? 0) + 1)
      offsetsOf.set(id(ours), [...(offsetsOf.get(id(ours)) ?? []), `${r.partition}/${r.offset}`])
      at.set(`${r.partition}/${r.offset}`, id(ours))
      // a key is on one partition, read in offset order; a record's second copy is counted as a duplicate instead
      if ((copies.get(id(ours)) ?? 0) > 1) continue
      if ((last.get(ours.key) ?? -1) >= ours.seq) {
        outOfOrder++
        outOfOrderAt.push(`${id(ours)} at ${r.partition}/${r.offset} after seq ${last.get(ours.key)}`)
      }
      last.set(ours.key, Math.max(last.get(ours.key) ?? -1, ours.seq))
    }
    let written = 0
    let notWritten = 0
    let unknown = 0
    let lost = 0
    let silentlyWritten = 0
    const notes: Array<string> = []
    const note = (what: string) => {
      if (notes.length < 12) notes.push(what)
    }
    const sendOf = new Map<string, { readonly batch: SentBatch; readonly index: number }>()
    for (const batch of batches)
      batch.tags.forEach((tag, index) => {
        sendOf.set(id(tag), { batch, index })
      })
    const describeSend = (tag: Tag) => {
      const found = sendOf.get(id(tag))
      if (found === undefined) return "no send"
      const { batch, index } = found
      const outcome = outcomeOf(batch.exit, index)
      const answer = Exit.isSuccess(batch.exit)
        ? "succeeded"
        : describeError(batch.exit.cause.reasons.find((r) => r._tag === "Fail")?.error)
      return `send called ${batch.calledAt} returned ${batch.returnedAt}, outcome ${typeof outcome === "string" ? outcome : `${outcome.partition}/${outcome.offset}`}, ${answer}`
    }
    const failedBy = new Map<string, Array<{ readonly seq: number; readonly returnedAt: number }>>()
    for (const batch of batches)
      batch.tags.forEach((tag, i) => {
        const outcome = outcomeOf(batch.exit, i)
        if (outcome === "unknown") unknown++
        else if (outcome === "notWritten") {
          notWritten++
          if ((copies.get(id(tag)) ?? 0) > 0) {
            silentlyWritten++
            note(`silently written ${id(tag)} at ${offsetsOf.get(id(tag))}: ${describeSend(tag)}`)
          }
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
        const earlier = (failedBy.get(tag.key) ?? []).find((f) => f.seq < tag.seq && batch.calledAt < f.returnedAt)
        if (earlier !== undefined) {
          writtenAheadOfFailure++
          const failedTag = { key: tag.key, seq: earlier.seq }
          note(
            `written ahead of a failure: ${id(tag)} at ${offsetsOf.get(id(tag))} (${describeSend(tag)}) ahead of ${id(failedTag)} (${describeSend(failedTag)})`
          )
        }
      }
    // copies of a record whose send said "unknown" are the caller's to mark (it resends such a record marked)
    let duplicates = 0
    let unknownCopies = 0
    for (const [tagId, n] of copies) {
      if (n < 2) continue
      const [key, seq] = tagId.split("/")
      const tag = { key: key!, seq: Number(seq) }
      const found = sendOf.get(tagId)
      if (found !== undefined && outcomeOf(found.batch.exit, found.index) === "unknown") unknownCopies += n - 1
      else {
        duplicates += n - 1
        note(`duplicate ${tagId} at ${offsetsOf.get(tagId)}: ${describeSend(tag)}`)
      }
    }
    for (const at of outOfOrderAt.slice(0, 3)) note(`out of order: ${at}`)
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
      duplicates,
      unknownCopies,
      silentlyWritten,
      outOfOrder,
      writtenAheadOfFailure,
      notes,
      hitBetween: (fromMs, toMs) => batches.some((b) => b.startedMs <= toMs && b.endedMs >= fromMs)
    } satisfies SendAudit
  })

/** One line of an audit, for the test log. */
export const sendSummary = (name: string, a: SendAudit) =>
  `${name}: ${a.sends} sends (${a.overlapped} called while others were in flight), ${a.records} records: written ${a.written}, notWritten ${a.notWritten}, unknown ${a.unknown}; lost ${a.lost}, duplicates ${a.duplicates} (of unknown ones ${a.unknownCopies}), silently written ${a.silentlyWritten}, out of order ${a.outOfOrder}, written ahead of a failure ${a.writtenAheadOfFailure}${a.notes.map((n) => `\n  ${n}`).join("")}`

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
