/**
 * A send that answers through a callback instead of an Effect: what the `Publisher`'s per-event path hands
 * its record to, so that an accepted publish needs no fiber of its own (a fork and a join cost more CPU than
 * the rest of a publish). The `Batcher` answers this way natively (`TypeId`); any other `Producer` is
 * adapted with one fiber per send (`of`).
 *
 * @internal
 */
import { type Context, Effect, type Exit } from "effect"
import type { CircuitOpen } from "../CircuitBreaker.ts"
import type { Producer, ProducerRecord, RecordMetadata } from "../Producer.ts"
import type { PublishError } from "../PublishError.ts"

/** The property under which a `Producer` offers its callback send. */
export const TypeId: unique symbol = Symbol.for("effect-kafka-publisher/internal/CallbackSend")

/** What a send answers: one `RecordMetadata` per record, in input order, or the send's failure. */
export type Answer = Exit.Exit<ReadonlyArray<RecordMetadata>, PublishError | CircuitOpen>

/**
 * Stops waiting for the answer (the delivery timeout passed). True when the records were withdrawn before they
 * were accepted for sending (certainly never sent); false when they may still be sent. The callback is not
 * called after a withdrawal.
 */
export type Cancel = () => boolean

/** Who waits for a send's answer (an object, not closures: one allocation less per publish). */
export interface Caller {
  /** The caller's context (its tracer, its parent span), for a send that runs as an Effect; a native one never asks. */
  readonly context: () => Context.Context<never>
  /** Called once with the answer, possibly before the send returns. */
  readonly onAnswer: (answer: Answer) => void
}

/** Sends `records` for `caller`. */
export type CallbackSend = (records: ReadonlyArray<ProducerRecord>, caller: Caller) => Cancel

/** A `Producer` that answers through callbacks natively. */
export interface WithCallbackSend {
  readonly [TypeId]: CallbackSend
}

const hasCallbackSend = (producer: Producer): producer is Producer & WithCallbackSend => TypeId in producer

/**
 * The callback send of `producer`: its own when it has one and nothing wraps it, else `send` (the producer's,
 * or the circuit breaker's around it) run in a fiber per call, interrupted by `Cancel`.
 */
export const of = (
  producer: Producer,
  send: (
    records: ReadonlyArray<ProducerRecord>
  ) => Effect.Effect<ReadonlyArray<RecordMetadata>, PublishError | CircuitOpen>
): CallbackSend => {
  if (send === producer.send && hasCallbackSend(producer)) return producer[TypeId]
  return (records, caller) => {
    const fiber = Effect.runForkWith(caller.context())(send(records))
    fiber.addObserver((answer) => caller.onAnswer(answer))
    return () => {
      fiber.interruptUnsafe()
      return false
    }
  }
}
