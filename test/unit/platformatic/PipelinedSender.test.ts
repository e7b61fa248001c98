/**
 * The pipelined sender on a simulated cluster: a `Wire` whose produce requests wait until the test answers
 * them, in front of partitions that check sequence numbers as a broker does (the next number, or the copy of
 * one of the last 5 batches, answered with its first offset; anything else OUT_OF_ORDER_SEQUENCE_NUMBER; and,
 * as Kafka does, any number from a producer it keeps no state for on the partition). The errors are the
 * client's own classes, classified by the driver's vocabulary.
 */
import { NetworkError, ProtocolError, TimeoutError } from "@platformatic/kafka"
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest"
import { partitionKey } from "../../../src/internal/receipts.ts"
import * as PipelinedSender from "../../../src/platformatic/PipelinedSender.ts"
import { classify, vocabulary } from "../../../src/platformatic/PlatformaticErrors.ts"

interface Msg {
  readonly topic: string
  readonly partition: number
  readonly value: string
}

interface Pending {
  readonly request: PipelinedSender.WireRequest<Msg>
  readonly resolve: (answer: ReadonlyMap<string, PipelinedSender.PartitionAnswer> | "sent") => void
  readonly reject: (error: unknown) => void
}

const key = (partition: number, topic = "t") => partitionKey(topic, partition)
const msg = (partition: number, value: string): Msg => ({ topic: "t", partition, value })
const refused = () =>
  new NetworkError("Connection to b:1 failed.", { cause: Object.assign(new Error("x"), { code: "ECONNREFUSED" }) })
const closed = () => new NetworkError("Connection closed")
const timedOut = () => new TimeoutError("Request timed out")

