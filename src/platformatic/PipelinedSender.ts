/**
 * Produce requests in flight, several at a time: the @platformatic/kafka driver's sender. Up to `maxInFlight`
 * produce requests per broker (Java's `max.in.flight.requests.per.connection`, 5 by default), idempotent
 * writes kept in order per partition and free of duplicates through broker pauses, crashes, leader changes
 * and lost connections. Java's `Sender`, simplified; plain callbacks and promises, nothing per record.
 *
 * Why not the client's own `Producer.send`, called concurrently: when a send fails it clears the producer id
 * and every sequence number at once, while other sends are in flight, and on OUT_OF_ORDER_SEQUENCE_NUMBER or
 * UNKNOWN_PRODUCER_ID it initialises a new producer id and sends the batch again under new sequence numbers
 * (`recoverOnProducerStateLoss`, always on). With several requests in flight, the OUT_OF_ORDER answer is what
 * a later batch gets when an earlier batch of its partition failed: the client then writes the later batch
 * ahead of the earlier one (order broken), and the earlier one's retry under new numbers may duplicate it.
 * So this module speaks the client's protocol layer (`Wire`: its metadata cache, connections and Produce API)
 * and keeps the sequence numbers itself.
 *
 * How it works:
 * - Sends are taken in line when they are called (`turn`), before their records are placed, so an async
 *   metadata look-up cannot reorder them; a send waits in line until every send before it was placed.
 * - A send becomes one request per leader broker, one batch per partition. Requests to one broker leave in
 *   line order, at most `maxInFlight` at a time; a partition's waiting batches all stay in one broker's queue
 *   (a newer leader in the metadata is used once they left), so a batch's sequence number, given when its
 *   request leaves, follows the order `send` was called; it is kept for every resend of the batch.
 * - A partition has several batches in flight only once the broker acknowledged a write of this session on
 *   it (within `protectedFor`). A broker checks an idempotent producer's sequence numbers only when it keeps
 *   state for the producer on the partition; with none (the session's first write there, or after the state
 *   expired) it takes any number, so a batch sent behind a refused first batch would be written ahead of it
 *   (seen on Kafka 3.9.2: the contract's ordered-failure test failed that way). Until then: one at a time.
 * - A failed batch stops all dispatching. Once nothing is in flight (a later batch of the partition answered
 *   OUT_OF_ORDER_SEQUENCE_NUMBER because its predecessor was not written is not written, and goes again
 *   after it; that answer does not count against its retries), the sender waits the retry backoff, refreshes
 *   the metadata, and sends the failed batches again in sequence order, same producer id, epoch and
 *   sequence numbers, ahead of anything new. The broker keeps the last 5 batches of each producer and
 *   partition, and a partition never has more than 5 batches in flight, so a copy it already wrote is
 *   answered with the original offset, not written twice.
 * - A batch fails for good when its error is not retriable (a `Fatal` row, or a producer-state answer:
 *   OUT_OF_ORDER_SEQUENCE_NUMBER with nothing failed before it, UNKNOWN_PRODUCER_ID, DUPLICATE_SEQUENCE_NUMBER,
 *   which carries no offset: "unknown") or when its retries are spent: "unknown" if any attempt was
 *   ambiguous, else "notWritten". Every later batch of that partition that is not written fails with it
 *   ("notWritten", or "unknown" after an ambiguous attempt of its own): it is never sent again under new
 *   numbers. Once the old session's batches are settled, a new producer session starts (InitProducerId,
 *   every sequence from 0) before anything new is sent; if it cannot start, what waits fails (not sent).
 * - A partition without a leader in the metadata waits (a failed attempt per look, backoff between them) in
 *   a queue of its own; the other partitions go on meanwhile.
 * - The ordered-failure property (`Producer`'s module comment): a send called before an earlier send on the
 *   same partition returned its failure is not written on that partition either. A send taken in line
 *   before the failure was decided is caught by the rule above; one taken in line after that, but before the
 *   failed send's caller was done with it (`Turn.done`), is refused on that partition when it is placed.
 * - A send whose caller gave up (`done` before its answer) loses its batches that have not left yet (they
 *   have no sequence number, so nothing is skipped); batches already sent run to their end.
 *
 * Without idempotence the same machinery runs without producer id and sequence numbers, and with one batch
 * per partition in flight (the broker checks no order: a batch behind a failed one would be written first);
 * requests to other partitions still overlap. A resend after an ambiguous attempt may duplicate, as with the
 * Java client. With acks=0 a request has no answer: it counts as written once it is on the socket.
 *
 * @internal
 */
import {
  type Broker,
  type Producer as Client,
  type CompressionAlgorithmValue,
  type Connection,
  type CreateRecordsBatchOptions,
  kGetApi,
  kGetConnection,
  type MessageRecord,
  NumericMap,
  ProtocolError
} from "@platformatic/kafka"
import type { Classification } from "../ErrorClassification.ts"
import { partitionKey } from "../internal/receipts.ts"

/** The least a record needs for the sender: where it goes. The rest is the wire's business. */
export interface Placed {
  readonly topic: string
  readonly partition: number
}

/** A producer session: the id and epoch of an idempotent producer. */
export interface Session {
  readonly producerId: bigint
  readonly producerEpoch: number
}

