/**
 * Bulk publishing (`publishAll`, `publishRecords`, the stream sink). The invalid items are settled at once
 * (their own error, nothing sent); the valid records are accepted as one unit (one fiber of the publisher for
 * the whole call or stream) and sent in requests bounded by `batchSize` / `batchBytes` (the Batcher's bounds,
 * so a request is a batch a broker takes at its default limits).
 *
 * Requests are pipelined (a `Session`): up to `maxInFlightRequests` are out at once, each answered through a
 * callback (`internal/callbackSend.ts`), each bounded by the delivery timeout from the moment it left. A
 * request answered while nothing failed is settled at once (receipts, metrics). Once a request fails, no new
 * one leaves: the later ones still in the Batcher's queue are taken back (never sent), the ones already out
 * are waited for, and then the failed records of all of them are retried (or dead-lettered) on their own, as
 * `publish` does, records of one key one after the other in input order. Only then does the next request
 * leave. So a retried record never lands after a later record of its key: the records of its key in the
 * requests that were already out were either written before it failed, or failed with it (the drivers'
 * ordered-failure property, see `Producer`: a later batch of a partition is not written once an earlier one
 * of the same partition failed). The exception is a record whose first send may have been written ("unknown",
 * possiblyDelivered): its resend is marked as a possible duplicate and may land after later records of its
 * key, as the Java producer's resends after a failed batch do.
 *
 * @internal
 */
import {
  type Cause,
  Clock,
  type Context,
  Duration,
  Effect,
  Exit,
  Fiber,
  Latch,
  type Option,
  Queue,
  Result,
  Sink
} from "effect"
import { batchOverhead, estimatedSize } from "../../Batcher.ts"
import type { CircuitOpen } from "../../CircuitBreaker.ts"
import * as DeadLetter from "../../DeadLetter.ts"
import type { Health } from "../../Health.ts"
import type { ProducerRecord, RecordMetadata } from "../../Producer.ts"
import { type Fatal, PublishAllFailed, type PublishError, Retriable } from "../../PublishError.ts"
import type { BulkOptions, PublishFailure, Summary } from "../../Publisher.ts"
import type { Receipt } from "../../Receipt.ts"
import * as Topic from "../../Topic.ts"
import type * as CallbackSend from "../callbackSend.ts"
import type * as Deadlines from "../deadlines.ts"
import { monotonicMillis } from "../duration.ts"
import { errorOfRecords, isTooLarge } from "../outcomes.ts"
import * as RecordNow from "../recordNow.ts"
import {
  type DeliverDeps,
  deliveredReceipt,
  deliveryTimedOut,
  markFailure,
  noteFailure,
  retryAfter,
  sendRetried,
  type Tally
} from "./attempts.ts"
import { type Lifecycle, refused } from "./lifecycle.ts"
import type { Observed, Settled } from "./observation.ts"

/** What bulk publishing needs from the publisher. */
export interface BulkDeps extends DeliverDeps {
  /** `send` answering through a callback: the Batcher's own, else `send` in a fiber per call. */
  readonly sendNow: CallbackSend.CallbackSend
  readonly health: Option.Option<Health>
  readonly lifecycle: Lifecycle
  readonly observed: Observed
}

/** One bulk call's options, resolved, and what it learnt on the way. */
interface BulkCall {
  readonly concurrency: number
  readonly deadLetterRetriable: boolean
  /** Most records in one request. */
  readonly batchSize: number
  /**
   * With `deadLetterRetriable: false`: the keys whose record failed for good, and why. The caller keeps that
   * record to send it again later, so no later record of its key is sent in this call (each fails with the
   * same error): the resend cannot land after them.
   */
  readonly blocked: Map<string, PublishError | CircuitOpen>
}

const callOf = (deps: BulkDeps, options: BulkOptions | undefined, batchSize?: number): BulkCall => ({
  concurrency: Math.max(1, options?.concurrency ?? deps.settings.concurrency),
  deadLetterRetriable: options?.deadLetterRetriable ?? true,
  batchSize: Math.max(1, batchSize ?? deps.settings.batchSize),
  blocked: new Map()
})

// --- publishAll, publishRecords -----------------------------------------------------------------------------

