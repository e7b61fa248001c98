/**
 * Batcher: optional micro-batching in front of a `Producer`, as a `Producer` decorator.
 *
 * kafkajs has no `linger.ms`: every `send` is its own produce request, so many single-record publishes from
 * concurrent fibers are slow (and the kafkajs driver runs idempotent sends one at a time). The Batcher
 * collects the records of many `send` calls into one `send` of the underlying producer. Compose it under the
 * `Publisher`, which stays unchanged:
 *
 * ```ts
 * Publisher.layer().pipe(Layer.provide(Batcher.layer({ linger: "5 millis" })), Layer.provide(KafkaJsProducer.layer(cfg)))
 * ```
 *
 * Semantics (option names and defaults after the Java client):
 * - `send(records)` enqueues its records and waits for its own answer: one `RecordMetadata` per record, in
 *   input order, or the error of the batch its records were in. The records of one call stay together and
 *   in order: a call is never split over two batches (a call larger than `batchSize` / `batchBytes` is a
 *   batch on its own). One batch may carry several topics: the driver's `send` takes any mix.
 * - A batch is sent when it is full (`batchSize` records, or the next call would take it over `batchBytes`),
 *   `linger` after its first record, or at once when senders are waiting for room (lingering would only
 *   delay them). Linger is measured on the `Clock`'s monotonic time (a stepped wall clock changes
 *   nothing), so `TestClock` drives it.
 * - `batchBytes` bounds the encoded size: each record counts as `recordSize` plus the most Kafka's record
 *   format v2 adds to it (`estimatedSize`), and each batch as 61 bytes of batch header more. So the default,
 *   1 MiB, keeps every record batch under the broker's default `max.message.bytes` (1048588).
 * - At most `maxInFlightBatches` batches are sent at a time (default 5, as the Java client; the driver
 *   decides how many travel at once). Records arriving meanwhile join the next batch: that is where batching
 *   comes from under load, even with `linger` 0. A batch that fails fails the batches sent after it on its
 *   partitions too (not written: the drivers' ordered-failure property), and their callers retry them.
 * - A failed batch answers each caller by what became of its own records, when the driver says so per
 *   record (`PublishError.outcomes`, for a send that spans partitions): a caller whose records were all
 *   written gets its receipts; one with a record whose fate is unknown gets the error marked
 *   `possiblyDelivered` (a `Publisher` above marks its receipt or dead letter); one with records written
 *   and not written gets the error with its own records' `outcomes`. The others get the batch's error (a
 *   `Publisher` above then retries or dead-letters each record on its own). Nothing is dropped silently.
 * - A batch refused as too large (`RecordTooLarge`, `RecordListTooLarge`: over the topic's
 *   `max.message.bytes`, which the Batcher does not know) is split, as the Java client splits it: the
 *   calls certainly not written are resent in two halves, and so on, until each part fits or a single
 *   call is refused on its own (its caller gets the error). Calls whose fate is unknown go with them,
 *   marked (a receipt `possibleDuplicate`, a failure `possiblyDelivered`): the size error may be another
 *   partition's, and kafkajs cannot say which partitions it wrote. Then the calls go one by one, so each is
 *   written once more at most. Calls are never split, and the parts go in order, holding the batch's
 *   in-flight slot, so the order per partition is kept.
 * - Backpressure: at most `maxQueued` records wait in batches. A `send` that does not fit waits (it does
 *   not fail and nothing grows) until batches leave for the producer; waiting calls are admitted first come,
 *   first served. A call larger than `maxQueued` is admitted when the queue is empty.
 * - Interruption: a caller interrupted while waiting for room withdraws its records (never sent). Once
 *   accepted into a batch, records are sent even if their caller stops waiting. The `Publisher`'s own
 *   callers (through `internal/callbackSend.ts`) can also take records back from a batch not sent yet: a
 *   publish whose delivery timeout passed there (as the Java client expires a batch that waited too long),
 *   and the later requests of a bulk call whose earlier request failed (order per key).
 * - Shutdown: closing the scope stops accepting (a later `send` fails with `Fatal`, reason "Unknown",
 *   "batcher closed"; `PublishError` has no better row and a `Retriable` would invite a retry that cannot
 *   succeed), sends every accepted or waiting record at once (no linger) and waits for the answers, bounded
 *   by `shutdownTimeout`; then the underlying producer is released. If the timeout passes, callers still
 *   waiting are answered: records never sent get `Fatal` "Unknown" (not sent), records in a request without
 *   an answer yet get `Retriable` "Unknown" with `ambiguous: true` (they may have been written).
 * - `inFlight` counts records given to `send` and not answered yet (waiting for room, queued, in flight).
 *
 * Hot path: plain arrays, and one `Deferred` per `send` call; the `Publisher`'s per-event path skips even
 * that (it is answered through a callback, `internal/callbackSend.ts`). No per-record effects.
 *
 * @module
 */
