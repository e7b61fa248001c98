/**
 * A send that answers through a callback instead of an Effect: what the `Publisher`'s per-event path hands
 * its record to, so that an accepted publish needs no fiber of its own (a fork and a join cost more CPU than
 * the rest of a publish). The `Batcher` answers this way natively (`TypeId`); any other `Producer` is
 * adapted with one fiber per send (`of`).
 *
 * @internal
 */
import { type Context, Effect, Exit, Option } from "effect"
import type { CircuitBreaker, CircuitOpen } from "../CircuitBreaker.ts"
import type { Producer, ProducerRecord, RecordMetadata } from "../Producer.ts"
import type { PublishError } from "../PublishError.ts"
import * as BreakerNow from "./breakerNow.ts"

/** The property under which a `Producer` offers its callback send. */
export const TypeId: unique symbol = Symbol.for("effect-kafka-publisher/internal/CallbackSend")

/** What a send answers: one `RecordMetadata` per record, in input order, or the send's failure. */
export type Answer = Exit.Exit<ReadonlyArray<RecordMetadata>, PublishError | CircuitOpen>

/** A send that was made: what its caller can still do about it. */
export interface Pending {
  /**
   * Takes the records back if they have not left for the broker (the Batcher's queue): true, they are never
   * sent and no answer comes. False when they may be on their way (the answer still comes).
   */
  readonly withdraw: () => boolean
  /**
   * Gives up on the answer (the delivery or shutdown timeout passed): withdraws the records if it can, else
   * stops what it can (a send running as an Effect is interrupted). An answer may still come, to be ignored.
   */
  readonly abandon: () => void
}

/** The `Pending` of a send answered before it returned. */
export const answered: Pending = { withdraw: () => false, abandon: () => {} }

/** Who waits for a send's answer (an object, not closures: one allocation less per publish). */
export interface Caller {
  /** The caller's context (its tracer, its parent span), for a send that runs as an Effect; a native one never asks. */
  readonly context: () => Context.Context<never>
  /** Called once with the answer, possibly before the send returns. */
  readonly onAnswer: (answer: Answer) => void
}

/** Sends `records` for `caller`. */
export type CallbackSend = (records: ReadonlyArray<ProducerRecord>, caller: Caller) => Pending

/** A `Producer` that answers through callbacks natively. */
export interface WithCallbackSend {
  readonly [TypeId]: CallbackSend
}

const hasCallbackSend = (producer: Producer): producer is Producer & WithCallbackSend => TypeId in producer

/**
 * The callback send of `producer`: its own when it has one (behind the circuit breaker, when there is one that
 * decides synchronously), else `send` (the producer's, or the breaker's `protect` around it) run in a fiber
 * per call, interrupted by `abandon`.
 */
export const of = (
  producer: Producer,
  send: (
    records: ReadonlyArray<ProducerRecord>
  ) => Effect.Effect<ReadonlyArray<RecordMetadata>, PublishError | CircuitOpen>,
  breaker: Option.Option<CircuitBreaker>
): CallbackSend => {
  const breakerNow = Option.isSome(breaker) ? BreakerNow.of(breaker.value) : undefined
  if (hasCallbackSend(producer) && (Option.isNone(breaker) || breakerNow !== undefined)) {
    const native = producer[TypeId]
    return breakerNow === undefined ? native : behind(breakerNow, native)
  }
  return (records, caller) => {
    const fiber = Effect.runForkWith(caller.context())(send(records))
    fiber.addObserver((answer) => caller.onAnswer(answer))
    return { withdraw: () => false, abandon: () => fiber.interruptUnsafe() }
  }
}

/**
 * `send` behind the breaker: a rejected call is answered `CircuitOpen` at once; an admitted one is completed
 * with its answer, or as interrupted when it is taken back before it left (a trial must not stay open).
 */
const behind =
  (breaker: BreakerNow.BreakerNow, send: CallbackSend): CallbackSend =>
  (records, caller) => {
    const admission = breaker.admit()
    if (admission._tag === "Reject") {
      caller.onAnswer(Exit.fail(admission.error))
      return answered
    }
    let completed = false
    const complete = (exit: Exit.Exit<unknown, unknown>) => {
      if (completed) return
      completed = true
      breaker.complete(admission.trial, exit)
    }
    const pending = send(records, {
      context: caller.context,
      onAnswer: (answer) => {
        complete(answer)
        caller.onAnswer(answer)
      }
    })
    const withdraw = () => {
      const withdrawn = pending.withdraw()
      if (withdrawn) complete(Exit.interrupt())
      return withdrawn
    }
    return {
      withdraw,
      abandon: () => {
        if (!withdraw()) pending.abandon()
      }
    }
  }