/** `publishAll` / `publishRecords` over already encoded items (see the module comment). */
export const makeBulk =
  (deps: BulkDeps) =>
  (
    topic: string,
    items: ReadonlyArray<Result.Result<ProducerRecord, Fatal>>,
    options: BulkOptions | undefined
  ): Effect.Effect<ReadonlyArray<Receipt>, PublishAllFailed> => {
    const call = callOf(deps, options)
    const records: Array<ProducerRecord> = []
    const indices: Array<number> = []
    const failures: Array<{ index: number; error: PublishFailure }> = []
    const receipts: Array<Receipt | undefined> = new Array(items.length).fill(undefined)
    items.forEach((item, index) => {
      if (Result.isSuccess(item)) {
        records.push(item.success)
        indices.push(index)
      } else failures.push({ index, error: item.failure })
    })
    const run =
      records.length === 0
        ? Effect.succeed<ReadonlyArray<Settled>>([])
        : deps.lifecycle.accept(
            topic,
            deps.observed.bulk(topic, records, (traced) => sendAll(deps, traced, call))
          )
    return Effect.flatMap(Effect.result(run), (outcome) => {
      if (Result.isFailure(outcome)) {
        // refused as a whole (the publisher is closing): every valid event gets the error, nothing was sent
        for (const index of indices) failures.push({ index, error: outcome.failure })
      } else {
        outcome.success.forEach((settled, k) => {
          const index = indices[k]!
          if (Result.isSuccess(settled)) receipts[index] = settled.success
          else failures.push({ index, error: settled.failure })
        })
      }
      if (failures.length === 0) return Effect.succeed(receipts as ReadonlyArray<Receipt>)
      failures.sort((a, b) => a.index - b.index)
      return Effect.fail(
        new PublishAllFailed({
          message: `${failures.length} of ${items.length} events to ${topic} failed`,
          topic,
          receipts,
          failures
        })
      )
    })
  }

/** Every record through one session; the outcomes in input order. */
const sendAll = (
  deps: BulkDeps,
  records: ReadonlyArray<ProducerRecord>,
  call: BulkCall
): Effect.Effect<ReadonlyArray<Settled>> =>
  Effect.withFiber((fiber) => {
    const out: Array<Settled> = new Array(records.length)
    const session = makeSession(deps, call, fiber, (index, settled) => {
      out[index] = settled
    })
    return session.offer(records).pipe(Effect.andThen(session.finish), Effect.as(out))
  })

// --- the stream sink -------------------------------------------------------------------------------------------

/**
 * `Publisher.sink`: the stream's arrays go through a queue of one array to a session in a fiber of the
 * publisher, so the requests of one array are pipelined with the next one's, and an accepted array is
 * settled (retried, dead-lettered) whatever becomes of the stream. Each array is cut into requests of its own
 * (never merged with the next array's). Backpressure: the stream is pulled while the session has room (fewer
 * than `maxInFlightRequests` out, nothing failed) and one array waits in the queue. The first failure (a typed
 * error, not a dead letter) stops it: no later array is published, the ones out are settled, and the sink
 * fails with the failure of the earliest event. Closing the publisher stops the session taking arrays; the
 * sink's next array is refused (`PublisherClosed`).
 */
export const makeSink =
  (deps: BulkDeps) =>
  <A, I>(topic: Topic.Topic<A, I>, batchSize?: number): Sink.Sink<Summary, A, never, PublishFailure> =>
    Sink.unwrap(
      Effect.gen(function* () {
        const queue = yield* Queue.bounded<ReadonlyArray<A>, Cause.Done>(1)
        const tally = new SinkTally()
        const session = yield* deps.lifecycle.start(topic.name, sinkSession(deps, topic, queue, tally, batchSize))
        // the stream ended, failed or was interrupted: the session settles what it took and ends
        yield* Effect.addFinalizer(() => Queue.end(queue))
        // not taken: the session stopped (a failure, which `result` reports, or the publisher closing)
        const feed = (_: undefined, events: ReadonlyArray<A>): Effect.Effect<undefined, PublishFailure> =>
          Effect.flatMap(Queue.offer(queue, events), (taken) =>
            taken || tally.failure !== undefined ? Effect.undefined : Effect.fail(refused(topic.name))
          )
        const result = Effect.andThen(Queue.end(queue), Fiber.join(session)).pipe(
          Effect.andThen(Effect.suspend(() => tally.result(topic.name)))
        )
        return Sink.foldArray(
          () => undefined,
          () => tally.failure === undefined,
          feed
        ).pipe(Sink.mapEffect(() => result))
      })
    )