/** One partition's batch in a request: its records and (idempotent) its first sequence number. */
export interface WireBatch<M> {
  readonly topic: string
  readonly partition: number
  readonly firstSequence: number
  readonly messages: ReadonlyArray<M>
}

/** One produce request. `session` is undefined without idempotence. */
export interface WireRequest<M> {
  readonly broker: number
  readonly session: Session | undefined
  readonly batches: ReadonlyArray<WireBatch<M>>
}

/** A partition's answer: written at `baseOffset`, or refused with the broker's error. */
export type PartitionAnswer = { readonly baseOffset: bigint } | { readonly error: unknown }

/** What the sender needs of a client. */
export interface Wire<M> {
  /** The partition's leader from the client's cached metadata; undefined when it has none. */
  readonly leader: (topic: string, partition: number) => number | undefined
  /** Fetches the topics' metadata again (once, no retries of its own). */
  readonly refresh: (topics: ReadonlyArray<string>) => Promise<unknown>
  /**
   * Sends one request. Resolves with each partition's answer by `partitionKey`, or "sent" when the request
   * gets no answer (acks=0); rejects when the request as a whole failed.
   */
  readonly produce: (request: WireRequest<M>) => Promise<ReadonlyMap<string, PartitionAnswer> | "sent">
  /** InitProducerId: a new producer session. */
  readonly newSession: () => Promise<Session>
  /** A request that asks nothing (ApiVersions) to the broker: resolves once it answers. */
  readonly probe: (broker: number) => Promise<void>
}

/** How the sender sends and retries. */
export interface Options {
  /** Idempotent writes (producer id and sequence numbers). */
  readonly idempotent: boolean
  /** Produce requests in flight per broker, at most (5 at most with idempotence). */
  readonly maxInFlight: number
  /** Retries of a failed batch (same sequence numbers) before it fails for good. */
  readonly retries: number
  /** The wait before the `attempt`-th retry round (1-based), in milliseconds. */
  readonly retryDelay: (attempt: number) => number
  /** The driver's classification of an error (retriable or not, ambiguous or not). */
  readonly classify: (error: unknown) => Classification
  /** The protocol error name an error carries, if it is a broker's answer. */
  readonly protocolName: (error: unknown) => string | undefined
  /** The session the client already has (asked for when it connected); without one, one is asked for first. */
  readonly session?: Session | undefined
}

/** What became of one record: its offset (-1n with acks=0), or "notWritten" / "unknown". */
export type RecordFate = bigint | "notWritten" | "unknown"

/** Why the records of one partition of a send failed. */
export interface Failure {
  readonly topic: string
  readonly partition: number
  /** "notWritten": certainly not written; "unknown": may have been written. */
  readonly outcome: "notWritten" | "unknown"
  /** The batch's own failed attempts, oldest first (empty when it was held back before it was ever sent). */
  readonly errors: ReadonlyArray<unknown>
  /** Set when the batch failed because an earlier batch of its partition did: that batch's failure. */
  readonly behind?: Failure | undefined
}

/** A send's answer: each record's fate, in input order, and the failures (by first record), if any. */
export interface Settled {
  readonly fates: ReadonlyArray<RecordFate>
  readonly failures: ReadonlyArray<Failure>
}

/** A send's place in line (see `PipelinedSender.turn`). */
export interface Turn<M> {
  /** Sends the records (each placed on its partition) in this turn's place; resolves when all are settled. */
  readonly send: (messages: ReadonlyArray<M>) => Promise<Settled>
  /**
   * The caller is done with the send (answered, failed, or gave up): call it always, last. Before `send`:
   * the place in line is given up. Before the answer: batches that have not left are dropped (never sent).
   */
  readonly done: () => void
}

/** The sender. */
export interface PipelinedSender<M> {
  /** Takes a place in line for a send, now: sends are numbered and written in the order of their turns. */
  readonly turn: () => Turn<M>
  /** Sends taken in line and not settled. */
  readonly inFlight: () => number
  /** Stops: what waits to be sent fails, timers stop. Requests in flight end with the client's connections. */
  readonly close: () => void
}

/** Error names that speak of the producer's state on the broker: resending under the same numbers cannot help. */
const stateErrors = new Set(["OUT_OF_ORDER_SEQUENCE_NUMBER", "UNKNOWN_PRODUCER_ID", "DUPLICATE_SEQUENCE_NUMBER"])
/** What a batch gets when an earlier batch of its partition was not written (with idempotence). */
const behindErrors = new Set(["OUT_OF_ORDER_SEQUENCE_NUMBER", "UNKNOWN_PRODUCER_ID"])

/** Kafka's sequence numbers are int32 and wrap to 0 (Java: `DefaultRecordBatch.incrementSequence`). */
export const incrementSequence = (sequence: number, increment: number): number =>
  sequence > 0x7fffffff - increment ? increment - (0x7fffffff - sequence) - 1 : sequence + increment

/** A failure the sender itself reports (no leader, closed). */
export class SenderError extends Error {
  override readonly name = "SenderError"
}

interface SendState<M> {
  /** Its turn: sends are numbered in the order they were called. */
  readonly id: number
  readonly batches: Array<Batch<M>>
  readonly fates: Array<RecordFate>
  readonly failures: Array<Failure>
  unresolved: number
  readonly resolve: (settled: Settled) => void
  settled: boolean
  /** The last turn taken when its caller was done (undefined: not yet). */
  doneAt: number | undefined
  /** Partitions on which its failures refuse later sends (the turn rule). */
  readonly holds: Array<string>
}

