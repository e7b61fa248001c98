/**
 * One timeout for many concurrent effects, all with the same duration (a publisher's delivery timeout),
 * kept with one timer instead of one each.
 *
 * `Effect.timeoutOrElse` races every effect against its own sleep: two fibers and a timer per effect, and an
 * interruption of the sleep for every effect that finishes in time (nearly all of them). Here the effect
 * runs in one fiber and its deadline joins a list. With one duration, deadlines come in the order
 * the effects start, so the list stays sorted by appending; one fiber sleeps until the first deadline. An
 * effect that finishes in time only unlinks its node; one that finishes at once never links one.
 *
 * Time is Effect's `Clock` (monotonic), so `TestClock` drives it.
 */
import { Clock, Duration, Effect, Fiber, Latch, type Scope } from "effect"

interface Node {
  readonly deadline: bigint
  readonly onTimeout: () => void
  prev: Node | undefined
  next: Node | undefined
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
}

/** Deadlines `timeout` after each start; the watching fiber lives in the scope. */
export const make = (timeout: Duration.Duration): Effect.Effect<Deadlines, never, Scope.Scope> =>
  Effect.gen(function* () {
    // An infinite timeout never fires: nothing to watch.
    if (!Duration.isFinite(timeout)) return { bound: (self) => self }
    const clock = yield* Clock.Clock
    const timeoutNanos = Duration.toNanosUnsafe(timeout)
    let head: Node | undefined
    let tail: Node | undefined
    const wake = Latch.makeUnsafe(false) // opened when the list stops being empty

    const append = (node: Node): void => {
      if (tail === undefined) {
        head = node
        wake.openUnsafe()
      } else {
        tail.next = node
        node.prev = tail
      }
      tail = node
    }

    const unlink = (node: Node): void => {
      if (node.prev === undefined && head !== node) return // unlinked already
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
        unlink(first)
        first.onTimeout()
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
          const deadline = clock.monotonicTimeNanosUnsafe() + timeoutNanos
          // Forked in the same synchronous step that registers what stops it (the deadline, the caller's
          // interruption below): there is no moment at which it runs with nobody to stop it.
          const fiber = Effect.runForkWith(parent.context)(self)
          const done = fiber.pollUnsafe()
          if (done !== undefined) return resume(done) // finished at once: no deadline needed
          const node: Node = {
            deadline,
            onTimeout: () => resume(Effect.andThen(Fiber.interrupt(fiber), onTimeout())),
            prev: undefined,
            next: undefined
          }
          append(node)
          // `resume` takes the first answer only: the deadline's, or the fiber's
          fiber.addObserver((exit) => {
            unlink(node)
            resume(exit)
          })
          // the caller was interrupted: stop waiting, and stop `self`
          return Effect.suspend(() => {
            unlink(node)
            return Fiber.interrupt(fiber)
          })
        })
      )

    return { bound }
  })