/** What the sink's events came to. */
class SinkTally {
  delivered = 0
  possibleDuplicates = 0
  deadLettered = 0
  /** The earliest event's failure, by index. */
  failure: { readonly index: number; readonly error: PublishFailure } | undefined = undefined
  /** Arrays were left in the queue, not published: the publisher began closing. */
  refused = false

  add(index: number, settled: Settled): void {
    if (Result.isFailure(settled)) {
      if (this.failure === undefined || index < this.failure.index) this.failure = { index, error: settled.failure }
    } else if (settled.success._tag === "DeadLettered") this.deadLettered++
    else {
      this.delivered++
      if (settled.success.possibleDuplicate) this.possibleDuplicates++
    }
  }

  result(topic: string): Effect.Effect<Summary, PublishFailure> {
    if (this.failure !== undefined) return Effect.fail(this.failure.error)
    if (this.refused) return Effect.fail(refused(topic))
    const { delivered, possibleDuplicates, deadLettered } = this
    return Effect.succeed({ delivered, possibleDuplicates, deadLettered })
  }
}

/** The sink's session: takes arrays until the stream ends, a failure, or closing; then settles what is out. */
const sinkSession = <A, I>(
  deps: BulkDeps,
  topic: Topic.Topic<A, I>,
  queue: Queue.Queue<ReadonlyArray<A>, Cause.Done>,
  tally: SinkTally,
  batchSize: number | undefined
): Effect.Effect<void> =>
  deps.observed.stream(topic.name, (trace, count) =>
    Effect.withFiber((fiber) => {
      let offset = 0
      const session = makeSession(deps, callOf(deps, undefined, batchSize), fiber, (index, settled) => {
        count(-1)
        tally.add(index, settled)
      })
      // the next array; none once the stream ended or the publisher began closing
      const next: Effect.Effect<ReadonlyArray<A> | undefined> = Effect.raceFirst(
        Effect.catch(Queue.take(queue), () => Effect.succeed(undefined)),
        Effect.as(deps.lifecycle.closing, undefined)
      )
      const take: Effect.Effect<void> = Effect.flatMap(next, (events) => {
        if (events === undefined || tally.failure !== undefined || deps.lifecycle.isClosed()) return Effect.void
        const base = offset
        offset += events.length
        count(events.length)
        return Effect.flatMap(
          Effect.forEach(events, (event) => Effect.result(Topic.encode(topic, event))),
          (encoded) => {
            const records: Array<ProducerRecord> = []
            const indices: Array<number> = []
            encoded.forEach((item, k) => {
              if (Result.isSuccess(item)) {
                records.push(trace(item.success))
                indices.push(base + k)
              } else session.settleNow(base + k, Result.fail(item.failure))
            })
            return Effect.andThen(session.offer(records, indices), take)
          }
        )
      })
      // no more arrays: later offers fail, and one left in the queue was not published
      const stop = Effect.gen(function* () {
        yield* Queue.end(queue)
        const left = yield* Queue.clear(queue)
        if (left.length > 0 && tally.failure === undefined) tally.refused = true
      })
      return Effect.andThen(take, session.finish).pipe(Effect.ensuring(stop))
    })
  )

// --- the session: pipelined requests ---------------------------------------------------------------------------

/** Records offered in arrays, sent in pipelined requests; `onSettled` hears each record's end once. */
interface Session {
  /**
   * Cuts the records into requests and sends what the pipeline takes; returns once there is room for more
   * (fewer than `maxInFlightRequests` out, nothing failed). `indices` are what `onSettled` reports (default:
   * the running count of records offered).
   */
  readonly offer: (records: ReadonlyArray<ProducerRecord>, indices?: ReadonlyArray<number>) => Effect.Effect<void>
  /** Settles a record that is not sent (an invalid event) in the session's order. */
  readonly settleNow: (index: number, settled: Settled) => void
  /** Waits until every record offered is settled. */
  readonly finish: Effect.Effect<void>
}