interface Batch<M> {
  readonly send: SendState<M>
  readonly topic: string
  readonly partition: number
  readonly key: string
  readonly messages: Array<M>
  /** Each message's place in the send's input. */
  readonly indices: Array<number>
  /** Its first sequence number: -1 until its request first leaves (this session). */
  seq: number
  state: "queued" | "inFlight" | "failed" | "done"
  /** The broker whose queue holds it, while queued. */
  queuedAt: number | undefined
  /** Its own failed attempts (answers about an earlier batch's failure do not count). */
  attempts: number
  /** An attempt may have written it. */
  ambiguous: boolean
  readonly errors: Array<unknown>
  /** It cannot be sent again: its last failure was not retriable, or its retries are spent. */
  final: boolean
  failure: Failure | undefined
}

/** One request waiting to leave: batches of distinct partitions for one broker. */
interface Request<M> {
  readonly batches: ReadonlyArray<Batch<M>>
}

interface TurnState<M> {
  readonly id: number
  /** `send` was called: its records are known. */
  sent: boolean
  /** Its caller gave up before it was placed (or the sender closed). */
  givenUp: boolean
  messages: ReadonlyArray<M>
  resolve: (settled: Settled) => void
  placed: SendState<M> | undefined
}

/** The queue of batches whose partition has no known leader. */
const noLeader = -1

/** The answer of a send that was never placed (its caller gave up, or the sender closed): nothing was sent. */
const unsent = <M extends Placed>(messages: ReadonlyArray<M>, error: SenderError): Settled => ({
  fates: messages.map(() => "notWritten"),
  failures:
    messages.length === 0
      ? []
      : [{ topic: messages[0]!.topic, partition: messages[0]!.partition, outcome: "notWritten", errors: [error] }]
})

const byTurn = <M>(x: Batch<M>, y: Batch<M>) => x.send.id - y.send.id

/**
 * How long after a partition's last acknowledged write its batches may be pipelined (see `mayPipeline`): far
 * below the broker's `producer.id.expiration.ms` (1 day), so the broker still keeps the producer's state.
 */
export const protectedFor = 60_000

/** How deep a broker's queue is searched for batches that may leave (past ones that must wait). */
const scanDepth = 64

