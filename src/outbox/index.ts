/**
 * `effect-kafka-publisher/outbox`: the transactional outbox over `effect/sql`. `Outbox.publish` writes an
 * event on the application's own SQL transaction; `OutboxRelay` sends committed rows to Kafka through the
 * `Publisher`; `OutboxTable.migrate` creates the tables; `SqliteClient` is the embedded store; `OutboxFallback` stores
 * a publish the broker could not take (opt-in).
 *
 * @module
 */
export * as Outbox from "./Outbox.ts"
export * as OutboxFallback from "./OutboxFallback.ts"
export * as OutboxRelay from "./OutboxRelay.ts"
export * as OutboxTable from "./OutboxTable.ts"
export * as SqliteClient from "./SqliteClient.ts"
export * as TopicLookup from "./TopicLookup.ts"
