/**
 * One timeout for many concurrent effects, all with the same duration (a publisher's delivery timeout),
 * kept with one timer instead of one each.
 *
 * `Effect.timeoutOrElse` races every effect against its own sleep: two fibers and a timer per effect, and an
 * interruption of the sleep for every effect that finishes in time (nearly all of them). Here a deadline is
 * a node in one list. With one duration, deadlines come in the order they start, so the list stays sorted
 * by appending; one fiber sleeps until the first deadline. Something that finishes in time only unlinks its
 * node (O(1)).
 *
 * Two ways in: `bound` runs an effect in a fiber of its own and interrupts it at the deadline; `track` puts
 * an object of the caller's in the list itself (the `Publisher`'s per-event path, which has no fiber to
 * interrupt and allocates no node).
 *
 * Time is Effect's `Clock` (monotonic), so `TestClock` drives it.
 */
import { Clock, Duration, Effect, Fiber, Latch, type Scope } from "effect"

/** What `track` watches: the list's links live in the object itself. */
export interface Tracked {
  /** Monotonic nanoseconds; set by `track`. */
  deadline: bigint
  prev: Tracked | undefined
  next: Tracked | undefined
  /** Called once, from the watching fiber, when the deadline has passed (the object is unlinked first). */
  readonly onDeadline: () => void
}

export interface Deadlines {
  /**
   * `self`, or, once the duration has passed since it started, `self` interrupted and then `onTimeout()`.
   * `self` runs in a fiber of its own (with the caller's context), stopped if the caller is interrupted.
   */
  readonly bound: <A, E, A2, E2>(
    self: Effect.Effect<A, E>,
    onTimeout: () => Effect.Effect<A2, E2>
  ) => Effect.Effect<A | A2, E | E2>
  /** Watches `tracked` from now: its `onDeadline` runs once the duration has passed, unless `untrack`ed first. */
  readonly track: (tracked: Tracked) => void
  /** Stops watching (a no-op when it is not watched). */
  readonly untrack: (tracked: Tracked) => void
}

/** Deadlines `timeout` after each start; the watching fiber lives in the scope. */
export const make = (timeout: Duration.Duration): Effect.Effect<Deadlines, never, Scope.Scope> =>
  Effect.gen(function* () {
    // An infinite timeout never fires: nothing to watch.
    if (!Duration.isFinite(timeout)) return { bound: (self) => self, track: () => {}, untrack: () => {} }
    const clock = yield* Clock.Clock
    const timeoutNanos = Duration.toNanosUnsafe(timeout)
    let head: Tracked | undefined
    let tail: Tracked | undefined
    const wake = Latch.makeUnsafe(false) // opened when the list stops being empty

    const track = (node: Tracked): void => {
      node.deadline = clock.monotonicTimeNanosUnsafe() + timeoutNanos
      node.prev = undefined
      node.next = undefined
      if (tail === undefined) {
        head = node
        wake.openUnsafe()
      } else {
        tail.next = node
        node.prev = tail
      }
      tail = node
    }

    const untrack = (node: Tracked): void => {
      if (node.prev === undefined && head !== node) return // not in the list
      if (node.prev === undefined) head = node.next
      else node.prev.next = node.next
      if (node.next === undefined) tail = node.prev
      else node.next.prev = node.prev
      node.prev = undefined
      node.next = undefined
    }

    // Sleeps until the first deadline. Nodes appended meanwhile have later deadlines, and one unlinked
    // meanwhile only makes it wake early: either way it looks at the list again.
    const watch = Effect.whileLoop({
      while: () => true,
      body: () => {
        wake.closeUnsafe()
        const first = head
        if (first === undefined) return wake.await
        const wait = first.deadline - clock.monotonicTimeNanosUnsafe()
        if (wait > BigInt(0)) return Effect.sleep(Duration.nanos(wait))
        untrack(first)
        first.onDeadline()
        return Effect.void
      },
      step: () => {}
    })
    yield* Effect.forkScoped(watch)

    const bound = <A, E, A2, E2>(
      self: Effect.Effect<A, E>,
      onTimeout: () => Effect.Effect<A2, E2>
    ): Effect.Effect<A | A2, E | E2> =>
      Effect.withFiber((parent) =>
        Effect.callback<A | A2, E | E2>((resume) => {
          // Forked in the same synchronous step that registers what stops it (the deadline, the caller's
          // interruption below): there is no moment at which it runs with nobody to stop it.
          const fiber = Effect.runForkWith(parent.context)(self)
          const done = fiber.pollUnsafe()
          if (done !== undefined) return resume(done) // finished at once: no deadline needed
          const node: Tracked = {
            deadline: BigInt(0),
            prev: undefined,
            next: undefined,
            onDeadline: () => resume(Effect.andThen(Fiber.interrupt(fiber), onTimeout()))
          }
          track(node)
          // `resume` takes the first answer only: the deadline's, or the fiber's
          fiber.addObserver((exit) => {
            untrack(node)
            resume(exit)
          })
          // the caller was interrupted: stop waiting, and stop `self`
          return Effect.suspend(() => {
            untrack(node)
            return Fiber.interrupt(fiber)
          })
        })
      )

    return { bound, track, untrack }
  })