/** A sender over `wire` (see the module comment). */
export const make = <M extends Placed>(wire: Wire<M>, options: Options): PipelinedSender<M> => {
  const { idempotent, maxInFlight, retries } = options
  let turns = 0
  /** Turns taken and not settled. */
  let open = 0
  const intake: Array<TurnState<M>> = []
  let session = options.session
  let needSession = idempotent && session === undefined
  let sessionStarting = false
  /**
   * Per partition, this session's: next sequence number, batches sent and not settled (in order), batches in
   * flight, and when a write was last acknowledged.
   */
  const partitions = new Map<
    string,
    { next: number; readonly pending: Array<Batch<M>>; inFlight: number; ackedAt: number | undefined }
  >()
  const partitionOf = (key: string) => {
    let p = partitions.get(key)
    if (p === undefined) {
      p = { next: 0, pending: [], inFlight: 0, ackedAt: undefined }
      partitions.set(key, p)
    }
    return p
  }
  /** Requests waiting to leave, per broker (and `noLeader`). A partition's queued batches are all in one queue. */
  const queues = new Map<number, Array<Request<M>>>()
  /** Where each partition's queued batches are, and how many. */
  const queuedOn = new Map<string, { broker: number; count: number }>()
  const inFlightBy = new Map<number, number>()
  let inFlightTotal = 0
  /** Batches whose last attempt failed, waiting for the recovery. */
  let failed: Array<Batch<M>> = []
  /** A failure happened: nothing leaves until it is dealt with, once nothing is in flight. */
  let recovering = false
  let recoveryRunning = false
  let timer: ReturnType<typeof setTimeout> | undefined
  let leaderTimer: ReturnType<typeof setTimeout> | undefined
  let closed = false
  /** Failed sends by partition: a send taken in line before such a send's caller was done is refused there. */
  const holds = new Map<string, Array<{ readonly send: SendState<M>; readonly failure: Failure }>>()

  // --- queues -------------------------------------------------------------------------------------------

  const enqueue = (broker: number, batches: ReadonlyArray<Batch<M>>) => {
    let queue = queues.get(broker)
    if (queue === undefined) {
      queue = []
      queues.set(broker, queue)
    }
    queue.push({ batches })
    for (const b of batches) {
      b.state = "queued"
      b.queuedAt = broker
      const on = queuedOn.get(b.key)
      if (on === undefined) queuedOn.set(b.key, { broker, count: 1 })
      else on.count++
    }
  }

  /** The batch leaves its queue (sent, or settled). */
  const unqueue = (b: Batch<M>) => {
    if (b.queuedAt === undefined) return
    b.queuedAt = undefined
    const on = queuedOn.get(b.key)!
    if (--on.count === 0) queuedOn.delete(b.key)
  }

  /** Takes every batch waiting in these queues out of them, in line order. */
  const takeQueued = (brokers: ReadonlyArray<number>): Array<Batch<M>> => {
    const taken: Array<Batch<M>> = []
    for (const broker of brokers) {
      for (const r of queues.get(broker) ?? [])
        for (const b of r.batches)
          if (b.state === "queued") {
            unqueue(b)
            taken.push(b)
          }
      queues.delete(broker)
    }
    return taken.sort(byTurn)
  }

  /** Where a batch goes now: behind its partition's queued batches, else to its partition's leader. */
  const routeOf = (b: Batch<M>): number => queuedOn.get(b.key)?.broker ?? wire.leader(b.topic, b.partition) ?? noLeader

  // --- settling ----------------------------------------------------------------------------------------

  const settleBatch = (b: Batch<M>) => {
    unqueue(b)
    b.state = "done"
    if (b.seq >= 0) {
      const pending = partitions.get(b.key)?.pending
      const at = pending?.indexOf(b) ?? -1
      if (at >= 0) pending!.splice(at, 1)
    }
    const send = b.send
    if (--send.unresolved > 0 || send.settled) return
    send.settled = true
    open--
    const first = (f: Failure) => send.batches.find((x) => x.failure === f)!.indices[0]!
    send.failures.sort((x, y) => first(x) - first(y))
    send.resolve({ fates: send.fates, failures: send.failures })
  }

  const written = (b: Batch<M>, baseOffset: bigint) => {
    // the broker keeps the producer's state on the partition now: later batches may be pipelined
    if (baseOffset >= 0n) partitionOf(b.key).ackedAt = Date.now()
    b.indices.forEach((index, i) => {
      b.send.fates[index] = baseOffset < 0n ? -1n : baseOffset + BigInt(i)
    })
    settleBatch(b)
  }

  /** The batch fails for good: on its own, or behind an earlier failure of its partition. */
  const fail = (b: Batch<M>, behind: Failure | undefined): Failure => {
    const failure: Failure = {
      topic: b.topic,
      partition: b.partition,
      outcome: b.ambiguous ? "unknown" : "notWritten",
      errors: b.errors,
      ...(behind === undefined ? {} : { behind })
    }
    b.failure = failure
    for (const index of b.indices) b.send.fates[index] = failure.outcome
    b.send.failures.push(failure)
    hold(b.send, b.key, failure)
    settleBatch(b)
    return failure
  }

  /** Every batch of the partition waiting to leave fails behind `failure` (they were all taken in line after it). */
  const failQueued = (key: string, failure: Failure) => {
    const broker = queuedOn.get(key)?.broker
    if (broker === undefined) return
    for (const r of queues.get(broker) ?? [])
      for (const b of r.batches) if (b.key === key && b.state === "queued") fail(b, failure)
  }

  // --- the turn rule ------------------------------------------------------------------------------------

  /** The send's failure refuses its partition to sends taken in line before its caller is done. */
  const hold = (send: SendState<M>, key: string, failure: Failure) => {
    if (send.holds.includes(key)) return
    send.holds.push(key)
    const list = holds.get(key)
    if (list === undefined) holds.set(key, [{ send, failure }])
    else list.push({ send, failure })
    release(send)
  }

  /** Forgets a send's holds once its caller is done and every turn taken before that was placed. */
  const release = (send: SendState<M>) => {
    if (send.doneAt === undefined || (intake.length > 0 && intake[0]!.id <= send.doneAt)) return
    for (const key of send.holds) {
      const list = holds.get(key)!
      list.splice(
        list.findIndex((h) => h.send === send),
        1
      )
      if (list.length === 0) holds.delete(key)
    }
    send.holds.length = 0
  }

  /** The earlier failure that refuses this batch: its send's turn came before that send's caller was done. */
  const heldBy = (b: Batch<M>): Failure | undefined =>
    holds.get(b.key)?.find(({ send }) => send.id < b.send.id && (send.doneAt === undefined || b.send.id <= send.doneAt))
      ?.failure

  // --- taking turns --------------------------------------------------------------------------------------

  const turn = (): Turn<M> => {
    const t: TurnState<M> = {
      id: ++turns,
      sent: false,
      givenUp: false,
      messages: [],
      resolve: () => {},
      placed: undefined
    }
    open++
    intake.push(t)
    return {
      send: (messages) =>
        new Promise<Settled>((resolve) => {
          if (t.sent) throw new SenderError("a turn sends once")
          t.sent = true
          t.messages = messages
          t.resolve = resolve
          if (closed) resolve(unsent(messages, new SenderError("the producer is closed")))
          else placeTurns()
        }),
      done: () => {
        const send = t.placed
        if (send === undefined) {
          if (t.givenUp) return
          t.givenUp = true
          // not sent: its place in line is free now; sent and not placed yet: answered when its place comes
          if (!t.sent) open--
          placeTurns()
          return
        }
        if (send.doneAt !== undefined) return
        send.doneAt = turns
        // the caller gave up: what has not left yet never will (it has no sequence number: nothing is skipped)
        if (!send.settled)
          for (const b of send.batches)
            if (b.state === "queued" && b.seq < 0) {
              b.errors.push(new SenderError("the caller gave up before it was sent"))
              b.failure = { topic: b.topic, partition: b.partition, outcome: "notWritten", errors: b.errors }
              for (const index of b.indices) send.fates[index] = "notWritten"
              send.failures.push(b.failure)
              settleBatch(b)
            }
        release(send)
      }
    }
  }

  /** Places the turns at the head of the line whose records are known, in order. */
  const placeTurns = () => {
    while (intake.length > 0 && (intake[0]!.sent || intake[0]!.givenUp)) {
      const t = intake.shift()!
      if (!t.givenUp) place(t)
      else if (t.sent) {
        open--
        t.resolve(unsent(t.messages, new SenderError("the caller gave up before the send was placed")))
      }
    }
    for (const list of [...holds.values()]) for (const { send } of [...list]) release(send)
    pump()
  }

  /** One request per broker, one batch per partition, queued behind the sends taken in line before it. */
  const place = (t: TurnState<M>) => {
    const send: SendState<M> = {
      id: t.id,
      batches: [],
      fates: new Array<RecordFate>(t.messages.length).fill("notWritten"),
      failures: [],
      unresolved: 0,
      resolve: t.resolve,
      settled: false,
      doneAt: undefined,
      holds: []
    }
    t.placed = send
    const byKey = new Map<string, Batch<M>>()
    t.messages.forEach((m, index) => {
      const key = partitionKey(m.topic, m.partition)
      let b = byKey.get(key)
      if (b === undefined) {
        b = newBatch(send, m.topic, m.partition, key)
        byKey.set(key, b)
        send.batches.push(b)
      }
      b.messages.push(m)
      b.indices.push(index)
    })
    send.unresolved = send.batches.length
    if (send.unresolved === 0) {
      send.settled = true
      open--
      send.resolve({ fates: [], failures: [] })
      return
    }
    const byBroker = new Map<number, Array<Batch<M>>>()
    for (const b of send.batches) {
      const held = heldBy(b)
      if (held === undefined) push(byBroker, routeOf(b), b)
      else fail(b, held)
    }
    for (const [broker, batches] of byBroker) enqueue(broker, batches)
  }

  const newBatch = (send: SendState<M>, topic: string, partition: number, key: string): Batch<M> => ({
    send,
    topic,
    partition,
    key,
    messages: [],
    indices: [],
    seq: -1,
    state: "queued",
    queuedAt: undefined,
    attempts: 0,
    ambiguous: false,
    errors: [],
    final: false,
    failure: undefined
  })

  // --- dispatching --------------------------------------------------------------------------------------

  const pump = () => {
    if (closed) return failAll()
    if (recovering) {
      if (inFlightTotal === 0) recover()
      return
    }
    if (sessionStarting) return
    for (const [broker, queue] of queues) if (broker !== noLeader) dispatchFrom(broker, queue)
    if (queues.has(noLeader)) waitForLeaders()
    // a new session once the old one's batches (in flight, or to be sent again) are settled under its numbers
    if (needSession && queues.size > 0 && ![...partitions.values()].some((p) => p.pending.length > 0)) startSession()
  }

  /**
   * Sends what may leave from a broker's queue, in order, while the broker has room. A batch waits when its
   * partition must not have another batch in flight (`mayPipeline`), or, while a new session is awaited,
   * when it is new (no sequence number); a later batch of a partition that waits, waits too. The queue is
   * looked at to a bounded depth.
   */
  const dispatchFrom = (broker: number, queue: Array<Request<M>>) => {
    const waiting = new Set<string>()
    for (let i = 0; i < queue.length && i < scanDepth && (inFlightBy.get(broker) ?? 0) < maxInFlight; ) {
      const go: Array<Batch<M>> = []
      const stay: Array<Batch<M>> = []
      for (const b of queue[i]!.batches) {
        if (b.state !== "queued") continue
        const ready = !waiting.has(b.key) && !(needSession && b.seq < 0) && mayPipeline(b.key)
        if (ready) go.push(b)
        else {
          stay.push(b)
          waiting.add(b.key)
        }
      }
      if (go.length > 0) dispatch(broker, go)
      if (stay.length === 0) queue.splice(i, 1)
      else {
        queue[i] = { batches: stay }
        i++
      }
    }
    if (queue.length === 0) queues.delete(broker)
  }

  /**
   * Whether another batch of the partition may leave while one is in flight. A broker checks an idempotent
   * producer's sequence numbers only once it keeps state for it on the partition: a producer with none there
   * (its first write of the session, or after the state expired or its records were deleted) is accepted at
   * any sequence number. So a batch behind one that is refused would be written ahead of it: until the
   * session has a write acknowledged on the partition (within `protectedFor`), one batch at a time there.
   * Without idempotence the broker checks nothing: always one at a time per partition.
   */
  const mayPipeline = (key: string): boolean => {
    const p = partitions.get(key)
    if (p === undefined || p.inFlight === 0) return true
    return idempotent && p.ackedAt !== undefined && Date.now() - p.ackedAt < protectedFor
  }

  const dispatch = (broker: number, batches: ReadonlyArray<Batch<M>>) => {
    const wireBatches: Array<WireBatch<M>> = []
    for (const b of batches) {
      unqueue(b)
      if (idempotent && b.seq < 0) {
        const p = partitionOf(b.key)
        b.seq = p.next
        p.next = incrementSequence(p.next, b.messages.length)
        p.pending.push(b)
      }
      partitionOf(b.key).inFlight++
      b.state = "inFlight"
      wireBatches.push({
        topic: b.topic,
        partition: b.partition,
        firstSequence: Math.max(b.seq, 0),
        messages: b.messages
      })
    }
    inFlightBy.set(broker, (inFlightBy.get(broker) ?? 0) + 1)
    inFlightTotal++
    let request: Promise<ReadonlyMap<string, PartitionAnswer> | "sent">
    try {
      request = wire.produce({ broker, session: idempotent ? session : undefined, batches: wireBatches })
    } catch (error) {
      request = Promise.reject(error)
    }
    request.then(
      (answer) => answered(broker, batches, answer),
      (error: unknown) => answered(broker, batches, { error })
    )
  }

  const answered = (
    broker: number,
    batches: ReadonlyArray<Batch<M>>,
    answer: ReadonlyMap<string, PartitionAnswer> | "sent" | { readonly error: unknown }
  ) => {
    inFlightBy.set(broker, inFlightBy.get(broker)! - 1)
    inFlightTotal--
    for (const b of batches) {
      partitionOf(b.key).inFlight--
      if (answer === "sent") written(b, -1n)
      else if (!(answer instanceof Map)) failedAttempt(b, (answer as { readonly error: unknown }).error)
      else {
        const partition = (answer as ReadonlyMap<string, PartitionAnswer>).get(b.key)
        if (partition === undefined) failedAttempt(b, new SenderError(`no answer for ${b.topic}-${b.partition}`))
        else if ("baseOffset" in partition) written(b, partition.baseOffset)
        else failedAttempt(b, partition.error)
      }
    }
    pump()
  }

  /** A batch's attempt failed: on its own, or (idempotent) as the answer to an earlier batch's failure. */
  const failedAttempt = (b: Batch<M>, error: unknown) => {
    b.state = "failed"
    failed.push(b)
    recovering = true
    const name = options.protocolName(error)
    const pendingBefore = (partitions.get(b.key)?.pending.indexOf(b) ?? 0) > 0
    if (idempotent && name !== undefined && behindErrors.has(name) && pendingBefore) return
    countFailure(b, error, true)
    if (idempotent && name !== undefined && stateErrors.has(name)) b.final = true
  }

  /** One failed attempt of the batch's own; `sent`: the request may have reached the broker. */
  const countFailure = (b: Batch<M>, error: unknown, sent: boolean) => {
    b.attempts++
    b.errors.push(error)
    const row = options.classify(error)
    if (row.kind === "Fatal") b.final = true
    else if (row.ambiguous && sent) b.ambiguous = true
    if (b.attempts > retries) b.final = true
  }

  // --- recovering ---------------------------------------------------------------------------------------

  /** Nothing in flight after a failure: settle what cannot be retried, wait, look at the metadata, resend. */
  const recover = () => {
    if (recoveryRunning) return
    recoveryRunning = true
    settleFinalFailures()
    if (failed.length === 0) return recovered()
    const attempt = Math.max(1, ...failed.map((b) => b.attempts))
    timer = setTimeout(() => {
      timer = undefined
      refreshed(failed)
        .then(() => unreachable(failed))
        .then((silent) => {
          if (closed) return pump()
          if (silent.size > 0) return notReached(silent)
          const resend = failed.sort(byTurn)
          failed = []
          route(resend, takeQueued([...queues.keys()]))
          recovered()
        })
    }, options.retryDelay(attempt))
  }

  /**
   * The leaders of the failed batches that do not answer a probe, with why. A request that timed out may be
   * waiting in a paused broker's socket; anything else written there now (a resend, which the broker would
   * drop as a copy, but also every new batch behind it) is written once the broker reads on, whether or not
   * its caller is still waiting by then. Java's client likewise sends nothing on a new connection before the
   * broker answered ApiVersions.
   */
  const unreachable = (batches: ReadonlyArray<Batch<M>>): Promise<Map<number, unknown>> => {
    const brokers = new Set<number>()
    for (const b of batches) {
      const broker = wire.leader(b.topic, b.partition)
      if (broker !== undefined) brokers.add(broker)
    }
    const silent = new Map<number, unknown>()
    return Promise.all(
      [...brokers].map((broker) =>
        wire.probe(broker).then(
          () => undefined,
          (error: unknown) => {
            silent.set(broker, error)
          }
        )
      )
    ).then(() => silent)
  }

  /** Leaders did not answer: their batches count an attempt that never left; after a backoff, all look again. */
  const notReached = (silent: ReadonlyMap<number, unknown>) => {
    for (const b of failed) {
      const broker = wire.leader(b.topic, b.partition)
      const error = broker === undefined ? undefined : silent.get(broker)
      if (error !== undefined) countFailure(b, error, false)
    }
    recoveryRunning = false
    recover()
  }

  const recovered = () => {
    recoveryRunning = false
    recovering = false
    pump()
  }

  /** Fetches the metadata of the batches' topics again; if that fails, the cached metadata is used as it is. */
  const refreshed = (batches: ReadonlyArray<Batch<M>>): Promise<unknown> => {
    const topics = new Set(batches.map((b) => b.topic))
    for (const queue of queues.values()) for (const r of queue) for (const b of r.batches) topics.add(b.topic)
    return wire.refresh([...topics]).catch(() => undefined)
  }

  /**
   * Failed batches that cannot be sent again fail for good, and with them every later batch of their
   * partition (failed, or waiting to leave). Then a new session is needed before anything new leaves.
   */
  const settleFinalFailures = () => {
    const byPartition = new Map<string, Array<Batch<M>>>()
    for (const b of failed) push(byPartition, b.key, b)
    const keep: Array<Batch<M>> = []
    for (const [key, list] of byPartition) {
      let first: Failure | undefined
      for (const b of list.sort(byTurn)) {
        if (first !== undefined) fail(b, first)
        else if (b.final) first = fail(b, undefined)
        else keep.push(b)
      }
      if (first !== undefined) {
        failQueued(key, first)
        if (idempotent) needSession = true
      }
    }
    failed = keep
  }

  /**
   * Queues batches to their partitions' leaders now: `resend` first (one request per broker and round, the
   * n-th round taking each partition's n-th batch, in sequence order), then `waiting` in line order, one
   * request per send and broker. A batch whose partition has no leader counts a failed attempt and waits in
   * the leaderless queue (past its retries it fails for good, and every later batch of its partition with
   * it); other partitions go on meanwhile.
   */
  const route = (resend: ReadonlyArray<Batch<M>>, waiting: ReadonlyArray<Batch<M>>) => {
    const finalBy = new Map<string, Failure>()
    const leaderOf = (b: Batch<M>): number | undefined => {
      const earlier = finalBy.get(b.key)
      if (earlier !== undefined) {
        fail(b, earlier)
        return undefined
      }
      const broker = wire.leader(b.topic, b.partition)
      if (broker !== undefined) return broker
      countFailure(b, noLeaderError(b), false)
      if (!b.final) return noLeader
      finalBy.set(b.key, fail(b, undefined))
      if (idempotent && b.seq >= 0) needSession = true
      return undefined
    }
    const rounds = new Map<string, number>()
    const byRound = new Map<number, Array<Array<Batch<M>>>>()
    for (const b of resend) {
      const broker = leaderOf(b)
      if (broker === undefined) continue
      const round = rounds.get(b.key) ?? 0
      rounds.set(b.key, round + 1)
      const list = byRound.get(broker) ?? []
      byRound.set(broker, list)
      if (list[round] === undefined) list[round] = [b]
      else list[round].push(b)
    }
    for (const [broker, list] of byRound) for (const batches of list) enqueue(broker, batches)
    for (let i = 0; i < waiting.length; ) {
      const send = waiting[i]!.send
      const byBroker = new Map<number, Array<Batch<M>>>()
      for (; i < waiting.length && waiting[i]!.send === send; i++) {
        const b = waiting[i]!
        const broker = leaderOf(b)
        if (broker !== undefined) push(byBroker, broker, b)
      }
      for (const [broker, batches] of byBroker) enqueue(broker, batches)
    }
  }

  /** Batches without a leader: after a backoff, the metadata again, and those that have a leader now leave. */
  const waitForLeaders = () => {
    if (leaderTimer !== undefined || recovering) return
    const attempts = Math.max(
      1,
      ...(queues.get(noLeader) ?? []).flatMap((r) => r.batches.map((b) => (b.state === "queued" ? b.attempts : 0)))
    )
    leaderTimer = setTimeout(
      () =>
        refreshed([]).then(() => {
          leaderTimer = undefined
          if (!closed && !recovering) route([], takeQueued([noLeader]))
          pump()
        }),
      options.retryDelay(attempts)
    )
  }

  const noLeaderError = (b: Batch<M>) =>
    Object.assign(new SenderError(`no leader for ${b.topic}-${b.partition} in the metadata`), {
      apiId: "LEADER_NOT_AVAILABLE"
    })

  // --- sessions -----------------------------------------------------------------------------------------

  const startSession = () => {
    sessionStarting = true
    wire.newSession().then(
      (next) => {
        sessionStarting = false
        session = next
        needSession = false
        partitions.clear()
        pump()
      },
      (error: unknown) => {
        sessionStarting = false
        // nothing new can leave without a producer id: what waits fails (never sent); the next send asks again
        for (const b of takeQueued([...queues.keys()])) {
          countFailure(b, error, false)
          fail(b, undefined)
        }
        pump()
      }
    )
  }

  // --- closing ------------------------------------------------------------------------------------------

  /** Closed: whatever is not in flight fails now (what is in flight, when it answers). */
  const failAll = () => {
    const error = new SenderError("the producer is closed")
    for (const b of [...failed, ...takeQueued([...queues.keys()])]) {
      if (b.state === "done") continue
      b.errors.push(error)
      fail(b, undefined)
    }
    failed = []
  }

  const close = () => {
    if (closed) return
    closed = true
    if (timer !== undefined) clearTimeout(timer)
    if (leaderTimer !== undefined) clearTimeout(leaderTimer)
    failAll()
    for (const t of intake.splice(0)) {
      // given up and never sent: already let go of
      if (t.givenUp && !t.sent) continue
      t.givenUp = true
      open--
      if (t.sent) t.resolve(unsent(t.messages, new SenderError("the producer is closed")))
    }
  }

  return { turn, inFlight: () => open, close }
}