/** A simulated cluster (see the module comment). */
const cluster = (options: { brokers?: number } = {}) => {
  /** Where each partition's leader is, as the brokers know it, and as the client's cached metadata says. */
  const leaders = new Map<string, number | undefined>()
  const cached = new Map<string, number | undefined>()
  const logs = new Map<string, Array<{ readonly value: string; readonly producerId: bigint }>>()
  const producers = new Map<string, { last: number; batches: Array<{ first: number; count: number; base: bigint }> }>()
  const pending: Array<Pending> = []
  const requests: Array<PipelinedSender.WireRequest<Msg>> = []
  let sessions = 0
  let refreshes = 0
  let sessionFailure: unknown
  /** Brokers that do not answer (paused): a probe to one fails as a request timeout would. */
  const silent = new Set<number>()
  const probes: Array<number> = []
  for (let p = 0; p < 4; p++) {
    leaders.set(key(p), (p % (options.brokers ?? 1)) + 1)
    cached.set(key(p), (p % (options.brokers ?? 1)) + 1)
  }

  const log = (k: string) => {
    const l = logs.get(k) ?? []
    logs.set(k, l)
    return l
  }

  /** A broker appends a batch, as Kafka checks an idempotent producer's sequence numbers. */
  const append = (
    broker: number,
    session: PipelinedSender.Session | undefined,
    batch: PipelinedSender.WireBatch<Msg>
  ): PipelinedSender.PartitionAnswer => {
    const k = key(batch.partition, batch.topic)
    if (leaders.get(k) !== broker) return { error: new ProtocolError("NOT_LEADER_OR_FOLLOWER") }
    const partitionLog = log(k)
    if (session !== undefined) {
      const state = producers.get(`${session.producerId}/${k}`)
      const copy = state?.batches.find((b) => b.first === batch.firstSequence && b.count === batch.messages.length)
      if (copy !== undefined) return { baseOffset: copy.base }
      // no state for the producer here (its first write, or expired): Kafka accepts any sequence number
      if (state !== undefined && batch.firstSequence !== state.last + 1)
        return { error: new ProtocolError("OUT_OF_ORDER_SEQUENCE_NUMBER") }
      const base = BigInt(partitionLog.length)
      const next = state ?? { last: -1, batches: [] }
      next.last = batch.firstSequence + batch.messages.length - 1
      next.batches.push({ first: batch.firstSequence, count: batch.messages.length, base })
      if (next.batches.length > 5) next.batches.shift()
      producers.set(`${session.producerId}/${k}`, next)
    }
    const base = BigInt(partitionLog.length)
    for (const m of batch.messages) partitionLog.push({ value: m.value, producerId: session?.producerId ?? -1n })
    return { baseOffset: base }
  }

  const wire: PipelinedSender.Wire<Msg> = {
    leader: (topic, partition) => cached.get(key(partition, topic)),
    refresh: async () => {
      refreshes++
      for (const [k, broker] of leaders) cached.set(k, broker)
    },
    produce: (request) =>
      new Promise((resolve, reject) => {
        requests.push(request)
        pending.push({ request, resolve, reject })
      }),
    newSession: async () => {
      if (sessionFailure !== undefined) throw sessionFailure
      sessions++
      return { producerId: BigInt(100 + sessions), producerEpoch: 0 }
    },
    probe: async (broker) => {
      probes.push(broker)
      if (silent.has(broker)) throw timedOut()
    }
  }

  const take = (index: number) => {
    const [p] = pending.splice(index, 1)
    if (p === undefined) throw new Error(`no request #${index} in flight`)
    return p
  }

  return {
    wire,
    leaders,
    cached,
    pending,
    requests,
    silent,
    probes,
    get sessions() {
      return sessions
    },
    get refreshes() {
      return refreshes
    },
    failSessions: (error: unknown) => {
      sessionFailure = error
    },
    /** The values of a partition's log, in offset order. */
    values: (partition: number) => (logs.get(key(partition)) ?? []).map((r) => r.value),
    /** Answers the request in flight at `index` (default: the oldest), as the broker would; `refuse` some partitions. */
    answer: (index = 0, refuse: Readonly<Record<number, string>> = {}) => {
      const p = take(index)
      const answers = new Map<string, PipelinedSender.PartitionAnswer>()
      for (const b of p.request.batches) {
        const refusal = refuse[b.partition]
        answers.set(
          key(b.partition, b.topic),
          refusal === undefined ? append(p.request.broker, p.request.session, b) : { error: new ProtocolError(refusal) }
        )
      }
      p.resolve(answers)
    },
    /** The request fails as a whole; with `written`, the broker wrote it before the answer was lost. */
    fail: (index: number, error: unknown, written = false) => {
      const p = take(index)
      if (written) for (const b of p.request.batches) append(p.request.broker, p.request.session, b)
      p.reject(error)
    },
    /** acks=0: no answer, only "it is on the socket". */
    sent: (index = 0) => {
      const p = take(index)
      for (const b of p.request.batches) append(p.request.broker, p.request.session, b)
      p.resolve("sent")
    }
  }
}

type Cluster = ReturnType<typeof cluster>

const context = { autoCreateTopics: true }

const sender = (c: Cluster, options: Partial<PipelinedSender.Options> = {}) =>
  PipelinedSender.make(c.wire, {
    idempotent: true,
    maxInFlight: 5,
    retries: 3,
    retryDelay: (attempt) => attempt * 100,
    classify: (error) => classify(error, context),
    protocolName: (error) =>
      typeof error === "object" && error !== null
        ? vocabulary.protocolName(error as Record<string, unknown>)
        : undefined,
    session: { producerId: 1n, producerEpoch: 0 },
    ...options
  })

/** A send: takes its turn, sends, and is done once answered (as the driver does). */
const send = (s: PipelinedSender.PipelinedSender<Msg>, messages: ReadonlyArray<Msg>) => {
  const turn = s.turn()
  return turn.send(messages).finally(turn.done)
}

/** Lets promise callbacks and due timers run (fake timers: nothing waits for real). */
const settle = () => vi.advanceTimersByTimeAsync(0)

/** One record to each partition, answered: the broker keeps the producer's state there, batches may pipeline. */
const warm = async (c: Cluster, s: PipelinedSender.PipelinedSender<Msg>, partitions: ReadonlyArray<number>) => {
  const answers = send(
    s,
    partitions.map((p) => msg(p, "warm"))
  )
  await settle()
  while (c.pending.length > 0) c.answer()
  await answers
  c.requests.length = 0
}

