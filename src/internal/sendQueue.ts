/**
 * One send at a time, each to its end: the drivers' guard for idempotent sends (see `KafkaJsProducer`).
 * Plain promises, so an interrupted caller cannot let the next send start while the client still works on
 * its request. A send whose caller gave up (delivery timeout, interruption) while it waited for its turn is
 * never started: nothing reaches the broker after its caller was told it failed.
 *
 * `keepOrder` (the ordered-failure property of `Producer`): a send taken in line (`turn`) before a failed
 * send's caller was done with it is not started: it fails with `NotSentAfterFailure`, certainly not written,
 * so a caller that resends the failed send and then this one keeps their order. That covers the sends
 * queued behind the failed one when it failed, and those called after that but before its caller had its
 * answer; a refused send refuses the sends called before its own caller was done, in turn. A send taken in
 * line after the caller was done runs as usual.
 *
 * @internal
 */
import { type Duration, Effect, Schedule } from "effect"

/** A queued send whose caller gave up before it started: never sent. */
export class SendCancelled extends Error {
  override readonly name = "SendCancelled"
  constructor() {
    super("cancelled before it was sent")
  }
}

/** A queued send not started because a send before it failed (`keepOrder`): never sent. */
export class NotSentAfterFailure extends Error {
  override readonly name = "NotSentAfterFailure"
  /** The earlier send's failure. */
  readonly earlier: unknown
  constructor(earlier: unknown) {
    super("not sent, to keep the order: an earlier send failed while this one waited behind it")
    this.earlier = earlier
  }
}

/** A send's place in line. */
export interface Turn {
  /** Runs `send` after every send before it (serial), or at once. */
  readonly run: <A>(send: () => Promise<A>, signal: AbortSignal) => Promise<A>
  /** The caller is done with the send's answer (`keepOrder`: call it always, once the answer is handled). */
  readonly done: () => void
}

/** A queue of sends (see the module comment). */
export interface SendQueue {
  /** Takes a place in line now, for a send run later. */
  readonly turn: () => Turn
  /** Runs `send` after every send before it; `serial: false` runs it at once. Not with `keepOrder` (use `turn`). */
  readonly run: <A>(send: () => Promise<A>, signal: AbortSignal) => Promise<A>
  /** Sends given to `run` and not finished. */
  readonly inFlight: () => number
  /** Waits until every send has finished, at most `timeout` (for a scope's finalizer). */
  readonly drain: (timeout: Duration.Input) => Effect.Effect<void>
}

/** How a serial queue treats the sends behind a failed one (see the module comment). */
export interface Options {
  /** Sends taken in line before a failed send's caller was done fail with `NotSentAfterFailure`. Default false. */
  readonly keepOrder?: boolean | undefined
}

/** A failed send, as long as it may refuse later ones: its turn, and the last turn taken when its caller was done. */
interface Failed {
  readonly id: number
  readonly error: unknown
  doneAt: number | undefined
}

/** A send queue: `serial` runs sends one at a time, each to its end; otherwise each at once (only counted). */
export const make = (serial: boolean, options: Options = {}): SendQueue => {
  let queue: Promise<unknown> = Promise.resolve()
  let inFlight = 0
  let turns = 0
  const failures: Array<Failed> = []

  /** The failure that refuses turn `id` (turns start in order: failures done before it refuse nothing more). */
  const refusedBy = (id: number): Failed | undefined => {
    for (let i = failures.length - 1; i >= 0; i--) {
      const doneAt = failures[i]!.doneAt
      if (doneAt !== undefined && doneAt < id) failures.splice(i, 1)
    }
    return failures.find((f) => f.id < id && (f.doneAt === undefined || id <= f.doneAt))
  }

  const turn = (): Turn => {
    const id = ++turns
    let failed: Failed | undefined
    let doneAt: number | undefined
    const fails = (error: unknown): never => {
      // a send whose caller gave up is no failure to keep order behind: nothing of it was answered
      if (options.keepOrder === true && !(error instanceof SendCancelled)) {
        failed = { id, error, doneAt }
        failures.push(failed)
      }
      throw error
    }
    const start = <A>(send: () => Promise<A>, signal: AbortSignal): Promise<A> => {
      if (signal.aborted) throw new SendCancelled()
      const earlier = options.keepOrder === true ? refusedBy(id) : undefined
      if (earlier !== undefined) return fails(new NotSentAfterFailure(earlier.error))
      return send().catch(fails)
    }
    return {
      run: <A>(send: () => Promise<A>, signal: AbortSignal): Promise<A> => {
        inFlight++
        const started = serial ? queue.then(() => start(send, signal)) : send()
        if (serial) queue = started.catch(() => undefined)
        return started.finally(() => {
          inFlight--
        })
      },
      done: () => {
        doneAt ??= turns
        if (failed !== undefined) failed.doneAt ??= doneAt
      }
    }
  }

  // one timeout over both waits: the queue's tail, then the unserialised sends still in flight
  const drain = (timeout: Duration.Input) =>
    Effect.promise(() => queue).pipe(Effect.andThen(idle(() => inFlight)), Effect.timeoutOption(timeout), Effect.asVoid)
  return { turn, run: (send, signal) => turn().run(send, signal), inFlight: () => inFlight, drain }
}

/** Waits until `inFlight` says 0, looking every 10 ms (no timeout of its own: bound it). */
export const idle = (inFlight: () => number): Effect.Effect<void> =>
  Effect.sync(inFlight).pipe(
    Effect.repeat({ while: (n) => n > 0, schedule: Schedule.spaced("10 millis") }),
    Effect.asVoid
  )
