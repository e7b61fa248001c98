/**
 * The driver-neutral transactional producer: what a driver provides so that several sends, to any topics,
 * become visible to `read_committed` consumers together or not at all (Kafka transactions, KIP-98).
 *
 * A driver opens one transaction at a time (`begin`), writes inside it with the handle's `send`, and ends
 * it with `commit` or `abort`. It classifies its own errors, as the `Producer` does:
 * - `PRODUCER_FENCED` / `INVALID_PRODUCER_EPOCH`: Fatal `ProducerFenced`, for the producer (a newer one
 *   with the same `transactionalId` took over, or the coordinator aborted the transaction on its timeout);
 *   nothing this producer sends afterwards becomes visible.
 * - `CONCURRENT_TRANSACTIONS` / `COORDINATOR_LOAD_IN_PROGRESS`: Retriable `CoordinatorBusy`; the
 *   `TransactionalPublisher` retries `begin` / `commit` / `abort` on it (the kafkajs issue 430 trap: the
 *   previous transaction is still completing).
 * - A commit whose answer was lost (a timeout, a broken connection): Retriable, ambiguous; the
 *   `TransactionalPublisher` marks it `possiblyDelivered` (the transaction may be committed or aborted).
 *
 * @module
 */
import { Config, Context, Duration, type Effect } from "effect"
import type { Producer } from "./Producer.ts"
import type { PublishError } from "./PublishError.ts"

/** One open transaction of a `TransactionalProducer`. */
export interface TransactionHandle {
  /** Writes records inside the transaction (visible to read_committed consumers only after `commit`). */
  readonly send: Producer["send"]
  /** Commits every record sent inside the transaction. */
  readonly commit: Effect.Effect<void, PublishError>
  /** Aborts the transaction: nothing of it becomes visible to read_committed consumers. */
  readonly abort: Effect.Effect<void, PublishError>
}

/** The driver interface of a transactional producer. */
export interface TransactionalProducer {
  /** The producer's `transactionalId` (Java: `transactional.id`). */
  readonly transactionalId: string
  /** Opens a transaction; one at a time per producer (the `TransactionalPublisher` serializes them). */
  readonly begin: Effect.Effect<TransactionHandle, PublishError>
}

/** The `TransactionalProducer` service tag. */
export const TransactionalProducer = Context.Service<TransactionalProducer>(
  "effect-kafka-publisher/TransactionalProducer"
)

/** The transaction settings of a driver. */
export interface TransactionConfig {
  /** The transactional id (Java: `transactional.id`): a second producer with the same id fences the first. */
  readonly transactionalId: string
  /** How long the coordinator lets a transaction stay open before it aborts it (Java: `transaction.timeout.ms`). Default 60 s. */
  readonly transactionTimeout?: Duration.Input | undefined
}

/** The defaults of `TransactionConfig`. */
export const defaults = {
  /** 60 s, Java's `transaction.timeout.ms`. */
  transactionTimeout: Duration.seconds(60)
} as const

/** The transaction timeout of a config, resolved to its default when unset. */
export const transactionTimeoutOf = (config: TransactionConfig): Duration.Duration =>
  Duration.fromInputUnsafe(config.transactionTimeout ?? defaults.transactionTimeout)

/** `KAFKA_TRANSACTIONAL_ID` (required) and `KAFKA_TRANSACTION_TIMEOUT` (a duration, default 60 s). */
export const config: Config.Config<TransactionConfig> = Config.all({
  /** `KAFKA_TRANSACTIONAL_ID`. */
  transactionalId: Config.String("KAFKA_TRANSACTIONAL_ID"),
  /** `KAFKA_TRANSACTION_TIMEOUT`, a duration ("10 seconds"). */
  transactionTimeout: Config.Duration("KAFKA_TRANSACTION_TIMEOUT").pipe(Config.withDefault(defaults.transactionTimeout))
})