import {
  Cause,
  Clock,
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Latch,
  Layer,
  type Scope,
  Semaphore
} from "effect"
import * as CallbackSend from "./internal/callbackSend.ts"
import { millis, monotonicMillis } from "./internal/duration.ts"
import { Fifo } from "./internal/fifo.ts"
import { errorOfRecords, isTooLarge } from "./internal/outcomes.ts"
import { Producer, type ProducerRecord, type RecordMetadata, recordSize } from "./Producer.ts"
import {
  amend,
  Fatal,
  markPossiblyDelivered,
  type PublishError,
  type RecordOutcome,
  Retriable
} from "./PublishError.ts"

/** How a batcher batches; every field has a default (`defaults`), after the Java client's names. */
export interface Options {
  /** How long a batch waits for more records after its first one (Java: `linger.ms`). Default 5 ms. */
  readonly linger?: Duration.Input | undefined
  /** Most records in one batch. Default 500. */
  readonly batchSize?: number | undefined
  /** Most bytes in one batch, estimated as encoded (see `estimatedSize`; Java: `batch.size`). Default 1 MiB. */
  readonly batchBytes?: number | undefined
  /** Most records waiting in batches; a `send` beyond it waits for room (Java: `buffer.memory`). Default 10,000. */
  readonly maxQueued?: number | undefined
  /**
   * Batches sent at the same time (Java: `max.in.flight.requests.per.connection`). Default 5: the driver
   * decides how many really travel at once (@platformatic/kafka up to its `maxInFlightRequests` per broker;
   * the idempotent kafkajs driver one at a time, the others queued in line behind it).
   */
  readonly maxInFlightBatches?: number | undefined
  /** How long closing waits for queued and in-flight records to be answered. Default 30 s. */
  readonly shutdownTimeout?: Duration.Input | undefined
}

/** The defaults of `Options`. */
export const defaults = {
  /** 5 ms (Java `linger.ms` defaults to 5 since Kafka 4.0). */
  linger: Duration.millis(5),
  /** 500 records. */
  batchSize: 500,
  /** 1 MiB: with the per-batch overhead, under the broker's default `message.max.bytes` (1048588). */
  batchBytes: 1_048_576,
  /** 10,000 records. */
  maxQueued: 10_000,
  /** 5 batches at a time, as the Java client's `max.in.flight.requests.per.connection`. */
  maxInFlightBatches: 5,
  /** 30 s. */
  shutdownTimeout: Duration.seconds(30)
} as const

/** Counters of a batcher. Record counts are of records not answered yet, except `recordsSent`. */
export interface Stats {
  /** Records of `send` calls waiting for room (backpressure). */
  readonly waiting: number
  /** Records accepted into batches that are not sent yet (at most `maxQueued`, but for one oversized call). */
  readonly queued: number
  /** Records in batches sent to the producer, not answered yet. */
  readonly inFlight: number
  /** Requests the producer answered with receipts (a split batch counts each part). */
  readonly batchesSent: number
  /** Requests the producer failed. */
  readonly batchesFailed: number
  /** Records answered with receipts. */
  readonly recordsSent: number
}