const push = <K, V>(map: Map<K, Array<V>>, key: K, value: V) => {
  const list = map.get(key)
  if (list === undefined) map.set(key, [value])
  else list.push(value)
}

// --- the client's protocol layer ------------------------------------------------------------------------

/** A partition's answer in a Produce response (every version the client speaks has these fields). */
interface ProducePartitionResponse {
  readonly index: number
  readonly errorCode: number
  readonly baseOffset: bigint
  readonly errorMessage?: string | null | undefined
}

/** A Produce response, as the client parses it (also kept on the `ResponseError` of a partial failure). */
interface ProduceResponse {
  readonly responses: ReadonlyArray<{
    readonly name: string
    readonly partitionResponses: ReadonlyArray<ProducePartitionResponse>
  }>
}

/** The Produce API the client picked for the cluster: `api(connection, acks, timeout, messages, options, cb)`. */
type ProduceApi = (
  connection: Connection,
  acks: number,
  timeout: number,
  messages: Array<MessageRecord>,
  options: Partial<CreateRecordsBatchOptions>,
  callback: (error: Error | null, response?: ProduceResponse | boolean) => void
) => void

/** Each partition's answer: written at its base offset, or the broker's error for it. */
const partitionAnswers = (response: ProduceResponse): Map<string, PartitionAnswer> => {
  const answers = new Map<string, PartitionAnswer>()
  for (const topic of response.responses)
    for (const p of topic.partitionResponses)
      answers.set(
        partitionKey(topic.name, p.index),
        p.errorCode === 0
          ? { baseOffset: p.baseOffset }
          : { error: new ProtocolError(p.errorCode, p.errorMessage ?? null) }
      )
  return answers
}

