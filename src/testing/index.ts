/**
 * `effect-kafka-publisher/testing`: the in-memory broker (`FakeKafka`, no Kafka client needed) and the
 * tools to read a real topic back and check it (`TopicReader` loads kafkajs only when it reads).
 *
 * @module effect-kafka-publisher/testing
 */

export * as TopicAudit from "../reader/TopicAudit.ts"
export * as TopicReader from "../reader/TopicReader.ts"
export * as FakeKafka from "./FakeKafka.ts"
