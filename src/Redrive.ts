/**
 * Dead-letter redrive: sends the records of a dead-letter topic back to their original topic (or another),
 * once the cause of their failure is fixed.
 *
 * - `plan` reads the dead-letter topic and the target topics and `decide`s, per record, to send or skip it;
 * - `execute` publishes the records to send through the `Publisher` and counts what happened;
 * - `run` does both with a `Publisher` whose dead-letter topic is the one being redriven;
 * - `summarize` says it in one line.
 *
 * A redriven record is the dead letter's key, value and headers without the error headers, plus
 * `redrivenFrom=<dead-letter topic>/<partition>/<offset>`, `redriveCount` and `previousErrorTypes` (the last
 * 20 error types, oldest first). A record that fails again is dead-lettered to the same dead-letter topic,
 * keeping those headers: its history. Beyond `maxRedrives` (default 3) a record is skipped, not redriven.
 *
 * Running twice sends nothing twice: a dead letter is done when a record with its `redrivenFrom` is in the
 * target topic (sent) or in the dead-letter topic (failed again). No consumer-group offsets: a crash between
 * the send and the commit would send the record again; the header is written with the record itself.
 *
 * @module
 */
import { Effect, Layer } from "effect"
import * as DeadLetter from "./DeadLetter.ts"
import type { HeaderValue, Producer, ProducerRecord } from "./Producer.ts"
import * as Publisher from "./Publisher.ts"
import type { ReadRecord } from "./reader/TopicReader.ts"
import * as TopicReader from "./reader/TopicReader.ts"

/** The headers a redrive adds. */
export const headerNames = {
  /** `<dead-letter topic>/<partition>/<offset>` of the dead letter the record was redriven from. */
  redrivenFrom: "redrivenFrom",
  /** How many times the record was redriven, this time included. */
  redriveCount: "redriveCount",
  /** The error types of its earlier failures, comma-separated, oldest first (at most 20). */
  previousErrorTypes: "previousErrorTypes"
} as const

/** 3: the redrives a record gets by default before it is skipped. */
export const defaultMaxRedrives = 3

/** 20: the error types `previousErrorTypes` keeps. */
export const historyLength = 20

/** A header filter: `name=value`, or `name=prefix*`. */
export interface Filter {
  /** The header's name. */
  readonly name: string
  /** The value it must have, or (with `prefix`) start with. */
  readonly value: string
  /** The value ended in `*`: a prefix match. */
  readonly prefix: boolean
}

/** `name=value` or `name=prefix*` as a `Filter`; undefined when there is no `=` or no name. */
export const parseFilter = (text: string): Filter | undefined => {
  const at = text.indexOf("=")
  if (at <= 0) return undefined
  const value = text.slice(at + 1)
  const prefix = value.endsWith("*")
  return { name: text.slice(0, at), value: prefix ? value.slice(0, -1) : value, prefix }
}

const decoder = new TextDecoder()
const header = (record: ReadRecord, name: string): string | undefined => {
  const bytes = record.headers[name]
  return bytes === undefined ? undefined : decoder.decode(bytes)
}

/** The record matches every filter (none: every record). */
export const matches = (record: ReadRecord, filters: ReadonlyArray<Filter>): boolean =>
  filters.every((f) => {
    const value = header(record, f.name)
    return value !== undefined && (f.prefix ? value.startsWith(f.value) : value === f.value)
  })

/** `<topic>/<partition>/<offset>`, the `redrivenFrom` of a dead letter. */
export const origin = (record: ReadRecord): string => `${record.topic}/${record.partition}/${record.offset}`

/** Why a dead letter is not sent. */
export type SkipReason = "filtered" | "alreadyRedriven" | "maxRedrives" | "noValue" | "noOriginalTopic" | "overMax"

/** Send this record for the dead letter `from` (`<topic>/<partition>/<offset>`). */
export interface Send {
  /** The tag. */
  readonly _tag: "Send"
  /** The dead letter's `redrivenFrom`. */
  readonly from: string
  /** The record to publish. */
  readonly record: ProducerRecord
}

/** Do not send the dead letter `from`, for `reason`. */
export interface Skip {
  /** The tag. */
  readonly _tag: "Skip"
  /** The dead letter's `redrivenFrom`. */
  readonly from: string
  /** Why not. */
  readonly reason: SkipReason
}

