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
 *   delay them). Time is Effect's `Clock`, so `TestClock` drives it.
 * - `batchBytes` bounds the encoded size: each record counts as `recordSize` plus the most Kafka's record
 *   format v2 adds to it (`estimatedSize`), and each batch as 61 bytes of batch header more. So the default,
 *   1 MiB, keeps every record batch under the broker's default `max.message.bytes` (1048588).
 * - At most `maxInFlightBatches` batches are sent at a time (default 1: the idempotent kafkajs driver runs
 *   one request at a time anyway). Records arriving meanwhile join the next batch: that is where batching
 *   comes from under load, even with `linger` 0.
 * - A failed batch fails every caller in it with the batch's error, unchanged (a `Publisher` above then
 *   retries or dead-letters each record on its own). Nothing is dropped silently.
 * - Backpressure: at most `maxQueued` records wait in batches. A `send` that does not fit waits (it does
 *   not fail and nothing grows) until batches leave for the producer; waiting calls are admitted first come,
 *   first served. A call larger than `maxQueued` is admitted when the queue is empty.
 * - Interruption: a caller interrupted while waiting for room withdraws its records (never sent). Once
 *   accepted into a batch, records are sent even if their caller stops waiting, as in the Java client.
 * - Shutdown: closing the scope stops accepting (a later `send` fails with `Fatal`, reason "Unknown",
 *   "batcher closed"; `PublishError` has no better row and a `Retriable` would invite a retry that cannot
 *   succeed), sends every accepted or waiting record at once (no linger) and waits for the answers, bounded
 *   by `shutdownTimeout`; then the underlying producer is released. If the timeout passes, callers still
 *   waiting are answered: records never sent get `Fatal` "Unknown" (not sent), records in a request without
 *   an answer yet get `Retriable` "Unknown" with `ambiguous: true` (they may have been written).
 * - `inFlight` counts records given to `send` and not answered yet (waiting for room, queued, in flight).
 *
 * A batch error is the error of the whole request. With several partitions in one request, a broker may
 * have written some partitions' records although the request failed (e.g. `RecordTooLarge` on one
 * partition): every caller of the batch gets the same error, whatever became of its own records.
 *
 * Hot path: one `Deferred` per `send` call and plain arrays; no per-record effects.
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
import { Producer, type ProducerRecord, type RecordMetadata, recordSize } from "./Producer.ts"
import { Fatal, type PublishError, Retriable } from "./PublishError.ts"

export interface Options {
  /** How long a batch waits for more records after its first one (Java: `linger.ms`). Default 5 ms. */
  readonly linger?: Duration.Input | undefined
  /** Most records in one batch. Default 500. */
  readonly batchSize?: number | undefined
  /** Most bytes in one batch, estimated as encoded (see `estimatedSize`). Default 1 MiB. */
  readonly batchBytes?: number | undefined
  /** Most records waiting in batches; a `send` beyond it waits for room. Default 10,000. */
  readonly maxQueued?: number | undefined
  /** Batches sent at the same time (Java: `max.in.flight.requests.per.connection`). Default 1. */
  readonly maxInFlightBatches?: number | undefined
  /** How long closing waits for queued and in-flight records to be answered. Default 30 s. */
  readonly shutdownTimeout?: Duration.Input | undefined
}

export const defaults = {
  linger: Duration.millis(5),
  batchSize: 500,
  batchBytes: 1_048_576,
  maxQueued: 10_000,
  maxInFlightBatches: 1,
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
  /** Batches the producer answered with receipts. */
  readonly batchesSent: number
  /** Batches the producer failed (every caller in them got the error). */
  readonly batchesFailed: number
  /** Records of `batchesSent`. */
  readonly recordsSent: number
}

/** The batching `Producer`, with its counters. */
export interface Batcher extends Producer {
  readonly stats: Effect.Effect<Stats>
}

export const Batcher = Context.Service<Batcher>("effect-kafka-publisher/Batcher")

/**
 * Kafka's record format v2 adds to key, value and header bytes at most: length (5), attributes (1),
 * timestamp delta (10), offset delta (5), key and value lengths (5 + 5), header count (5): all varints.
 */