type Attempted = Result.Result<RecordMetadata, PublishError | CircuitOpen>

/** One record of a session, from its offer to its end. */
interface Item {
  /** What `onSettled` reports. */
  readonly index: number
  readonly record: ProducerRecord
  readonly tally: Tally
  attempted: Attempted | undefined
}

/** Where a session is: shared by its requests and its retries. */
interface Run {
  readonly deps: BulkDeps
  readonly call: BulkCall
  readonly clock: Clock.Clock
  /** The session fiber's context (the bulk span as parent), for sends that run as Effects. */
  readonly context: Context.Context<never>
  readonly onSettled: (index: number, settled: Settled) => void
  /** Cut and not sent yet, oldest first. */
  readonly waiting: Array<ReadonlyArray<Item>>
  /** Requests out and not yet taken up, oldest first. */
  readonly inFlight: Array<Request>
  /** Requests answered after a failure, waiting for the retries. */
  window: Array<Request>
  /** A request failed: no new one leaves until the failed records are settled. */
  failing: boolean
}

const makeSession = (
  deps: BulkDeps,
  call: BulkCall,
  fiber: Fiber.Fiber<unknown, unknown>,
  onSettled: (index: number, settled: Settled) => void
): Session => {
  const run: Run = {
    deps,
    call,
    clock: fiber.getRef(Clock.Clock),
    context: fiber.context,
    onSettled,
    waiting: [],
    inFlight: [],
    window: [],
    failing: false
  }
  let offered = 0
  return {
    offer: (records, indices) =>
      Effect.suspend(() => {
        const items = records.map(
          (record, k): Item => ({
            index: indices?.[k] ?? offered + k,
            record,
            tally: { attempts: 0, possiblyDelivered: false },
            attempted: undefined
          })
        )
        offered += records.length
        cut(run, items)
        return pump(run, false)
      }),
    settleNow: onSettled,
    finish: Effect.suspend(() => pump(run, true))
  }
}

/** Requests of at most `batchSize` records and `batchBytes` bytes (a record larger alone). */
const cut = (run: Run, items: ReadonlyArray<Item>) => {
  const { batchSize } = run.call
  const { batchBytes } = run.deps.settings
  let start = 0
  while (start < items.length) {
    let end = start
    let bytes = batchOverhead
    while (end < items.length && end - start < batchSize) {
      const size = estimatedSize(items[end]!.record)
      if (end > start && bytes + size > batchBytes) break
      bytes += size
      end++
    }
    run.waiting.push(items.slice(start, end))
    start = end
  }
}

/**
 * Sends what the pipeline takes and takes up answers, oldest first: settled at once while nothing failed;
 * after a failure, once every request out has answered, the window's failed records are retried, then
 * settled. Stops when there is room for more (`untilDone` false) or when everything is settled.
 */
const pump = (run: Run, untilDone: boolean): Effect.Effect<void> =>
  Effect.gen(function* () {
    const { maxInFlightRequests } = run.deps.settings
    while (true) {
      while (!run.failing && run.inFlight.length < maxInFlightRequests && run.waiting.length > 0) {
        run.inFlight.push(launch(run, run.waiting.shift()!))
      }
      if (!untilDone && !run.failing && run.inFlight.length < maxInFlightRequests) return
      const head = run.inFlight[0]
      if (head === undefined) return
      yield* head.answered.await
      run.inFlight.shift()
      if (!run.failing && run.window.length === 0) {
        // answered while nothing failed: its records are final, settled now
        absorb(head, [])
        yield* settleRequests(run, [head])
      } else run.window.push(head)
      if (run.failing && run.inFlight.length === 0) {
        const window = run.window
        yield* retryWindow(run, window)
        yield* settleRequests(run, window)
        run.window = []
        run.failing = false
      }
    }
  })

/** Records not sent because a request before them failed (taken back from the Batcher's queue). */
const notSent = (topic: string) =>
  new Retriable({
    reason: "Unknown",
    ambiguous: false,
    topic,
    message: "not sent: an earlier request of the same call failed, and order per key comes first"
  })

