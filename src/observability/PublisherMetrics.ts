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

// Each metric is defined once, as a function of its attributes: the bare metric below (what readers pass to
// `Metric.withAttributes`), and the series the publisher updates, built with their attributes (see `forTopic`).

const counterWith =
  (id: string, description: string) =>
  (attributes?: Metric.Metric.Attributes): Metric.Counter<number> =>
    Metric.counter(id, { description, incremental: true, attributes })

const sentMessagesWith = counterWith(
  "messaging.client.sent.messages",
  "Messages the publisher delivered to their topic"
)
const retriesWith = counterWith("kafka.publisher.retries", "Sends retried by the retry policy")
const deadLetteredWith = counterWith("kafka.publisher.dead_lettered", "Records written to a dead-letter topic")
const failedWith = counterWith("kafka.publisher.failed", "Publishes that ended in an error returned to the caller")

const operationDurationWith = (attributes?: Metric.Metric.Attributes) =>
  Metric.histogram("messaging.client.operation.duration", {
    description: "Duration of one publish, retries and dead-letter routing included, in seconds",
    boundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 120],
    attributes
  })

const inFlightWith = (attributes?: Metric.Metric.Attributes) =>
  Metric.gauge("kafka.publisher.in_flight", { description: "Publishes accepted and not finished", attributes })

export const sentMessages = sentMessagesWith()
export const operationDuration = operationDurationWith()
export const retries = retriesWith()
export const deadLettered = deadLetteredWith()
export const failed = failedWith()
export const inFlight = inFlightWith()

const destination = (topic: string) => ({
  ...system,
  "messaging.destination.name": topic,
  "messaging.operation.name": "send"
})

/** The series of one topic; the ones with an `error.type` are built on first use. */
interface TopicSeries {
  readonly sent: Metric.Counter<number>
  readonly duration: Metric.Histogram<number>
  readonly retries: (errorType: string) => Metric.Counter<number>
  readonly deadLettered: (errorType: string) => Metric.Counter<number>
  readonly failed: (errorType: string) => Metric.Counter<number>
}

const byErrorType = (make: (attributes: Metric.Metric.Attributes) => Metric.Counter<number>, topic: string) => {
  const series = new Map<string, Metric.Counter<number>>()
  return (errorType: string): Metric.Counter<number> => {
    let counter = series.get(errorType)
    if (counter === undefined) {
      counter = make({ ...destination(topic), "error.type": errorType })
      series.set(errorType, counter)
    }
    return counter
  }
}

// Built once per topic and kept: `Metric.withAttributes` on every update merged the attributes and
// serialized the series key (a sorted JSON string) each time. A metric built with its attributes keeps its
// key; it addresses the same series as `Metric.withAttributes(metric, attributes)` does. One entry per topic
// and error type, as the metric registry itself holds.
const topics = new Map<string, TopicSeries>()

export const forTopic = (topic: string): TopicSeries => {
  let series = topics.get(topic)
  if (series === undefined) {
    series = {
      sent: sentMessagesWith(destination(topic)),
      duration: operationDurationWith(destination(topic)),
      retries: byErrorType(retriesWith, topic),
      deadLettered: byErrorType(deadLetteredWith, topic),
      failed: byErrorType(failedWith, topic)
    }
    topics.set(topic, series)
  }
  return series
}

const inFlightSeries = inFlightWith(system)

/** Both updates of one outcome in one effect. */
const update2 = <A, B>(a: Metric.Metric<A, unknown>, x: A, b: Metric.Metric<B, unknown>, y: B): Effect.Effect<void> =>
  Effect.contextWith((context) => {
    a.updateUnsafe(x, context)
    b.updateUnsafe(y, context)
    return Effect.void
  })

export const recordDelivered = (topic: string, seconds: number) => {
  const series = forTopic(topic)
  return update2(series.sent, 1, series.duration, seconds)
}

export const recordRetry = (topic: string, errorType: string) => Metric.update(forTopic(topic).retries(errorType), 1)

export const recordDeadLettered = (topic: string, errorType: string, seconds: number) => {
  const series = forTopic(topic)
  return update2(series.deadLettered(errorType), 1, series.duration, seconds)
}

export const recordFailed = (topic: string, errorType: string, seconds: number) => {
  const series = forTopic(topic)
  return update2(series.failed(errorType), 1, series.duration, seconds)
}

export const setInFlight = (n: number) => Metric.update(inFlightSeries, n)