const recordOverhead = 36
/** Per header: key and value lengths (varints, 5 + 5). */
const headerOverhead = 10
/** A record batch's header, once per batch (and partition). */
const batchOverhead = 61

/** Upper bound of a record's encoded size in a record batch (format v2, uncompressed). */
export const estimatedSize = (record: ProducerRecord): number => {
  let headers = 0
  for (const _ in record.headers) headers++
  return recordSize(record) + recordOverhead + headers * headerOverhead
}

/** One `send` call: its records travel together and share one answer. */
interface Entry {
  readonly records: ReadonlyArray<ProducerRecord>
  readonly bytes: number
  readonly deferred: Deferred.Deferred<ReadonlyArray<RecordMetadata>, PublishError>
}

interface Batch {
  readonly entries: Array<Entry>
  count: number
  bytes: number
  /** Clock time of its first record: it is sent `linger` later at the latest. */
  readonly createdAt: number
  /** Takes no more calls: full, or already sent. */
  full: boolean
}

/** First in, first out over an array and a head index (`Array#shift` is O(n): too slow for long queues). */
class Fifo<A> {
  private items: Array<A | undefined> = []
  private head = 0
  get size(): number {
    return this.items.length - this.head
  }
  first(): A | undefined {
    return this.items[this.head]
  }
  last(): A | undefined {
    return this.size === 0 ? undefined : this.items[this.items.length - 1]
  }
  push(item: A): void {
    this.items.push(item)
  }
  shift(): A | undefined {
    if (this.size === 0) return undefined
    const item = this.items[this.head]
    this.items[this.head++] = undefined // let it be collected
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return item
  }
  /** Removes one item (O(n): only for interruptions). */
  remove(item: A): boolean {
    const index = this.items.indexOf(item, this.head)
    if (index < 0) return false
    this.items.splice(index, 1)
    return true
  }
  /** Empties the queue, returning what it held. */
  takeAll(): Array<A> {
    const all = this.items.slice(this.head) as Array<A>
    this.items = []
    this.head = 0
    return all
  }
}

const millis = (input: Duration.Input): number => Duration.toMillis(Duration.fromInputUnsafe(input))

const topicOf = (records: ReadonlyArray<ProducerRecord>) => (records.length === 0 ? {} : { topic: records[0]!.topic })

const checkPositive = (name: string, value: number): Effect.Effect<void> =>
  value >= 1 ? Effect.void : Effect.die(new Error(`Batcher: ${name} must be at least 1, got ${value}`))

