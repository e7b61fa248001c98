/**
 * One send at a time, each to its end: the drivers' guard for idempotent sends (see `KafkaJsProducer`).
 * Plain promises, so an interrupted caller cannot let the next send start while the client still works on
 * its request. A send whose caller gave up (delivery timeout, interruption) while it waited for its turn is
 * never started: nothing reaches the broker after its caller was told it failed.
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

/** A queue of sends (see the module comment). */
export interface SendQueue {
  /** Runs `send` after every send before it; `serial: false` runs it at once. */
  readonly run: <A>(send: () => Promise<A>, signal: AbortSignal) => Promise<A>
  /** Sends given to `run` and not finished. */
  readonly inFlight: () => number
  /** Waits until every send has finished, at most `timeout` (for a scope's finalizer). */
  readonly drain: (timeout: Duration.Input) => Effect.Effect<void>
}

/** A send queue: `serial` runs sends one at a time, each to its end; otherwise each at once (only counted). */
export const make = (serial: boolean): SendQueue => {
  let queue: Promise<unknown> = Promise.resolve()
  let inFlight = 0
  const run = <A>(send: () => Promise<A>, signal: AbortSignal): Promise<A> => {
    inFlight++
    const started = serial
      ? queue.then(() => {
          if (signal.aborted) throw new SendCancelled()
          return send()
        })
      : send()
    if (serial) queue = started.catch(() => undefined)
    return started.finally(() => {
      inFlight--
    })
  }
  // one timeout over both waits: the queue's tail, then the unserialised sends still in flight
  const drain = (timeout: Duration.Input) =>
    Effect.gen(function* () {
      yield* Effect.promise(() => queue)
      yield* Effect.sync(() => inFlight).pipe(
        Effect.repeat({ while: (n) => n > 0, schedule: Schedule.spaced("10 millis") })
      )
    }).pipe(Effect.timeoutOption(timeout), Effect.asVoid)
  return { run, inFlight: () => inFlight, drain }
}
