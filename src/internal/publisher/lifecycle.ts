/**
 * Accepting publishes, and closing: what makes a `Publisher` a scoped resource (see the `Publisher` module
 * comment). New publishes are refused once closing has begun; accepted ones are waited for, up to the
 * shutdown timeout.
 *
 * @internal
 */
import { type Duration, Effect, Fiber, FiberSet, Latch, type Scope } from "effect"
import { PublisherClosed } from "../../PublishError.ts"

export interface Lifecycle {
  /** Runs an accepted publish in a fiber the publisher owns, or refuses it once closing has begun. */
  readonly accept: <A, E>(topic: string, publish: Effect.Effect<A, E>) => Effect.Effect<A, E | PublisherClosed>
  /**
   * Registers an accepted publish that runs without a fiber of its own (the per-event path), in the same
   * synchronous step as the check: false once closing has begun (refused).
   */
  readonly admit: (publish: Admitted) => boolean
  /** An admitted publish ended. */
  readonly release: (publish: Admitted) => void
  /**
   * Starts an accepted publish in a fiber the publisher owns and answers the fiber, to be joined later (a
   * stream sink's session); fails once closing has begun.
   */
  readonly start: <A, E>(
    topic: string,
    publish: Effect.Effect<A, E>
  ) => Effect.Effect<Fiber.Fiber<A, E>, PublisherClosed>
  /** Waits until closing begins: what a long-running accepted publish watches to stop taking new work. */
  readonly closing: Effect.Effect<void>
  /** Whether closing has begun. */
  readonly isClosed: () => boolean
}

/** A publish admitted without a fiber: what the shutdown timeout does to it. */
export interface Admitted {
  /** Ends it at once (the shutdown timeout passed): its caller is answered with an interruption. */
  readonly abandon: () => void
}

/**
 * Accepted publishes run in a `FiberSet` owned by the publisher (bulk calls), or without a fiber, registered
 * in `admitted` (single publishes): the caller's interruption cuts off neither. Closing sets `closed` (the one
 * check of the publisher), then waits up to `shutdownTimeout` for both; past it, the `FiberSet`'s own
 * finalizer interrupts what is left and the admitted publishes are abandoned.
 */
export const makeLifecycle = (shutdownTimeout: Duration.Duration): Effect.Effect<Lifecycle, never, Scope.Scope> =>
  Effect.gen(function* () {
    const accepted = yield* FiberSet.make<unknown, unknown>()
    const admitted = new Set<Admitted>()
    const noneAdmitted = Latch.makeUnsafe(false) // opened when closing finds or leaves `admitted` empty
    let closed = false
    const closingLatch = Latch.makeUnsafe(false)
    yield* Effect.addFinalizer(() => {
      closed = true
      closingLatch.openUnsafe()
      if (admitted.size === 0) noneAdmitted.openUnsafe()
      return drain(accepted, admitted, noneAdmitted, shutdownTimeout)
    })
    // The check and the fork are one synchronous step: no publish can pass the check and then find the set
    // closed (interrupted, not refused), or join it after the drain looked.
    const start = <A, E>(
      topic: string,
      publish: Effect.Effect<A, E>
    ): Effect.Effect<Fiber.Fiber<A, E>, PublisherClosed> =>
      Effect.withFiber((caller) => {
        if (closed) return Effect.fail(refused(topic))
        const fiber = Effect.runForkWith(caller.context)(publish) // starts at once, as FiberSet.run does
        FiberSet.addUnsafe(accepted, fiber)
        return Effect.succeed(fiber)
      })
    const accept = <A, E>(topic: string, publish: Effect.Effect<A, E>): Effect.Effect<A, E | PublisherClosed> =>
      Effect.flatMap(start(topic, publish), Fiber.join)
    const admit = (publish: Admitted): boolean => {
      if (closed) return false
      admitted.add(publish)
      return true
    }
    const release = (publish: Admitted): void => {
      if (admitted.delete(publish) && closed && admitted.size === 0) noneAdmitted.openUnsafe()
    }
    return { accept, start, admit, release, closing: closingLatch.await, isClosed: () => closed }
  })

export const refused = (topic: string) =>
  new PublisherClosed({ topic, message: "the publisher is shutting down: not accepted" })

/** Waits for accepted publishes, at most `timeout`; logs what it waits for and what it gives up on. */
const drain = (
  accepted: FiberSet.FiberSet<unknown, unknown>,
  admitted: Set<Admitted>,
  noneAdmitted: Latch.Latch,
  timeout: Duration.Duration
) =>
  Effect.gen(function* () {
    const pending = (yield* FiberSet.size(accepted)) + admitted.size
    if (pending === 0) return
    yield* Effect.logInfo("publisher closing: waiting for accepted publishes").pipe(
      Effect.annotateLogs({ inFlight: pending })
    )
    const drained = yield* Effect.andThen(FiberSet.awaitEmpty(accepted), noneAdmitted.await).pipe(
      Effect.timeoutOption(timeout)
    )
    if (drained._tag === "None") {
      yield* Effect.logError("publisher shutdown timeout: interrupting publishes still in flight").pipe(
        Effect.annotateLogs({ inFlight: (yield* FiberSet.size(accepted)) + admitted.size })
      )
      for (const publish of [...admitted]) publish.abandon()
    }
  })