/** The batching `Producer`, with its counters. */
export interface Batcher extends Producer {
  /** The batcher's counters, now. */
  readonly stats: Effect.Effect<Stats>
}

/** The `Batcher` service tag (provided by `layer` next to the `Producer` it decorates). */
export const Batcher = Context.Service<Batcher>("effect-kafka-publisher/Batcher")

/**
 * Kafka's record format v2 adds to key, value and header bytes at most: length (5), attributes (1),
 * timestamp delta (10), offset delta (5), key and value lengths (5 + 5), header count (5): all varints.
 */
const recordOverhead = 36
/** Per header: key and value lengths (varints, 5 + 5). */
const headerOverhead = 10
/** A record batch's header, once per batch (and partition): what a batch costs before its records. */
export const batchOverhead = 61

/** Upper bound of a record's encoded size in a record batch (format v2, uncompressed). */
export const estimatedSize = (record: ProducerRecord): number => {
  let headers = 0
  for (const _ in record.headers) headers++
  return recordSize(record) + recordOverhead + headers * headerOverhead
}

/** A scoped batching `Producer` over the `Producer` in context; closing the scope flushes it. */
export const make = (options: Options = {}): Effect.Effect<Batcher, never, Producer | Scope.Scope> =>
  Effect.gen(function* () {
    const settings = yield* resolve(options)
    const underlying = yield* Producer
    const clock = yield* Clock.Clock
    const state = new State(settings, clock)
    const worker = yield* Effect.forkScoped(work(state, underlying))
    // Registered after the worker's fork, so it runs first (finalizers run in reverse): flush, then stop.
    yield* Effect.addFinalizer(() => close(state, worker))
    const batcher: Batcher & CallbackSend.WithCallbackSend = {
      send: (records) => send(state, records),
      [CallbackSend.TypeId]: (records, caller) => sendWithCallback(state, records, caller),
      inFlight: Effect.sync(() => state.pending()),
      stats: Effect.sync(() => state.stats())
    }
    return batcher
  })

/**
 * The batching `Producer` over the `Producer` below it; also provides `Batcher` for its `stats`.
 * `Batcher.layer(options).pipe(Layer.provide(KafkaJsProducer.layer(config)))`.
 */
export const layer = (options: Options = {}): Layer.Layer<Producer | Batcher, never, Producer> =>
  Layer.effectContext(
    Effect.map(make(options), (batcher) => Context.make(Producer, batcher).pipe(Context.add(Batcher, batcher)))
  )

// --- settings ------------------------------------------------------------------------------------------

interface Settings {
  readonly lingerMillis: number
  readonly batchSize: number
  readonly batchBytes: number
  readonly maxQueued: number
  readonly maxInFlight: number
  readonly shutdownTimeout: Duration.Duration
}

const resolve = (options: Options): Effect.Effect<Settings> => {
  const settings: Settings = {
    lingerMillis: millis(options.linger ?? defaults.linger),
    batchSize: options.batchSize ?? defaults.batchSize,
    batchBytes: options.batchBytes ?? defaults.batchBytes,
    maxQueued: options.maxQueued ?? defaults.maxQueued,
    maxInFlight: options.maxInFlightBatches ?? defaults.maxInFlightBatches,
    shutdownTimeout: Duration.fromInputUnsafe(options.shutdownTimeout ?? defaults.shutdownTimeout)
  }
  return Effect.as(
    Effect.all([
      checkPositive("batchSize", settings.batchSize),
      checkPositive("batchBytes", settings.batchBytes),
      checkPositive("maxQueued", settings.maxQueued),
      checkPositive("maxInFlightBatches", settings.maxInFlight)
    ]),
    settings
  )
}