/** One request of a session: `items` sent together (`skipped`: left out, their key is blocked). */
class Request implements Deadlines.Tracked, CallbackSend.Caller {
  deadline = BigInt(0)
  prev: Deadlines.Tracked | undefined = undefined
  next: Deadlines.Tracked | undefined = undefined
  readonly run: Run
  readonly items: ReadonlyArray<Item>
  readonly skipped: ReadonlyArray<Item>
  /** Monotonic ms when it left. */
  readonly launched: number
  answer: CallbackSend.Answer | undefined = undefined
  /** Taken back before it left: never sent. */
  withdrawn = false
  /** Its delivery timeout passed before the answer. */
  expired = false
  pending: CallbackSend.Pending | undefined = undefined
  readonly answered = Latch.makeUnsafe(false)

  constructor(run: Run, items: ReadonlyArray<Item>, skipped: ReadonlyArray<Item>) {
    this.run = run
    this.items = items
    this.skipped = skipped
    this.launched = monotonicMillis(run.clock)
  }

  context(): Context.Context<never> {
    return this.run.context
  }

  onAnswer(answer: CallbackSend.Answer): void {
    if (this.answer !== undefined) return // withdrawn, or expired, before it came
    this.run.deps.deadlines.untrack(this)
    answered(this, answer)
  }

  onDeadline(): void {
    if (this.answer !== undefined) return
    const withdrawn = this.pending?.withdraw() ?? false
    this.expired = true
    const { topic } = this.items[0]!.record
    answered(this, Exit.fail(deliveryTimedOut(topic, this.run.deps.settings.deliveryTimeout, !withdrawn)))
    // after the timeout is the answer: stopping a send that runs in a fiber answers it (interrupted) at once
    if (!withdrawn) this.pending?.abandon()
  }
}

/** A request's answer is in: a failure stops the pipeline and takes back the later requests not sent yet. */
const answered = (request: Request, answer: CallbackSend.Answer) => {
  request.answer = answer
  const run = request.run
  if (Exit.isFailure(answer) && !run.failing) {
    run.failing = true
    for (const later of run.inFlight.slice(run.inFlight.indexOf(request) + 1)) {
      if (later.answer !== undefined || later.pending?.withdraw() !== true) continue
      later.withdrawn = true
      run.deps.deadlines.untrack(later)
      later.answer = Exit.fail(notSent(later.items[0]!.record.topic))
      later.answered.openUnsafe()
    }
  }
  request.answered.openUnsafe()
}

/** Sends the items whose key is not blocked; bounded by the delivery timeout from now. */
const launch = (run: Run, all: ReadonlyArray<Item>): Request => {
  const { blocked } = run.call
  let items = all
  let skipped: ReadonlyArray<Item> = []
  if (blocked.size > 0) {
    const sent: Array<Item> = []
    const left: Array<Item> = []
    for (const item of all) {
      const key = orderKey(item.record)
      const blockedBy = key === undefined ? undefined : blocked.get(key)
      if (blockedBy === undefined) sent.push(item)
      else {
        item.attempted = Result.fail(blockedBy)
        left.push(item)
      }
    }
    items = sent
    skipped = left
  }
  const request = new Request(run, items, skipped)
  if (items.length === 0) {
    request.answer = Exit.succeed([])
    request.answered.openUnsafe()
    return request
  }
  for (const item of items) item.tally.attempts = 1
  run.deps.deadlines.track(request)
  request.pending = run.deps.sendNow(
    items.map((item) => item.record),
    request
  )
  return request
}

// --- after a failure: the records of the window, retried in input order per key ---------------------------

/** A record to go on on its own: `first` is its failed attempt, or undefined for a fresh first attempt. */
interface Retry {
  readonly item: Item
  readonly first: PublishError | CircuitOpen | undefined
}

/**
 * The requests of a window have all answered and at least one failed. A record the driver says was written
 * keeps its place; a record of an expired request keeps its timeout; every other one goes on on its own as
 * `publish` would after a failed first attempt (see `retriesOf`), bounded by what is left of the delivery
 * timeout of the oldest request. Records of one partition key (explicit partition, else key) go one after the
 * other in input order, across the window's requests; records without a key, each on its own.
 */