/** What to do with one dead letter. */
export type Decision = Send | Skip

/** What `decide` needs besides the record. */
export interface Context {
  /** Send here instead of the record's `originalTopic`. */
  readonly to?: string | undefined
  /** Header filters, all must match. */
  readonly filters: ReadonlyArray<Filter>
  /** Redrives a record gets at most. */
  readonly maxRedrives: number
  /** `redrivenFrom` values already in a target topic or the dead-letter topic: done. */
  readonly done: ReadonlySet<string>
}

const whyHeaders: ReadonlySet<string> = new Set([
  ...Object.values(DeadLetter.headerNames),
  ...Object.values(headerNames)
])

const countOf = (record: ReadRecord): number => {
  const n = Number(header(record, headerNames.redriveCount) ?? "0")
  return Number.isInteger(n) && n > 0 ? n : 0
}

/** The record to send for a dead letter: its key, value and own headers, and the redrive headers. */
export const toRecord = (record: ReadRecord, topic: string): ProducerRecord => {
  const headers: Record<string, HeaderValue> = {}
  for (const name in record.headers) if (!whyHeaders.has(name)) headers[name] = record.headers[name]!
  const earlier = header(record, headerNames.previousErrorTypes)
  const errorType = header(record, DeadLetter.headerNames.errorType)
  const history = [...(earlier ? earlier.split(",") : []), ...(errorType ? [errorType] : [])].slice(-historyLength)
  return {
    topic,
    key: record.key,
    value: record.value,
    headers: {
      ...headers,
      [headerNames.redrivenFrom]: origin(record),
      [headerNames.redriveCount]: String(countOf(record) + 1),
      ...(history.length === 0 ? {} : { [headerNames.previousErrorTypes]: history.join(",") })
    }
  }
}

/** Send or skip one dead letter (pure). */
export const decide = (record: ReadRecord, context: Context): Decision => {
  const from = origin(record)
  const skip = (reason: SkipReason): Decision => ({ _tag: "Skip", from, reason })
  if (!matches(record, context.filters)) return skip("filtered")
  if (context.done.has(from)) return skip("alreadyRedriven")
  const topic = context.to ?? header(record, DeadLetter.headerNames.originalTopic)
  if (topic === undefined || topic === "") return skip("noOriginalTopic")
  if (record.value === null) return skip("noValue")
  if (countOf(record) >= context.maxRedrives) return skip("maxRedrives")
  return { _tag: "Send", from, record: toRecord(record, topic) }
}

/** Where the records come from: a topic's records, none for a topic that does not exist. */
export interface Source {
  /** Every record of the topic. */
  readonly read: (topic: string) => Effect.Effect<ReadonlyArray<ReadRecord>, TopicReader.ReadFailed>
}

/** A source on a real broker, through `TopicReader` (an unknown topic reads as empty). */
export const brokerSource = (
  connection: TopicReader.ConnectionOptions,
  options: Pick<TopicReader.Options, "onProgress" | "timeout"> = {}
): Source => ({
  read: (topic) =>
    TopicReader.readAll({ ...connection, ...options, topic }).pipe(
      Effect.catchIf(
        (error) => error.reason === "UnknownTopic",
        () => Effect.succeed([])
      )
    )
})

/** What a redrive does. */
export interface Options {
  /** The dead-letter topic to redrive. */
  readonly deadLetterTopic: string
  /** Send here instead of each record's `originalTopic`. */
  readonly to?: string | undefined
  /** Header filters, all must match. */
  readonly filters?: ReadonlyArray<Filter> | undefined
  /** Send at most this many records. */
  readonly max?: number | undefined
  /** Redrives a record gets at most. Default 3. */
  readonly maxRedrives?: number | undefined
}

/** The decisions for a dead-letter topic, in its order. */
export interface Plan {
  /** The dead-letter topic. */
  readonly deadLetterTopic: string
  /** Records read from it. */
  readonly read: number
  /** One per record read. */
  readonly decisions: ReadonlyArray<Decision>
}