const checkPositive = (name: string, value: number): Effect.Effect<void> =>
  value >= 1 ? Effect.void : Effect.die(new Error(`Batcher: ${name} must be at least 1, got ${value}`))

// --- state: the queue of batches, the callers waiting for room, the counters --------------------------------

/** One `send` call: its records travel together and share one answer. */
interface Entry {
  readonly records: ReadonlyArray<ProducerRecord>
  readonly bytes: number
  /** Gives the caller its answer (completes its `Deferred`, or calls its `onAnswer`). */
  readonly caller: { readonly onAnswer: (exit: Exit.Exit<ReadonlyArray<RecordMetadata>, PublishError>) => void }
  /** Answered after it was sent (a split batch answers its calls part by part). */
  answered: boolean
  /** The batch it joined, while that batch is not sent yet. */
  batch: Batch | undefined
  /** Sent again after a request whose outcome for it was unknown: its answer says it may be written twice. */
  possiblyWritten: boolean
}

interface Batch {
  readonly entries: Array<Entry>
  count: number
  bytes: number
  /** Monotonic time (ms) of its first record: it is sent `linger` later at the latest. */
  readonly createdAt: number
  /** Takes no more calls: full, or already sent. */
  full: boolean
}

/**
 * Everything the callers, the worker and the requests share. Plain fields, changed only in synchronous
 * steps. Latches and deferreds resume their waiters synchronously: wake the worker and answer callers
 * only once the state is consistent.
 */
class State {
  /** Batches not sent yet, oldest first. Only the last one takes more calls; all before it are full. */
  readonly batches = new Fifo<Batch>()
  /** Calls waiting for room, first come first served. */
  readonly waiting = new Fifo<Entry>()
  readonly inFlightBatches = new Set<Batch>()
  waitingRecords = 0
  queued = 0
  inFlightRecords = 0
  batchesSent = 0
  batchesFailed = 0
  recordsSent = 0
  closing = false
  /**
   * Wakes the worker when it has something new to decide: a first batch, a full batch, a waiting caller,
   * closing. Opening an open latch costs nothing.
   */
  readonly wake = Latch.makeUnsafe(false)
  readonly slots: Semaphore.Semaphore
  readonly settings: Settings
  readonly clock: Clock.Clock

  constructor(settings: Settings, clock: Clock.Clock) {
    this.settings = settings
    this.clock = clock
    this.slots = Semaphore.makeUnsafe(settings.maxInFlight)
  }

  pending(): number {
    return this.waitingRecords + this.queued + this.inFlightRecords
  }

  stats(): Stats {
    return {
      waiting: this.waitingRecords,
      queued: this.queued,
      inFlight: this.inFlightRecords,
      batchesSent: this.batchesSent,
      batchesFailed: this.batchesFailed,
      recordsSent: this.recordsSent
    }
  }

  /** Whether a call of `count` records may join the batches now (else it waits for room). */
  hasRoom(count: number): boolean {
    return this.queued === 0 || this.queued + count <= this.settings.maxQueued
  }

  /** Appends a call to the last batch, or to a new one when it does not fit. */
  enqueue(entry: Entry): void {
    const { batchSize, batchBytes } = this.settings
    const count = entry.records.length
    let last = this.batches.last()
    let wakeWorker = false
    if (last === undefined || last.full || last.count + count > batchSize || last.bytes + entry.bytes > batchBytes) {
      if (last !== undefined) last.full = true
      last = { entries: [], count: 0, bytes: batchOverhead, createdAt: monotonicMillis(this.clock), full: false }
      this.batches.push(last)
      wakeWorker = true // a first batch starts its linger, or the one before just became full
    }
    last.entries.push(entry)
    entry.batch = last
    last.count += count
    last.bytes += entry.bytes
    this.queued += count
    if (last.count >= batchSize || last.bytes >= batchBytes) {
      last.full = true
      wakeWorker = true
    }
    if (wakeWorker) this.wake.openUnsafe()
  }