/** A scoped batching `Producer` over the `Producer` in context; closing the scope flushes it. */
export const make = (options: Options = {}): Effect.Effect<Batcher, never, Producer | Scope.Scope> =>
  Effect.gen(function* () {
    const underlying = yield* Producer
    const clock = yield* Clock.Clock
    const lingerMillis = millis(options.linger ?? defaults.linger)
    const batchSize = options.batchSize ?? defaults.batchSize
    const batchBytes = options.batchBytes ?? defaults.batchBytes
    const maxQueued = options.maxQueued ?? defaults.maxQueued
    const maxInFlight = options.maxInFlightBatches ?? defaults.maxInFlightBatches
    const shutdownTimeout = Duration.fromInputUnsafe(options.shutdownTimeout ?? defaults.shutdownTimeout)
    yield* checkPositive("batchSize", batchSize)
    yield* checkPositive("batchBytes", batchBytes)
    yield* checkPositive("maxQueued", maxQueued)
    yield* checkPositive("maxInFlightBatches", maxInFlight)

    // Batches not sent yet, oldest first. Only the last one takes more calls; all before it are full.
    const batches = new Fifo<Batch>()
    // Calls waiting for room, first come first served.
    const waiting = new Fifo<Entry>()
    const inFlightBatches = new Set<Batch>()
    let waitingRecords = 0
    let queued = 0
    let inFlightRecords = 0
    let batchesSent = 0
    let batchesFailed = 0
    let recordsSent = 0
    let closing = false

    // Wakes the worker when it has something new to decide: a first batch, a full batch, a waiting
    // caller, closing. Opening an open latch costs nothing.
    const wake = Latch.makeUnsafe(false)
    const slots = Semaphore.makeUnsafe(maxInFlight)

    // Latches and deferreds resume their waiters synchronously: wake the worker and answer callers only
    // once the state is consistent.
    const enqueue = (entry: Entry): void => {
      const count = entry.records.length
      let last = batches.last()
      let wakeWorker = false
      if (last === undefined || last.full || last.count + count > batchSize || last.bytes + entry.bytes > batchBytes) {
        if (last !== undefined) last.full = true
        last = { entries: [], count: 0, bytes: batchOverhead, createdAt: clock.currentTimeMillisUnsafe(), full: false }
        batches.push(last)
        wakeWorker = true // a first batch starts its linger, or the one before just became full
      }
      last.entries.push(entry)
      last.count += count
      last.bytes += entry.bytes
      queued += count
      if (last.count >= batchSize || last.bytes >= batchBytes) {
        last.full = true
        wakeWorker = true
      }
      if (wakeWorker) wake.openUnsafe()
    }

    /** Moves waiting calls into batches while they fit; an oversized call only into an empty queue. */
    const admitWaiting = (): void => {
      let next = waiting.first()
      while (next !== undefined) {
        if (queued > 0 && queued + next.records.length > maxQueued) return
        waiting.shift()
        waitingRecords -= next.records.length
        enqueue(next)
        next = waiting.first()
      }
    }

    /** A caller stopped waiting for room: its records were never accepted, so they are not sent. */
    const withdraw = (entry: Entry): void => {
      if (!waiting.remove(entry)) return // already admitted: it will be sent
      waitingRecords -= entry.records.length
      admitWaiting() // it may have been the big one at the head holding smaller ones back
    }

    const send = (records: ReadonlyArray<ProducerRecord>): Effect.Effect<ReadonlyArray<RecordMetadata>, PublishError> =>
      Effect.suspend(() => {
        if (closing) {
          return Effect.fail(
            new Fatal({
              reason: "Unknown",
              message: "batcher closed: not accepted, nothing was sent",
              ...topicOf(records)
            })
          )
        }
        if (records.length === 0) return Effect.succeed([])
        let bytes = 0
        for (let i = 0; i < records.length; i++) bytes += estimatedSize(records[i]!)
        const entry: Entry = { records, bytes, deferred: Deferred.makeUnsafe() }
        if (waiting.size === 0 && (queued === 0 || queued + records.length <= maxQueued)) {
          enqueue(entry)
          return Deferred.await(entry.deferred)
        }
        waiting.push(entry)
        waitingRecords += records.length
        wake.openUnsafe() // someone waits for room: stop lingering
        return Deferred.await(entry.deferred).pipe(Effect.onInterrupt(() => Effect.sync(() => withdraw(entry))))
      })

    const flatten = (batch: Batch): ReadonlyArray<ProducerRecord> => {
      if (batch.entries.length === 1) return batch.entries[0]!.records
      const records: Array<ProducerRecord> = []
      for (const entry of batch.entries) for (const record of entry.records) records.push(record)
      return records
    }

    /** Answers every caller of a sent batch, once (the shutdown timeout may have answered them already). */
    const settle = (batch: Batch, exit: Exit.Exit<ReadonlyArray<RecordMetadata>, PublishError>): void => {
      if (!inFlightBatches.delete(batch)) return
      inFlightRecords -= batch.count
      if (Exit.isSuccess(exit)) {
        const metadata = exit.value
        if (metadata.length !== batch.count) {
          batchesFailed++
          const broken = Exit.die(
            new Error(`Batcher: the producer answered ${metadata.length} receipts for ${batch.count} records`)
          )
          for (const entry of batch.entries) Deferred.doneUnsafe(entry.deferred, broken)
          return
        }
        batchesSent++
        recordsSent += batch.count
        if (batch.entries.length === 1) {
          Deferred.doneUnsafe(batch.entries[0]!.deferred, exit)
          return
        }
        let offset = 0
        for (const entry of batch.entries) {
          const end = offset + entry.records.length
          Deferred.doneUnsafe(entry.deferred, Exit.succeed(metadata.slice(offset, end)))
          offset = end
        }
        return
      }
      batchesFailed++
      // Interrupted (only after the shutdown timeout): the request may have reached the broker.
      const outcome = Cause.hasInterruptsOnly(exit.cause)
        ? Exit.fail(
            new Retriable({
              reason: "Unknown",
              ambiguous: true,
              message: "batcher closed before the answer came: the records may have been written",
              ...topicOf(batch.entries[0]!.records)
            })
          )
        : exit
      for (const entry of batch.entries) Deferred.doneUnsafe(entry.deferred, outcome)
    }

    const dispatch = (batch: Batch): Effect.Effect<void> =>
      underlying.send(flatten(batch)).pipe(
        Effect.onExit((exit) => Effect.sync(() => settle(batch, exit))),
        Effect.exit, // the outcome went to the callers
        Effect.asVoid,
        Effect.ensuring(slots.release(1))
      )

    // The one fiber that decides when a batch leaves. Callers only append to plain arrays.
    const worker = Effect.gen(function* () {
      while (true) {
        wake.closeUnsafe() // before looking: a change after this reopens it, so no wake-up is lost
        const head = batches.first()
        if (head === undefined) {
          if (closing) break
          yield* wake.await
          continue
        }
        if (!head.full && !closing && waiting.size === 0) {
          const wait = head.createdAt + lingerMillis - clock.currentTimeMillisUnsafe()
          if (wait > 0) {
            yield* Effect.timeoutOption(wake.await, Duration.millis(wait))
            continue
          }
        }
        // Take the batch only once a slot is free: records arriving meanwhile still join it.
        yield* slots.take(1)
        const batch = batches.shift()
        if (batch === undefined) {
          yield* slots.release(1) // answered by the shutdown timeout meanwhile
          continue
        }
        batch.full = true
        queued -= batch.count
        inFlightRecords += batch.count
        inFlightBatches.add(batch)
        admitWaiting()
        yield* Effect.forkChild(dispatch(batch))
      }
      yield* slots.take(maxInFlight) // every batch answered
    })
    const workerFiber = yield* Effect.forkScoped(worker)

    /** After the shutdown timeout: answer every caller still waiting. */
    const abandon = (): void => {
      const left = [...batches.takeAll().flatMap((batch) => batch.entries), ...waiting.takeAll()]
      queued = 0
      waitingRecords = 0
      const notSent = Exit.fail(
        new Fatal({ reason: "Unknown", message: "batcher closed: shutdown timeout passed before it was sent" })
      )
      for (const entry of left) Deferred.doneUnsafe(entry.deferred, notSent)
      for (const batch of [...inFlightBatches]) settle(batch, Exit.interrupt())
    }

    // Registered after the worker's fork, so it runs first (finalizers run in reverse): flush, then stop.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        closing = true
        wake.openUnsafe()
        const pending = waitingRecords + queued + inFlightRecords
        if (pending > 0) {
          yield* Effect.logInfo("batcher closing: flushing").pipe(Effect.annotateLogs({ records: pending }))
        }
        const drained = yield* Fiber.await(workerFiber).pipe(
          Effect.interruptible,
          Effect.timeoutOption(shutdownTimeout)
        )
        if (drained._tag === "None") {
          yield* Effect.logError("batcher shutdown timeout: answering the records left").pipe(
            Effect.annotateLogs({ waiting: waitingRecords, queued, inFlight: inFlightRecords })
          )
          abandon()
        }
      })
    )

    return {
      send,
      inFlight: Effect.sync(() => waitingRecords + queued + inFlightRecords),
      stats: Effect.sync(
        (): Stats => ({
          waiting: waitingRecords,
          queued,
          inFlight: inFlightRecords,
          batchesSent,
          batchesFailed,
          recordsSent
        })
      )
    }
  })

/**
 * The batching `Producer` over the `Producer` below it; also provides `Batcher` for its `stats`.
 * `Batcher.layer(options).pipe(Layer.provide(KafkaJsProducer.layer(config)))`.
 */
export const layer = (options: Options = {}): Layer.Layer<Producer | Batcher, never, Producer> =>
  Layer.effectContext(
    Effect.map(make(options), (batcher) => Context.make(Producer, batcher).pipe(Context.add(Batcher, batcher)))
  )
