/**
 * effect-kafka-publisher: reliable, Schema-typed event publishing to Apache Kafka for Effect applications.
 *
 * Follow one publish: `Publisher` -> `Topic.encode` -> `Producer.send` (a driver: `KafkaJsProducer`,
 * `PlatformaticProducer`, or `FakeKafka` from "effect-kafka-publisher/testing") -> `RetryPolicy` ->
 * `DeadLetter` -> a `Receipt`.
 */
export * as Batcher from "./Batcher.ts"
export * as CircuitBreaker from "./CircuitBreaker.ts"
export * as DeadLetter from "./DeadLetter.ts"
export * as ErrorClassification from "./ErrorClassification.ts"
export * as Health from "./Health.ts"
export * as KafkaJsProducer from "./KafkaJsProducer.ts"
export * as Logging from "./Logging.ts"
export * as PlatformaticProducer from "./PlatformaticProducer.ts"
export * as Producer from "./Producer.ts"
export * as ProducerConfig from "./ProducerConfig.ts"
export * as PublishError from "./PublishError.ts"
export * as Publisher from "./Publisher.ts"
export * as PublisherMetrics from "./PublisherMetrics.ts"
export * as Receipt from "./Receipt.ts"
export * as RetryPolicy from "./RetryPolicy.ts"
export * as Topic from "./Topic.ts"
export * as TopicAudit from "./TopicAudit.ts"
export * as TraceContext from "./TraceContext.ts"