  /** Moves waiting calls into batches while they fit; an oversized call only into an empty queue. */
  admitWaiting(): void {
    let next = this.waiting.first()
    while (next !== undefined && this.hasRoom(next.records.length)) {
      this.waiting.shift()
      this.waitingRecords -= next.records.length
      this.enqueue(next)
      next = this.waiting.first()
    }
  }

  /** A call that has to wait for room. */
  wait(entry: Entry): void {
    this.waiting.push(entry)
    this.waitingRecords += entry.records.length
    this.wake.openUnsafe() // someone waits for room: stop lingering
  }

  /**
   * Takes a call back that has not left: waiting for room, or (`fromBatch`) in a batch not sent yet. True:
   * it is never sent nor answered. False once it was admitted (`fromBatch` false) or its batch was taken.
   */
  withdraw(entry: Entry, fromBatch: boolean): boolean {
    const count = entry.records.length
    if (this.waiting.remove(entry)) {
      this.waitingRecords -= count
    } else {
      const batch = entry.batch
      if (!fromBatch || batch === undefined) return false
      batch.entries.splice(batch.entries.indexOf(entry), 1)
      batch.count -= count
      batch.bytes -= entry.bytes
      if (batch.entries.length === 0) this.batches.remove(batch)
      entry.batch = undefined
      this.queued -= count
    }
    this.admitWaiting() // it may have been the big one at the head holding smaller ones back
    return true
  }

  /** Takes the oldest batch for sending (once a slot is free); undefined if the shutdown timeout took it. */
  take(): Batch | undefined {
    const batch = this.batches.shift()
    if (batch === undefined) return undefined
    batch.full = true
    for (const entry of batch.entries) entry.batch = undefined
    this.queued -= batch.count
    this.inFlightRecords += batch.count
    this.inFlightBatches.add(batch)
    this.admitWaiting()
    return batch
  }

  /**
   * Answers a call that was sent, once: it stops counting as in flight first, so a caller that sees its
   * answer sees the counters without it.
   */
  answer(entry: Entry, exit: Exit.Exit<ReadonlyArray<RecordMetadata>, PublishError>): void {
    if (entry.answered) return
    entry.answered = true
    this.inFlightRecords -= entry.records.length
    entry.caller.onAnswer(entry.possiblyWritten ? markedAnswer(exit) : exit)
  }
}

// --- send: what a caller does ------------------------------------------------------------------------------

const closedError = (records: ReadonlyArray<ProducerRecord>) =>
  new Fatal({ reason: "Unknown", message: "batcher closed: not accepted, nothing was sent", ...topicOf(records) })

const entryOf = (records: ReadonlyArray<ProducerRecord>, caller: Entry["caller"]): Entry => {
  let bytes = 0
  for (let i = 0; i < records.length; i++) bytes += estimatedSize(records[i]!)
  return { records, bytes, caller, answered: false, batch: undefined, possiblyWritten: false }
}

/** Accepts the call into a batch when there is room (true); otherwise it is not queued yet. */
const tryEnqueue = (state: State, entry: Entry): boolean => {
  if (state.waiting.size !== 0 || !state.hasRoom(entry.records.length)) return false
  state.enqueue(entry) // accepted: sent whatever the caller does next
  return true
}

const send = (
  state: State,
  records: ReadonlyArray<ProducerRecord>
): Effect.Effect<ReadonlyArray<RecordMetadata>, PublishError> =>
  Effect.suspend(() => {
    if (state.closing) return Effect.fail(closedError(records))
    if (records.length === 0) return Effect.succeed([])
    const deferred = Deferred.makeUnsafe<ReadonlyArray<RecordMetadata>, PublishError>()
    const entry = entryOf(records, { onAnswer: (exit) => Deferred.doneUnsafe(deferred, exit) })
    // accepted into a batch, it is sent whatever the caller does next
    if (tryEnqueue(state, entry)) return Deferred.await(deferred)
    return waitForRoom(state, entry, deferred)
  })