const retryWindow = (run: Run, window: ReadonlyArray<Request>): Effect.Effect<void> => {
  const retries: Array<Retry> = []
  for (const request of window) absorb(request, retries)
  if (retries.length === 0) return Effect.void
  const groups = new Map<string, Array<Retry>>()
  const lone: Array<Array<Retry>> = []
  for (const retry of retries) {
    const key = orderKey(retry.item.record)
    if (key === undefined) lone.push([retry])
    else {
      const group = groups.get(key)
      if (group === undefined) groups.set(key, [retry])
      else group.push(retry)
    }
  }
  const all = Effect.forEach(
    [...groups.values(), ...lone],
    (group) => Effect.forEach(group, (retry) => retryOne(run, retry), { discard: true }),
    { concurrency: run.call.concurrency, discard: true }
  )
  const { deliveryTimeout } = run.deps.settings
  if (!Duration.isFinite(deliveryTimeout)) return all
  const oldest = Math.min(...window.map((request) => request.launched))
  const left = Duration.toMillis(deliveryTimeout) - (monotonicMillis(run.clock) - oldest)
  return Effect.flatMap(Effect.timeoutOption(all, Duration.millis(Math.max(0, left))), () =>
    Effect.sync(() => {
      for (const { item } of retries) {
        item.attempted ??= Result.fail(deliveryTimedOut(item.record.topic, deliveryTimeout))
      }
    })
  )
}

/** What a request's answer says of its records: final (written, expired) or to go on (`retries`). */
const absorb = (request: Request, retries: Array<Retry>) => {
  const answer = request.answer!
  const { items, expired, withdrawn } = request
  if (Exit.isSuccess(answer)) {
    const metadata = answer.value
    if (metadata.length !== items.length) {
      throw new Error(`Publisher: the producer answered ${metadata.length} receipts for ${items.length}`)
    }
    items.forEach((item, k) => {
      item.attempted = Result.succeed(metadata[k]!)
    })
    return
  }
  const failure = answer.cause.reasons.find((reason) => reason._tag === "Fail")
  // a defect of the producer ends the call as a defect, as it did before the answers came through callbacks
  if (failure === undefined) throw new Error(`Publisher: the send ended without an answer: ${answer.cause}`)
  if (expired) {
    // the delivery timeout passed: the records keep the timeout (they may be in the topic: not resent)
    for (const item of items) {
      noteFailure(item.tally, failure.error)
      item.attempted = Result.fail(failure.error)
    }
    return
  }
  if (withdrawn) {
    // never sent: they go as first attempts, no retry spent
    for (const item of items) {
      item.tally.attempts = 0
      retries.push({ item, first: undefined })
    }
    return
  }
  retriesOf(items, failure.error, retries)
}

/**
 * A failed request's records: one the driver says was written keeps its place; every other one goes on as
 * after a failed first attempt (a `"notWritten"` one as certainly not written, an `"unknown"` one marked
 * possibly delivered), except when the request was refused as too large: then each record goes again on its
 * own as a fresh attempt (a smaller request may pass: no retry spent, though the refused send counts), an
 * `"unknown"` one marked possibly delivered. The size error may be another partition's (kafkajs fails the
 * whole request and cannot say which partitions it wrote): only a record refused on its own is too large.
 */
const retriesOf = (items: ReadonlyArray<Item>, error: PublishError | CircuitOpen, retries: Array<Retry>) => {
  const outcomes = error._tag !== "CircuitOpen" && error.outcomes?.length === items.length ? error.outcomes : undefined
  const splittable = isTooLarge(error) && items.length > 1
  items.forEach((item, k) => {
    const outcome = outcomes?.[k]
    if (typeof outcome === "object") {
      item.attempted = Result.succeed(outcome)
      return
    }
    if (splittable) {
      if (outcome === "unknown") item.tally.possiblyDelivered = true
      retries.push({ item, first: undefined })
      return
    }
    retries.push({ item, first: outcome === undefined ? error : recordError(error, outcome) })
  })
}

/**
 * A request's error as one record's, by what became of that record: certainly not written (not ambiguous, not
 * possibly delivered, though other partitions of the request were written), or unknown (possibly delivered).
 */
const recordError = (error: PublishError | CircuitOpen, outcome: "notWritten" | "unknown") =>
  error._tag === "CircuitOpen" ? error : errorOfRecords(error, outcome, undefined)