/** Reads the dead-letter topic and the target topics, and decides per record. */
export const plan = (source: Source, options: Options): Effect.Effect<Plan, TopicReader.ReadFailed> =>
  Effect.gen(function* () {
    const letters = yield* source.read(options.deadLetterTopic)
    const targets = new Set<string>()
    if (options.to !== undefined) targets.add(options.to)
    else {
      for (const r of letters) {
        const topic = header(r, DeadLetter.headerNames.originalTopic)
        if (topic) targets.add(topic)
      }
    }
    const done = new Set<string>()
    for (const topic of [options.deadLetterTopic, ...targets]) {
      const records = topic === options.deadLetterTopic ? letters : yield* source.read(topic)
      for (const r of records) {
        const from = header(r, headerNames.redrivenFrom)
        if (from !== undefined) done.add(from)
      }
    }
    const context: Context = {
      to: options.to,
      filters: options.filters ?? [],
      maxRedrives: options.maxRedrives ?? defaultMaxRedrives,
      done
    }
    let sends = 0
    const decisions = letters.map((r): Decision => {
      const decision = decide(r, context)
      if (decision._tag !== "Send") return decision
      if (options.max !== undefined && sends >= options.max)
        return { _tag: "Skip", from: decision.from, reason: "overMax" }
      sends++
      return decision
    })
    return { deadLetterTopic: options.deadLetterTopic, read: letters.length, decisions }
  })

/** What a redrive did. */
export interface Summary {
  /** Records read from the dead-letter topic. */
  readonly read: number
  /** Records delivered to their target. */
  readonly sent: number
  /** Records that failed again and went back to the dead-letter topic. */
  readonly deadLetteredAgain: number
  /** Records whose send failed without a dead letter (e.g. the dead-letter write failed too). */
  readonly failed: number
  /** Records not sent, by reason. */
  readonly skipped: Readonly<Partial<Record<SkipReason, number>>>
}

const skippedOf = (decisions: ReadonlyArray<Decision>): Partial<Record<SkipReason, number>> => {
  const skipped: Partial<Record<SkipReason, number>> = {}
  for (const d of decisions) if (d._tag === "Skip") skipped[d.reason] = (skipped[d.reason] ?? 0) + 1
  return skipped
}

/** What a dry run reports: nothing sent. */
export const dryRun = (planned: Plan): Summary => ({
  read: planned.read,
  sent: 0,
  deadLetteredAgain: 0,
  failed: 0,
  skipped: skippedOf(planned.decisions)
})

/** Publishes the records to send, one after the other (the dead-letter topic's order). */
export const execute = (planned: Plan): Effect.Effect<Summary, never, Publisher.Publisher> =>
  Effect.gen(function* () {
    const publisher = yield* Publisher.Publisher
    let sent = 0
    let deadLetteredAgain = 0
    let failed = 0
    for (const d of planned.decisions) {
      if (d._tag !== "Send") continue
      const outcome = yield* Effect.result(publisher.publishRecord(d.record))
      if (outcome._tag === "Failure") failed++
      else if (outcome.success._tag === "Delivered") sent++
      else deadLetteredAgain++
    }
    return { read: planned.read, sent, deadLetteredAgain, failed, skipped: skippedOf(planned.decisions) }
  })

/**
 * Plans and executes with a `Publisher` on the given producer whose dead letters go to the topic being
 * redriven (`publisher` adds the caller's other options).
 */
export const run = (
  source: Source,
  options: Options,
  publisher: Omit<Publisher.Options, "deadLetter"> = {}
): Effect.Effect<Summary, TopicReader.ReadFailed, Producer> =>
  Effect.flatMap(plan(source, options), (planned) =>
    execute(planned).pipe(
      Effect.provide(
        Publisher.layer({ ...publisher, deadLetter: { topicName: () => options.deadLetterTopic } }).pipe(Layer.fresh)
      )
    )
  )

/** "read 5, sent 3, dead-lettered again 1, failed 0, skipped 1 (alreadyRedriven 1)". */
export const summarize = (summary: Summary): string => {
  const reasons = Object.entries(summary.skipped).map(([reason, n]) => `${reason} ${n}`)
  const skipped = reasons.reduce((n, r) => n + Number(r.split(" ")[1]), 0)
  return `read ${summary.read}, sent ${summary.sent}, dead-lettered again ${summary.deadLetteredAgain}, failed ${summary.failed}, skipped ${skipped}${reasons.length === 0 ? "" : ` (${reasons.join(", ")})`}`
}