/**
 * Queues the call for room and waits. Uninterruptible between queueing and installing the withdrawal: an
 * interruption landing in between (the fiber may yield between any two steps) would leave records queued
 * that their caller had abandoned; now it is seen only while waiting, and withdraws them.
 */
const waitForRoom = (
  state: State,
  entry: Entry,
  deferred: Deferred.Deferred<ReadonlyArray<RecordMetadata>, PublishError>
): Effect.Effect<ReadonlyArray<RecordMetadata>, PublishError> =>
  Effect.uninterruptibleMask((restore) => {
    state.wait(entry)
    return restore(Deferred.await(deferred)).pipe(
      Effect.onInterrupt(() => Effect.sync(() => state.withdraw(entry, false)))
    )
  })

/** `send` answering through a callback: the same queue, room and answers, without an Effect. */
const sendWithCallback = (
  state: State,
  records: ReadonlyArray<ProducerRecord>,
  caller: CallbackSend.Caller
): CallbackSend.Pending => {
  if (state.closing) {
    caller.onAnswer(Exit.fail(closedError(records)))
    return CallbackSend.answered
  }
  if (records.length === 0) {
    caller.onAnswer(Exit.succeed([]))
    return CallbackSend.answered
  }
  const entry = entryOf(records, caller)
  if (!tryEnqueue(state, entry)) state.wait(entry)
  // once its batch is sent it goes its way: the answer comes, and is ignored
  const withdraw = () => state.withdraw(entry, true)
  return { withdraw, abandon: withdraw }
}

// --- the worker: when a batch leaves ------------------------------------------------------------------------

/** The one fiber that decides when a batch leaves. Callers only append to plain arrays. */
const work = (state: State, underlying: Producer): Effect.Effect<void> =>
  Effect.gen(function* () {
    const { lingerMillis, maxInFlight } = state.settings
    while (true) {
      state.wake.closeUnsafe() // before looking: a change after this reopens it, so no wake-up is lost
      const head = state.batches.first()
      if (head === undefined) {
        if (state.closing) break
        yield* state.wake.await
        continue
      }
      if (!head.full && !state.closing && state.waiting.size === 0) {
        const wait = head.createdAt + lingerMillis - monotonicMillis(state.clock)
        if (wait > 0) {
          yield* Effect.timeoutOption(state.wake.await, Duration.millis(wait))
          continue
        }
      }
      // Take the batch only once a slot is free: records arriving meanwhile still join it.
      yield* state.slots.take(1)
      const batch = state.take()
      if (batch === undefined) {
        yield* state.slots.release(1) // answered by the shutdown timeout meanwhile
        continue
      }
      yield* Effect.forkChild(dispatch(state, underlying, batch))
    }
    yield* state.slots.take(maxInFlight) // every batch answered
  })

// --- requests: sending a batch and answering its callers -------------------------------------------------------

/** Sends a batch, answers its callers (splitting it when too large), then frees its slot. */
const dispatch = (state: State, underlying: Producer, batch: Batch): Effect.Effect<void> =>
  sendEntries(state, underlying, batch.entries).pipe(
    Effect.ensuring(
      Effect.sync(() => {
        state.inFlightBatches.delete(batch)
      })
    ),
    Effect.ensuring(state.slots.release(1))
  )

/** One request for `entries`; each caller is answered from its outcome (see `answer`). */
const sendEntries = (state: State, underlying: Producer, entries: ReadonlyArray<Entry>): Effect.Effect<void> =>
  underlying.send(flatten(entries)).pipe(
    Effect.exit,
    Effect.flatMap((exit) => answer(state, underlying, entries, exit))
  )

