/**
 * `effect-kafka-publisher`: reliable, Schema-typed event publishing to Apache Kafka for Effect applications.
 * The core: it imports no Kafka client. A driver comes from its own entry point
 * (`effect-kafka-publisher/kafkajs`, `effect-kafka-publisher/platformatic`) or, in tests, from
 * `effect-kafka-publisher/testing` (`FakeKafka`).
 *
 * The flow of one publish, module by module:
 *
 * 1. `Publisher.publish(topic, event)`: refuses new work once closing (`PublisherClosed`).
 * 2. `Topic.encode`: the Schema validates and encodes the event (an invalid one is `Fatal` `SchemaInvalid`,
 *    never sent).
 * 3. `CircuitBreaker` (when provided): lets the send through or fails fast with `CircuitOpen`.
 * 4. `Batcher` (when provided, a `Producer` decorator): gathers the records of many calls into one request.
 * 5. `Producer.send`: the driver writes the records and classifies its failures into `PublishError`
 *    (`Retriable` / `Fatal`) through `ErrorClassification`.
 * 6. `RetryPolicy`: a `Schedule` resends `Retriable` failures; `Fatal` stops at once.
 * 7. `DeadLetter.recover`: a `Fatal` failure or exhausted retries go to the dead-letter topic.
 * 8. A `Receipt` (`Delivered` / `DeadLettered`) or a typed error comes back, within the delivery timeout;
 *    `PublisherMetrics`, `TraceContext` and `Logging` record what happened; `Health` watches the outcomes.
 *
 * @module effect-kafka-publisher
 */
export * as Batcher from "./Batcher.ts"
export * as CircuitBreaker from "./CircuitBreaker.ts"
export * as DeadLetter from "./DeadLetter.ts"
export * as ErrorClassification from "./ErrorClassification.ts"
export * as Health from "./Health.ts"
export * as Logging from "./observability/Logging.ts"
export * as PublisherMetrics from "./observability/PublisherMetrics.ts"
export * as TraceContext from "./observability/TraceContext.ts"
export * as Producer from "./Producer.ts"
export * as ProducerConfig from "./ProducerConfig.ts"
export * as PublishError from "./PublishError.ts"
export * as Publisher from "./Publisher.ts"
export * as Receipt from "./Receipt.ts"
export * as Redrive from "./Redrive.ts"
export * as RetryPolicy from "./RetryPolicy.ts"
export * as Topic from "./Topic.ts"
export * as TransactionalProducer from "./TransactionalProducer.ts"
export * as TransactionalPublisher from "./TransactionalPublisher.ts"
