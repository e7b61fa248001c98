/**
 * Kafka transactions as an Effect scope: `transaction(effect)` runs `effect` with a `Publisher` whose
 * publishes (`publish`, `publishAll`, `publishRecord`, `publishRecords`, to any topics) all go into one
 * Kafka transaction. The transaction commits when `effect` succeeds and aborts when it fails, dies or is
 * interrupted (as `sql.withTransaction` does), so `read_committed` consumers see every record of it or none.
 *
 * Guarantees and choices:
 * - One transaction at a time per producer (Kafka allows no more); concurrent calls wait their turn.
 * - Every publish accepted inside `effect` finishes before the commit (the inner publisher is closed and
 *   drained first).
 * - Dead letters: none inside a transaction. A record that fails (fatal or not) fails its publish with the
 *   typed error; if `effect` lets that error through, the transaction aborts and the caller gets it. A
 *   dead-letter record written in the same transaction would be committed beside a half-done business
 *   change, so the whole transaction is the unit of failure. If `effect` catches a publish error and
 *   succeeds anyway, the transaction still aborts (Kafka cannot commit a transaction one of whose sends
 *   failed) and the caller gets Fatal `TransactionAborted` with that error as `cause`.
 * - Sends are not retried inside a transaction (a failed send makes the transaction abortable in Kafka);
 *   retry the whole `transaction` instead, which is safe: an aborted transaction leaves nothing visible.
 * - `begin`, `commit` and `abort` are retried on Retriable `CoordinatorBusy` (CONCURRENT_TRANSACTIONS,
 *   COORDINATOR_LOAD_IN_PROGRESS), up to `coordinatorRetries` times.
 * - Fatal `ProducerFenced`: a newer producer with the same `transactionalId` exists, or the coordinator
 *   aborted the transaction on its timeout; this producer commits nothing again.
 * - A commit that fails ambiguously (its answer was lost) fails `possiblyDelivered: true`: the transaction
 *   may have committed. Do not retry it blindly; read back (`TopicReader`, read_committed) to know.
 * - A commit is bounded by `commitTimeout` (Java: `max.block.ms`, 60 s): neither driver's request timeout
 *   ends a commit to a broker that stopped answering, so without it the call could wait forever. Past it the
 *   commit fails Retriable `RequestTimeout`, ambiguous, `possiblyDelivered: true` (outcome unknown).
 *
 * Observability: one span `transaction <transactionalId>` per transaction, the publish spans its children
 * (so each record's `traceparent` names a span of the transaction's trace); the counter
 * `kafka.publisher.transactions` with the attribute `outcome` = committed | aborted | failed | unknown.
 *
 * @module
 */
import { Context, Duration, Effect, Exit, Layer, Metric, Schedule, type Scope, Semaphore } from "effect"
import { Producer, type ProducerRecord } from "./Producer.ts"
import { Fatal, markPossiblyDelivered, mayHaveWritten, type PublishError, Retriable } from "./PublishError.ts"
import * as Publisher from "./Publisher.ts"
import * as RetryPolicy from "./RetryPolicy.ts"
import { TransactionalProducer, type TransactionHandle } from "./TransactionalProducer.ts"

/** How the transactional publisher behaves; every field has a default. */
export interface Options {
  /** The inner publisher's options (its `retry` and `deadLetter` are ignored: see the module notes). */
  readonly publisher?: Omit<Publisher.Options, "retry" | "deadLetter"> | undefined
  /** Retries of `begin` / `commit` / `abort` on Retriable `CoordinatorBusy`. Default 10, 50 ms doubling. */
  readonly coordinatorRetries?: number | undefined
  /** Bounds one commit, its retries included (Java: `max.block.ms`). Default 60 s. */
  readonly commitTimeout?: Duration.Input | undefined
}

/** The defaults of `Options`. */
export const defaults = {
  /** 10 retries on a busy coordinator. */
  coordinatorRetries: 10,
  /** 60 s, Java's `max.block.ms`. */
  commitTimeout: Duration.seconds(60)
} as const

/** The transactional publishing service. */
export interface TransactionalPublisher {
  /** The producer's transactional id. */
  readonly transactionalId: string
  /**
   * Runs `effect` inside one Kafka transaction, with a `Publisher` that publishes into it: commits on
   * success, aborts on failure, defect or interruption (see the module notes for the errors).
   */
  readonly transaction: <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | PublishError, Exclude<R, Publisher.Publisher>>
}

/** The `TransactionalPublisher` service tag. */
export const TransactionalPublisher = Context.Service<TransactionalPublisher>(
  "effect-kafka-publisher/TransactionalPublisher"
)

/** The transaction outcomes counted by `kafka.publisher.transactions`. */
export type Outcome = "committed" | "aborted" | "failed" | "unknown"

/** `kafka.publisher.transactions`: transactions ended, by `outcome` (counter). */
export const transactions = Metric.counter("kafka.publisher.transactions", {
  description:
    "Transactions ended, by outcome: committed, aborted, failed (commit refused) or unknown (ambiguous commit)",
  incremental: true
})

const count = (outcome: Outcome) => Metric.update(Metric.withAttributes(transactions, { outcome }), 1)