const flatten = (entries: ReadonlyArray<Entry>): ReadonlyArray<ProducerRecord> => {
  if (entries.length === 1) return entries[0]!.records
  const records: Array<ProducerRecord> = []
  for (const entry of entries) for (const record of entry.records) records.push(record)
  return records
}

const answer = (
  state: State,
  underlying: Producer,
  entries: ReadonlyArray<Entry>,
  exit: Exit.Exit<ReadonlyArray<RecordMetadata>, PublishError>
): Effect.Effect<void> => {
  if (Exit.isSuccess(exit)) {
    answerReceipts(state, entries, exit.value)
    return Effect.void
  }
  state.batchesFailed++
  const failure = exit.cause.reasons.find(Cause.isFailReason)
  if (failure === undefined) {
    // a defect is its callers' defect; an interruption (the shutdown timeout) may have left records written
    const outcome = Cause.hasInterruptsOnly(exit.cause) ? Exit.fail(interruptedAnswer(entries)) : exit
    for (const entry of entries) state.answer(entry, outcome)
    return Effect.void
  }
  const resend = answerFailure(state, entries, failure.error)
  if (resend.length === 0) return Effect.void
  // Too large: the calls not written go again, in two halves, one after the other (order). When some may be
  // written already (marked), one by one: halving would write them again at every level that still holds the
  // large call; alone, each is written once more at most.
  const half = Math.ceil(resend.length / 2)
  const parts =
    resend.length === 1
      ? [resend]
      : resend.some((entry) => entry.possiblyWritten)
        ? resend.map((entry) => [entry])
        : [resend.slice(0, half), resend.slice(half)]
  return Effect.forEach(parts, (part) => sendEntries(state, underlying, part), { discard: true })
}

/** A successful request: each caller gets its own receipts, in input order. */
const answerReceipts = (state: State, entries: ReadonlyArray<Entry>, metadata: ReadonlyArray<RecordMetadata>) => {
  const count = entries.reduce((n, entry) => n + entry.records.length, 0)
  if (metadata.length !== count) {
    state.batchesFailed++
    const broken = Exit.die(
      new Error(`Batcher: the producer answered ${metadata.length} receipts for ${count} records`)
    )
    for (const entry of entries) state.answer(entry, broken)
    return
  }
  state.batchesSent++
  state.recordsSent += count
  if (entries.length === 1) {
    state.answer(entries[0]!, Exit.succeed(metadata))
    return
  }
  let offset = 0
  for (const entry of entries) {
    const end = offset + entry.records.length
    state.answer(entry, Exit.succeed(metadata.slice(offset, end)))
    offset = end
  }
}

/**
 * A failed request: answers each caller by its records' outcomes, and returns the calls to resend (those
 * not written or of unknown fate, when the request was refused as too large and a smaller one may pass).
 */
const answerFailure = (state: State, entries: ReadonlyArray<Entry>, error: PublishError): Array<Entry> => {
  const splittable = isTooLarge(error) && entries.length > 1
  const outcomes = error.outcomes?.length === countOf(entries) ? error.outcomes : undefined
  const resend: Array<Entry> = []
  let offset = 0
  for (const entry of entries) {
    const own = outcomes?.slice(offset, offset + entry.records.length)
    offset += entry.records.length
    const fate = own === undefined ? "notWritten" : fateOf(own)
    if (fate === "written") {
      state.recordsSent += entry.records.length
      state.answer(entry, Exit.succeed(own as ReadonlyArray<RecordMetadata>))
    } else if (splittable && (fate === "notWritten" || fate === "unknown")) {
      // the size error may be another partition's (kafkajs cannot say which partitions it wrote): only a call
      // refused on its own is too large; one that may be written already goes again marked
      if (fate === "unknown") entry.possiblyWritten = true
      resend.push(entry)
    } else {
      state.answer(entry, Exit.fail(entryError(error, own, fate)))
    }
  }
  return resend
}