/** The response a `ResponseError` keeps: some partitions of the request were refused, the others written. */
const partialResponse = (error: unknown): ProduceResponse | undefined => {
  const response = (error as { readonly response?: unknown } | null)?.response as ProduceResponse | undefined
  return Array.isArray(response?.responses) ? response : undefined
}

/** The ApiVersions API the client picked: `api(connection, clientSoftwareName, clientSoftwareVersion, cb)`. */
type ApiVersionsApi = (
  connection: Connection,
  clientSoftwareName: string,
  clientSoftwareVersion: string,
  callback: (error: Error | null) => void
) => void

/** How requests are made: the produce request's acks, the broker's wait for replicas, compression, topic creation. */
export interface WireSettings {
  readonly acks: number
  readonly timeout: number
  readonly compression: CompressionAlgorithmValue
  readonly autoCreateTopics: boolean
}

/**
 * The sender's `Wire` over a @platformatic/kafka client: its cached metadata, its connections (a request
 * waits for the connection's `maxInflights` slots: give the client at least the sender's `maxInFlight`),
 * the Produce API version it negotiated, and InitProducerId for new sessions.
 */
export const clientWire = <M extends Placed>(client: Client, settings: WireSettings): Wire<M> => {
  let api: ProduceApi | undefined
  const produceApi = (callback: (error: Error | null, api?: ProduceApi) => void) => {
    if (api !== undefined) return callback(null, api)
    client[kGetApi]<never, never>("Produce", (error, found) => {
      if (found !== undefined) api = found as unknown as ProduceApi
      callback(error, api)
    })
  }
  return {
    leader: (topic, partition) => {
      const leader = client.currentMetadata?.topics.get(topic)?.partitions[partition]?.leader
      return leader === undefined || leader < 0 ? undefined : leader
    },
    refresh: (topics) =>
      client.metadata({
        topics: [...topics],
        forceUpdate: true,
        autocreateTopics: settings.autoCreateTopics,
        retries: 0
      }),
    produce: (request) =>
      new Promise((resolve, reject) => {
        // an unknown broker: the pool answers a retriable "not available in the current cluster metadata"
        const broker = client.currentMetadata?.brokers.get(request.broker) as Broker
        client[kGetConnection](broker, (error, connection) => {
          if (error !== null) return reject(error)
          produceApi((error, produce) => {
            if (error !== null || produce === undefined) return reject(error)
            const messages: Array<MessageRecord> = []
            const sequences = new NumericMap()
            for (const b of request.batches) {
              sequences.set(`${b.topic}:${b.partition}`, b.firstSequence)
              for (const m of b.messages) messages.push(m as unknown as MessageRecord)
            }
            const session = request.session
            const options = {
              compression: settings.compression,
              ...(session === undefined
                ? {}
                : { producerId: session.producerId, producerEpoch: session.producerEpoch, sequences })
            }
            produce(connection!, settings.acks, settings.timeout, messages, options, (error, response) => {
              if (error === null) return resolve(typeof response === "object" ? partitionAnswers(response) : "sent")
              const partial = partialResponse(error)
              if (partial !== undefined) resolve(partitionAnswers(partial))
              else reject(error)
            })
          })
        })
      }),
    newSession: () =>
      client
        .initIdempotentProducer({})
        .then((info) => ({ producerId: info.producerId, producerEpoch: info.producerEpoch })),
    probe: (broker) =>
      new Promise((resolve, reject) => {
        const known = client.currentMetadata?.brokers.get(broker) as Broker
        client[kGetConnection](known, (error, connection) => {
          if (error !== null) return reject(error)
          client[kGetApi]<never, never>("ApiVersions", (error, apiVersions) => {
            if (error !== null || apiVersions === undefined) return reject(error)
            const ask = apiVersions as unknown as ApiVersionsApi
            ask(connection!, "effect-kafka-publisher", "0", (error) => (error === null ? resolve() : reject(error)))
          })
        })
      })
  }
}
