/**
 * The publisher's metrics, as Effect `Metric`s: exported through `@effect/opentelemetry` (or Prometheus)
 * by whatever metrics layer the application provides. Names and attributes follow OpenTelemetry's
 * messaging semantic conventions where one exists (`messaging.client.sent.messages`,
 * `messaging.client.operation.duration`, attributes `messaging.system`, `messaging.destination.name`,
 * `messaging.operation.name`, `error.type`); the rest are `kafka.publisher.*`.
 *
 * | metric | kind | attributes |
 * | --- | --- | --- |
 * | `messaging.client.sent.messages` | counter | system, destination, operation; `error.type` on failure |
 * | `messaging.client.operation.duration` | histogram (seconds) | system, destination, operation |
 * | `kafka.publisher.retries` | counter | system, destination, `error.type` |
 * | `kafka.publisher.dead_lettered` | counter | system, destination, `error.type` |
 * | `kafka.publisher.failed` | counter | system, destination, `error.type` (publishes that ended in an error) |
 * | `kafka.publisher.in_flight` | gauge | system |
 * | `kafka.publisher.circuit_breaker.state` | gauge: 0 closed, 1 half-open, 2 open (in `CircuitBreaker`) | |
 */
import { Effect, Metric } from "effect"

export const system = { "messaging.system": "kafka" } as const

export const sentMessages = Metric.counter("messaging.client.sent.messages", {
  description: "Messages the publisher delivered to their topic",
  incremental: true
})

export const operationDuration = Metric.histogram("messaging.client.operation.duration", {
  description: "Duration of one publish, retries and dead-letter routing included, in seconds",
  boundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 120]
})

export const retries = Metric.counter("kafka.publisher.retries", {
  description: "Sends retried by the retry policy",
  incremental: true
})

export const deadLettered = Metric.counter("kafka.publisher.dead_lettered", {
  description: "Records written to a dead-letter topic",
  incremental: true
})

export const failed = Metric.counter("kafka.publisher.failed", {
  description: "Publishes that ended in an error returned to the caller",
  incremental: true
})

export const inFlight = Metric.gauge("kafka.publisher.in_flight", {
  description: "Publishes accepted and not finished"
})

const destination = (topic: string) => ({
  ...system,
  "messaging.destination.name": topic,
  "messaging.operation.name": "send"
})

export const recordDelivered = (topic: string, seconds: number) =>
  Effect.all(
    [
      Metric.update(Metric.withAttributes(sentMessages, destination(topic)), 1),
      Metric.update(Metric.withAttributes(operationDuration, destination(topic)), seconds)
    ],
    { discard: true }
  )

export const recordRetry = (topic: string, errorType: string) =>
  Metric.update(Metric.withAttributes(retries, { ...destination(topic), "error.type": errorType }), 1)

export const recordDeadLettered = (topic: string, errorType: string, seconds: number) =>
  Effect.all(
    [
      Metric.update(Metric.withAttributes(deadLettered, { ...destination(topic), "error.type": errorType }), 1),
      Metric.update(Metric.withAttributes(operationDuration, destination(topic)), seconds)
    ],
    { discard: true }
  )

export const recordFailed = (topic: string, errorType: string, seconds: number) =>
  Effect.all(
    [
      Metric.update(Metric.withAttributes(failed, { ...destination(topic), "error.type": errorType }), 1),
      Metric.update(Metric.withAttributes(operationDuration, destination(topic)), seconds)
    ],
    { discard: true }
  )

export const setInFlight = (n: number) => Metric.update(Metric.withAttributes(inFlight, system), n)