/** The answer of a call an earlier request may have written: receipts marked, a failure possibly delivered. */
const markedAnswer = (
  exit: Exit.Exit<ReadonlyArray<RecordMetadata>, PublishError>
): Exit.Exit<ReadonlyArray<RecordMetadata>, PublishError> => {
  if (Exit.isSuccess(exit)) return Exit.succeed(exit.value.map((m) => ({ ...m, possibleDuplicate: true })))
  const failure = exit.cause.reasons.find(Cause.isFailReason)
  return failure === undefined ? exit : Exit.fail(markPossiblyDelivered(failure.error))
}

/** The request's error as one caller's: its own records' outcomes, marked when some may be written. */
const entryError = (
  error: PublishError,
  own: ReadonlyArray<RecordOutcome> | undefined,
  fate: "notWritten" | "unknown" | "mixed"
): PublishError => {
  // without (usable) outcomes the error applies to every record alike
  if (own === undefined) return error.outcomes === undefined ? error : amend(error, { outcomes: undefined })
  return errorOfRecords(error, fate, own)
}

/** What became of one call's records: all written, none written, or some or all unknown (or mixed). */
const fateOf = (outcomes: ReadonlyArray<RecordOutcome>): "written" | "notWritten" | "unknown" | "mixed" => {
  let written = 0
  let notWritten = 0
  for (const outcome of outcomes) {
    if (outcome === "unknown") return "unknown"
    if (outcome === "notWritten") notWritten++
    else written++
  }
  return notWritten === 0 ? "written" : written === 0 ? "notWritten" : "mixed"
}

const countOf = (entries: ReadonlyArray<Entry>): number => entries.reduce((n, entry) => n + entry.records.length, 0)

const interruptedAnswer = (entries: ReadonlyArray<Entry>) =>
  new Retriable({
    reason: "Unknown",
    ambiguous: true,
    message: "batcher closed before the answer came: the records may have been written",
    ...topicOf(entries[0]!.records)
  })

const topicOf = (records: ReadonlyArray<ProducerRecord>) => (records.length === 0 ? {} : { topic: records[0]!.topic })

// --- closing ----------------------------------------------------------------------------------------------------

/** Stops accepting, flushes what is queued and waiting, and answers what is left at the shutdown timeout. */
const close = (state: State, worker: Fiber.Fiber<void>): Effect.Effect<void> =>
  Effect.gen(function* () {
    state.closing = true
    state.wake.openUnsafe()
    const pending = state.pending()
    if (pending > 0) {
      yield* Effect.logInfo("batcher closing: flushing").pipe(Effect.annotateLogs({ records: pending }))
    }
    const drained = yield* Fiber.await(worker).pipe(
      Effect.interruptible,
      Effect.timeoutOption(state.settings.shutdownTimeout)
    )
    if (drained._tag === "None") {
      yield* Effect.logError("batcher shutdown timeout: answering the records left").pipe(
        Effect.annotateLogs({ waiting: state.waitingRecords, queued: state.queued, inFlight: state.inFlightRecords })
      )
      abandon(state)
    }
  })

/** After the shutdown timeout: answer every caller still waiting. */
const abandon = (state: State): void => {
  const left = [...state.batches.takeAll().flatMap((batch) => batch.entries), ...state.waiting.takeAll()]
  state.queued = 0
  state.waitingRecords = 0
  const notSent = Exit.fail(
    new Fatal({ reason: "Unknown", message: "batcher closed: shutdown timeout passed before it was sent" })
  )
  for (const entry of left) entry.caller.onAnswer(notSent)
  for (const batch of [...state.inFlightBatches]) {
    state.inFlightBatches.delete(batch)
    state.batchesFailed++
    // callers answered already (a split batch's earlier parts) keep their answer
    const outcome = Exit.fail(interruptedAnswer(batch.entries))
    for (const entry of batch.entries) state.answer(entry, outcome)
  }
}