beforeEach(() => {
  vi.useFakeTimers()
})
afterEach(() => {
  vi.useRealTimers()
})

describe("PipelinedSender", () => {
  it("keeps up to maxInFlight requests in flight per broker, numbered in the order of the sends", async () => {
    const c = cluster()
    const s = sender(c)
    await warm(c, s, [0])
    const answers = Array.from({ length: 8 }, (_, i) => send(s, [msg(0, `a${i}`), msg(0, `b${i}`)]))
    await settle()
    expect(c.pending.length).toBe(5)
    expect(c.requests.map((r) => r.batches[0]!.firstSequence)).toEqual([1, 3, 5, 7, 9])
    c.answer()
    await settle()
    expect(c.pending.length).toBe(5)
    while (c.pending.length > 0) {
      c.answer()
      await settle()
    }
    const settled = await Promise.all(answers)
    expect(settled.map((a) => a.fates)).toEqual(
      Array.from({ length: 8 }, (_, i) => [BigInt(2 * i + 1), BigInt(2 * i + 2)])
    )
    expect(c.values(0)).toEqual(["warm", ...Array.from({ length: 8 }, (_, i) => [`a${i}`, `b${i}`]).flat()])
    expect(c.requests.map((r) => r.batches[0]!.firstSequence)).toEqual([1, 3, 5, 7, 9, 11, 13, 15])
    expect(s.inFlight()).toBe(0)
  })

  it("one request per leader broker and send, one batch per partition; each broker has its own limit", async () => {
    const c = cluster({ brokers: 2 })
    const s = sender(c, { maxInFlight: 2 })
    await warm(c, s, [0, 1])
    const answers = Array.from({ length: 3 }, (_, i) => send(s, [msg(0, `x${i}`), msg(1, `y${i}`), msg(0, `z${i}`)]))
    await settle()
    // partitions 0 and 1 have leaders 1 and 2: two requests per send, two in flight per broker
    expect(c.pending.map((p) => [p.request.broker, p.request.batches.map((b) => b.messages.length)])).toEqual([
      [1, [2]],
      [2, [1]],
      [1, [2]],
      [2, [1]]
    ])
    while (c.pending.length > 0) {
      c.answer()
      await settle()
    }
    const settled = await Promise.all(answers)
    expect(settled[2]!.fates).toEqual([5n, 3n, 6n])
    expect(c.values(0)).toEqual(["warm", "x0", "z0", "x1", "z1", "x2", "z2"])
  })

  it("sequence numbers follow the order the sends were called, not the order their records were placed", async () => {
    const c = cluster()
    const s = sender(c)
    await warm(c, s, [0])
    const first = s.turn()
    const second = s.turn()
    const later = second.send([msg(0, "second")])
    await settle()
    expect(c.pending.length).toBe(0) // waits for the first send's place
    const earlier = first.send([msg(0, "first")])
    await settle()
    expect(c.requests.map((r) => r.batches[0]!.messages[0]!.value)).toEqual(["first", "second"])
    c.answer()
    c.answer()
    expect((await earlier).fates).toEqual([1n])
    expect((await later).fates).toEqual([2n])
  })

  it("a retriable failure: the batches after it answer OUT_OF_ORDER, all go again in order, same numbers", async () => {
    const c = cluster()
    const s = sender(c)
    await warm(c, s, [0])
    const answers = Array.from({ length: 3 }, (_, i) => send(s, [msg(0, `v${i}`)]))
    await settle()
    c.answer(0, { 0: "NOT_ENOUGH_REPLICAS" })
    c.answer() // sequence 2 after a gap: OUT_OF_ORDER_SEQUENCE_NUMBER
    await settle()
    expect(c.values(0)).toEqual(["warm"])
    c.answer()
    await settle()
    // nothing in flight: the backoff of the first retry, fresh metadata, then the three again
    await vi.advanceTimersByTimeAsync(100)
    expect(c.refreshes).toBe(1)
    expect(c.pending.map((p) => p.request.batches[0]!.firstSequence)).toEqual([1, 2, 3])
    expect(c.pending.every((p) => p.request.session?.producerId === 1n)).toBe(true)
    while (c.pending.length > 0) c.answer()
    expect((await Promise.all(answers)).map((a) => a.fates)).toEqual([[1n], [2n], [3n]])
    expect(c.values(0)).toEqual(["warm", "v0", "v1", "v2"])
  })

  it("answers lost after the broker wrote them: the resends are dropped as copies, the offsets are the first ones", async () => {
    const c = cluster()
    const s = sender(c)
    await warm(c, s, [0])
    const answers = Array.from({ length: 3 }, (_, i) => send(s, [msg(0, `v${i}`), msg(0, `w${i}`)]))
    await settle()
    // the first two written, then the connection breaks: every request on it fails
    c.fail(0, closed(), true)
    c.fail(0, closed(), true)
    c.fail(0, closed())
    await vi.advanceTimersByTimeAsync(100)
    while (c.pending.length > 0) c.answer()
    expect((await Promise.all(answers)).map((a) => a.fates)).toEqual([
      [1n, 2n],
      [3n, 4n],
      [5n, 6n]
    ])
    expect(c.values(0)).toEqual(["warm", "v0", "w0", "v1", "w1", "v2", "w2"])
  })

  it("a broker that stopped answering gets nothing (no resend, nothing new) until it answers a probe", async () => {
    const c = cluster()
    const s = sender(c, { retries: 5 })
    await warm(c, s, [0])
    const first = send(s, [msg(0, "a")])
    await settle()
    // paused: the request waits in the broker's socket, its answer times out
    c.silent.add(1)
    c.fail(0, timedOut(), true)
    await settle()
    const later = send(s, [msg(0, "b")])
    for (let attempt = 1; attempt <= 3; attempt++) await vi.advanceTimersByTimeAsync(attempt * 100)
    expect(c.probes).toEqual([1, 1, 1])
    expect(c.pending).toEqual([]) // nothing written behind the request the broker has not read
    c.silent.delete(1)
    await vi.advanceTimersByTimeAsync(400)
    // the resend (a copy: answered with the first offset), then the later send
    while (c.pending.length > 0) c.answer()
    const [a, b] = await Promise.all([first, later])
    expect(a.fates).toEqual([1n])
    expect(b.fates).toEqual([2n])
    expect(c.values(0)).toEqual(["warm", "a", "b"])
  })

  it("a probe that never gets through spends the retries: unknown after a request that may have been written", async () => {
    const c = cluster()
    const s = sender(c, { retries: 2 })
    await warm(c, s, [0])
    const answer = send(s, [msg(0, "a")])
    await settle()
    c.silent.add(1)
    c.fail(0, timedOut(), true)
    await vi.advanceTimersByTimeAsync(100 + 200)
    const { failures } = await answer
    expect(failures[0]).toMatchObject({ outcome: "unknown" })
    expect(c.requests.length).toBe(1) // never sent again
  })

  it("a leader change: NOT_LEADER, the metadata again, the batches go to the new leader in order", async () => {
    const c = cluster({ brokers: 2 })
    const s = sender(c)
    await warm(c, s, [0])
    const answers = Array.from({ length: 3 }, (_, i) => send(s, [msg(0, `v${i}`)]))
    await settle()
    c.leaders.set(key(0), 2)
    while (c.pending.length > 0) c.answer()
    await vi.advanceTimersByTimeAsync(100)
    expect(c.pending.map((p) => p.request.broker)).toEqual([2, 2, 2])
    while (c.pending.length > 0) c.answer()
    expect((await Promise.all(answers)).map((a) => a.fates)).toEqual([[1n], [2n], [3n]])
  })

  it("the first batch of a partition in a session goes alone: the broker checks nothing before it has state", async () => {
    const c = cluster()
    const s = sender(c)
    const answers = Array.from({ length: 3 }, (_, i) => send(s, [msg(0, `v${i}`)]))
    await settle()
    expect(c.pending.length).toBe(1)
    c.answer()
    await settle()
    expect(c.pending.length).toBe(2) // acknowledged: the broker keeps the producer's state, the rest pipeline
    while (c.pending.length > 0) c.answer()
    await Promise.all(answers)
    // quiet for longer than the state is trusted: one at a time again until a write is acknowledged
    await vi.advanceTimersByTimeAsync(PipelinedSender.protectedFor)
    const later = Array.from({ length: 2 }, (_, i) => send(s, [msg(0, `l${i}`)]))
    await settle()
    expect(c.pending.length).toBe(1)
    c.answer()
    await settle()
    c.answer()
    await Promise.all(later)
    expect(c.values(0)).toEqual(["v0", "v1", "v2", "l0", "l1"])
  })

  for (const warmed of [false, true])
    it(`a batch refused for good: the later batches of its partition fail notWritten, never written ahead of it (${warmed ? "batches in flight answer OUT_OF_ORDER" : "the first batch of the session: the others wait"})`, async () => {
      const c = cluster({ brokers: 2 })
      const s = sender(c, { maxInFlight: 2 })
      if (warmed) await warm(c, s, [0, 1])
      const a = send(s, [msg(0, "a")])
      const b = send(s, [msg(0, "b"), msg(1, "b1")])
      const d = send(s, [msg(0, "d")])
      await settle()
      expect(c.pending.length).toBe(warmed ? 3 : 2) // partition 0: a, and b too once the broker has state
      c.answer(0, { 0: "MESSAGE_TOO_LARGE" })
      while (c.pending.length > 0) c.answer(0) // b's partition 0 (out of order, when sent) and b's partition 1
      const [settledA, settledB, settledD] = await Promise.all([a, b, d])
      expect(settledA.fates).toEqual(["notWritten"])
      expect(settledA.failures[0]!.behind).toBeUndefined()
      expect(settledB.fates).toEqual(["notWritten", warmed ? 1n : 0n])
      expect(settledB.failures[0]!.behind).toBe(settledA.failures[0])
      expect(settledD.fates).toEqual(["notWritten"])
      expect(c.values(0)).toEqual(warmed ? ["warm"] : [])
      // a new producer session before anything new: sequence numbers from 0 again
      const e = send(s, [msg(0, "e")])
      await settle()
      expect(c.sessions).toBe(1)
      expect(c.pending[0]!.request.session?.producerId).toBe(101n)
      expect(c.pending[0]!.request.batches[0]!.firstSequence).toBe(0)
      c.answer()
      expect((await e).fates).toEqual([warmed ? 1n : 0n])
    })

  it("retries spent: notWritten after refused connections, unknown once an attempt may have been written", async () => {
    const c = cluster()
    const s = sender(c, { retries: 2 })
    const never = send(s, [msg(0, "never")])
    const maybe = send(s, [msg(1, "maybe")])
    await settle()
    c.fail(1, closed()) // partition 1: the connection broke after the request left
    c.fail(0, refused())
    for (let attempt = 1; attempt <= 2; attempt++) {
      await vi.advanceTimersByTimeAsync(attempt * 100)
      // both partitions go again in one request (one batch per partition)
      expect(c.pending.map((p) => p.request.batches.length)).toEqual([2])
      c.fail(0, refused())
    }
    const [n, m] = await Promise.all([never, maybe])
    expect(n.failures[0]).toMatchObject({ outcome: "notWritten" })
    expect(n.failures[0]!.errors.length).toBe(3)
    expect(m.failures[0]).toMatchObject({ outcome: "unknown" })
  })

  it("the turn rule: a send taken in line before a failed send's caller was done is refused on its partition", async () => {
    const c = cluster()
    const s = sender(c)
    const a = s.turn()
    const answerA = a.send([msg(0, "a")])
    await settle()
    const b = s.turn() // taken while a is in flight
    c.answer(0, { 0: "MESSAGE_TOO_LARGE" })
    expect((await answerA).fates).toEqual(["notWritten"])
    // placed after a failed, before a's caller was done: refused, never sent
    const answerB = b.send([msg(0, "b"), msg(1, "b1")])
    await settle()
    a.done()
    c.answer() // b's partition 1, in the new session
    const settledB = await answerB
    b.done()
    expect(settledB.fates[0]).toBe("notWritten")
    expect(settledB.failures[0]!.behind).toBeDefined()
    // a send taken after a's caller was done goes through (partition 1 of b went too)
    const answerC = send(s, [msg(0, "c")])
    await settle()
    while (c.pending.length > 0) c.answer()
    expect((await answerC).fates).toEqual([0n])
    expect(c.values(0)).toEqual(["c"])
    expect(c.values(1)).toEqual(["b1"])
  })

  it("a caller that gives up: its batches that have not left are never sent", async () => {
    const c = cluster()
    const s = sender(c, { maxInFlight: 1 })
    const first = send(s, [msg(0, "first")])
    const turn = s.turn()
    void turn.send([msg(0, "given up")])
    await settle()
    turn.done()
    c.answer()
    await first
    await settle()
    expect(c.pending.length).toBe(0)
    expect(c.values(0)).toEqual(["first"])
    expect(s.inFlight()).toBe(0)
  })

  it("a partition without a leader waits for one (counting attempts); the others go on", async () => {
    const c = cluster()
    c.cached.set(key(1), undefined)
    c.leaders.set(key(1), undefined)
    const s = sender(c)
    const stuck = send(s, [msg(1, "stuck")])
    const other = send(s, [msg(0, "other")])
    await settle()
    expect(c.pending.map((p) => p.request.batches[0]!.messages[0]!.value)).toEqual(["other"])
    c.answer()
    expect((await other).fates).toEqual([0n])
    c.leaders.set(key(1), 1)
    await vi.advanceTimersByTimeAsync(100)
    c.answer()
    expect((await stuck).fates).toEqual([0n])
  })

  it("without idempotence: one batch per partition in flight (nothing on the broker keeps the order), partitions overlap", async () => {
    const c = cluster()
    const s = sender(c, { idempotent: false, session: undefined })
    const answers = [send(s, [msg(0, "a")]), send(s, [msg(0, "b")]), send(s, [msg(1, "c")])]
    await settle()
    expect(c.pending.map((p) => p.request.batches.map((b) => b.messages[0]!.value))).toEqual([["a"], ["c"]])
    c.answer(0, { 0: "NOT_ENOUGH_REPLICAS" })
    c.answer()
    await vi.advanceTimersByTimeAsync(100)
    while (c.pending.length > 0) {
      c.answer()
      await settle()
    }
    expect((await Promise.all(answers)).map((a) => a.fates)).toEqual([[0n], [1n], [0n]])
    expect(c.values(0)).toEqual(["a", "b"])
  })

  it("without idempotence: no producer id, no sequence numbers; acks=0 answers offset -1", async () => {
    const c = cluster()
    const s = sender(c, { idempotent: false, session: undefined })
    const answer = send(s, [msg(0, "x")])
    await settle()
    expect(c.pending[0]!.request.session).toBeUndefined()
    c.sent()
    expect((await answer).fates).toEqual([-1n])
  })

  it("a new session that cannot start: what waits fails notWritten; the next send asks again", async () => {
    const c = cluster()
    const s = sender(c)
    const refusedBatch = send(s, [msg(0, "big")])
    await settle()
    c.answer(0, { 0: "MESSAGE_TOO_LARGE" })
    await refusedBatch
    c.failSessions(refused())
    const waiting = send(s, [msg(0, "w")])
    const settledWaiting = await waiting
    expect(settledWaiting.fates).toEqual(["notWritten"])
    c.failSessions(undefined)
    const next = send(s, [msg(0, "n")])
    await settle()
    c.answer()
    expect((await next).fates).toEqual([0n])
    expect(c.sessions).toBe(1)
  })
})