/** A `TransactionalPublisher` over the `TransactionalProducer` in context. */
export const make = (
  options: Options = {}
): Effect.Effect<TransactionalPublisher, never, TransactionalProducer | Scope.Scope> =>
  Effect.gen(function* () {
    const producer = yield* TransactionalProducer
    const lock = yield* Semaphore.make(1)
    const retries = options.coordinatorRetries ?? defaults.coordinatorRetries
    const busyRetry: BusyRetry = (step) =>
      Effect.retry(step, {
        while: (error: PublishError) => error._tag === "Retriable" && error.reason === "CoordinatorBusy",
        schedule: Schedule.exponential(Duration.millis(50)),
        times: retries
      })
    const publisherOptions: Publisher.Options = { ...options.publisher, retry: RetryPolicy.none, deadLetter: false }
    const commitTimeout = Duration.fromInputUnsafe(options.commitTimeout ?? defaults.commitTimeout)
    const boundedCommit = (handle: TransactionHandle) =>
      Effect.timeoutOrElse(busyRetry(handle.commit), {
        duration: commitTimeout,
        orElse: () => Effect.fail(commitNotAnswered(producer.transactionalId, commitTimeout))
      })

    const transaction = <A, E, R>(
      effect: Effect.Effect<A, E, R>
    ): Effect.Effect<A, E | PublishError, Exclude<R, Publisher.Publisher>> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function* () {
          const handle = yield* busyRetry(producer.begin)
          const sends = trackSends(handle)
          const exit = yield* Effect.exit(restore(runInside(effect, sends.producer, publisherOptions)))
          const failedSend = sends.failed()
          if (Exit.isSuccess(exit) && failedSend === undefined) {
            return yield* commit(handle, boundedCommit(handle), busyRetry, exit.value)
          }
          yield* abort(handle, busyRetry)
          if (Exit.isSuccess(exit)) return yield* Effect.fail(abortedBy(failedSend!, producer.transactionalId))
          return yield* exit
        })
      ).pipe(
        lock.withPermits(1),
        Effect.withSpan(`transaction ${producer.transactionalId}`, {
          kind: "producer",
          attributes: { "messaging.system": "kafka", "messaging.kafka.transactional_id": producer.transactionalId }
        })
      ) as Effect.Effect<A, E | PublishError, Exclude<R, Publisher.Publisher>>

    return TransactionalPublisher.of({ transactionalId: producer.transactionalId, transaction })
  })

/** The TransactionalPublisher over whichever `TransactionalProducer` layer is provided. */
export const layer = (options: Options = {}): Layer.Layer<TransactionalPublisher, never, TransactionalProducer> =>
  Layer.effect(TransactionalPublisher, make(options))

type BusyRetry = <A>(step: Effect.Effect<A, PublishError>) => Effect.Effect<A, PublishError>

// The user's effect with a Publisher over the transaction; closing its scope drains every accepted publish.
const runInside = <A, E, R>(effect: Effect.Effect<A, E, R>, producer: Producer, options: Publisher.Options) =>
  Effect.scoped(
    Effect.gen(function* () {
      const publisher = yield* Publisher.make(options).pipe(Effect.provideService(Producer, producer))
      return yield* Effect.provideService(effect, Publisher.Publisher, publisher)
    })
  )

// The transaction's sends as a `Producer`, remembering the first failure (Kafka cannot commit after one).
const trackSends = (handle: TransactionHandle) => {
  let failure: PublishError | undefined
  let inFlight = 0
  const producer = Producer.of({
    send: (records: ReadonlyArray<ProducerRecord>) =>
      Effect.suspend(() => {
        inFlight++
        return handle.send(records)
      }).pipe(
        Effect.tapError((error) =>
          Effect.sync(() => {
            failure ??= error
          })
        ),
        Effect.ensuring(
          Effect.sync(() => {
            inFlight--
          })
        )
      ),
    inFlight: Effect.sync(() => inFlight)
  })
  return { producer, failed: () => failure }
}

const commit = <A>(
  handle: TransactionHandle,
  bounded: Effect.Effect<void, PublishError>,
  busyRetry: BusyRetry,
  value: A
): Effect.Effect<A, PublishError> =>
  bounded.pipe(
    Effect.matchEffect({
      onSuccess: () => Effect.as(count("committed"), value),
      onFailure: (error) => {
        if (mayHaveWritten(error)) return Effect.andThen(count("unknown"), Effect.fail(markPossiblyDelivered(error)))
        // a refused commit: abort what is left (a fenced producer cannot; its transaction is aborted for it)
        const cleanup = error.reason === "ProducerFenced" ? Effect.void : Effect.ignore(busyRetry(handle.abort))
        return cleanup.pipe(Effect.andThen(count("failed")), Effect.andThen(Effect.fail(error)))
      }
    })
  )

// Aborting is best effort: a fenced or timed-out transaction is aborted by the coordinator anyway.
const abort = (handle: TransactionHandle, busyRetry: BusyRetry) =>
  busyRetry(handle.abort).pipe(
    Effect.tapError((error) => Effect.logWarning("transaction abort failed", error.message)),
    Effect.ignore,
    Effect.andThen(count("aborted"))
  )

const commitNotAnswered = (transactionalId: string, timeout: Duration.Duration) =>
  new Retriable({
    reason: "RequestTimeout",
    ambiguous: true,
    possiblyDelivered: true,
    message: `The commit of transaction ${transactionalId} was not answered within ${Duration.format(timeout)}: it may have committed`
  })

const abortedBy = (error: PublishError, transactionalId: string) =>
  new Fatal({
    reason: "TransactionAborted",
    topic: error.topic,
    message: `Transaction ${transactionalId} aborted: a send inside it failed (${error.message})`,
    cause: error
  })