/** One record on its own, unless its key is blocked; a record that fails for good may block its key. */
const retryOne = (run: Run, { item, first }: Retry): Effect.Effect<void> => {
  const { record, tally } = item
  const key = orderKey(record)
  const blockedBy = key === undefined ? undefined : run.call.blocked.get(key)
  if (blockedBy !== undefined) {
    // not sent again; possibly written by its first request all the same
    if (first !== undefined) noteFailure(tally, first)
    item.attempted = Result.fail(blockedBy)
    return Effect.void
  }
  const attempts =
    first === undefined ? sendRetried(run.deps, record, tally) : retryAfter(run.deps, record, tally, first)
  return Effect.map(Effect.result(attempts), (result) => {
    item.attempted = Result.map(result, ([metadata]) => metadata!)
    if (Result.isFailure(result) && !run.call.deadLetterRetriable && result.failure._tag !== "Fatal") {
      if (key !== undefined) run.call.blocked.set(key, result.failure)
    }
  })
}

/** The unit order is kept in: an explicit partition, else the key; none for a record without either. */
const orderKey = (record: ProducerRecord): string | undefined => {
  if (record.partition !== undefined) return `p:${record.topic}:${record.partition}`
  if (record.key === null) return undefined
  const key = Buffer.from(record.key.buffer, record.key.byteOffset, record.key.byteLength).toString("latin1")
  return `k:${record.topic}:${key}`
}

// --- settling: receipts, dead letters, metrics ------------------------------------------------------------------

/**
 * Each record of the requests ends: a delivered one at once (receipt and metrics, as `publish` records them;
 * through `finished` when there is a health window to tell), the others through `settle`.
 */
const settleRequests = (run: Run, requests: ReadonlyArray<Request>): Effect.Effect<void> => {
  const { deps } = run
  // a Health of this package records a delivery at once; an application's own through its Effect
  const recordNow = deps.health._tag === "Some" ? RecordNow.of(deps.health.value) : undefined
  const direct = deps.health._tag === "None" || recordNow !== undefined
  const effectful: Array<readonly [Item, number]> = []
  for (const request of requests) {
    const now = monotonicMillis(run.clock)
    const seconds = (now - request.launched) / 1000
    for (const items of [request.items, request.skipped]) {
      for (const item of items) {
        const attempted = item.attempted
        if (attempted !== undefined && Result.isSuccess(attempted) && direct) {
          run.onSettled(item.index, Result.succeed(deliveredReceipt(attempted.success, item.tally)))
          deps.metrics.unsafe.delivered(item.record.topic, seconds, run.context)
          recordNow?.("success", now)
        } else effectful.push([item, request.launched])
      }
    }
  }
  if (effectful.length === 0) return Effect.void
  return Effect.forEach(
    effectful,
    ([item, launched]) =>
      Effect.map(settle(run, item, launched), (settled) => {
        run.onSettled(item.index, settled)
      }),
    { concurrency: run.call.concurrency, discard: true }
  )
}

/** One record's end: its receipt, or its failure marked and dead-lettered as `publish` does (an exhausted `Retriable` only when the call allows it); its metrics. */
const settle = (run: Run, item: Item, launched: number): Effect.Effect<Settled> => {
  const { deps, call } = run
  const { record, tally } = item
  const attempted = item.attempted!
  let outcome: Effect.Effect<Receipt, PublishFailure>
  if (Result.isSuccess(attempted)) outcome = Effect.succeed(deliveredReceipt(attempted.success, tally))
  else {
    const error = tally.possiblyDelivered ? markFailure(attempted.failure) : attempted.failure
    const { deadLetter } = deps.settings
    outcome =
      deadLetter === false || error._tag === "CircuitOpen" || (!call.deadLetterRetriable && error._tag === "Retriable")
        ? Effect.fail(error)
        : DeadLetter.send(deps.producer, record, error, tally, deadLetter)
  }
  return Effect.onExit(Effect.result(outcome), (exit) => {
    const seconds = (monotonicMillis(run.clock) - launched) / 1000
    const settled: Exit.Exit<Receipt, PublishFailure> =
      exit._tag === "Success"
        ? Result.isSuccess(exit.value)
          ? Exit.succeed(exit.value.success)
          : Exit.fail(exit.value.failure)
        : (exit as never)
    return deps.observed.finish(record, settled, seconds)
  })
}
