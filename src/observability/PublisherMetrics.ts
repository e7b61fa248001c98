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
 *
 * ## Series of dynamic topics (the attribute policy)
 *
 * Each topic is a `messaging.destination.name`, so each topic costs series (two, plus one per error type
 * seen). A publisher gives its first `maxTopics` topics (default 100) series of their own; every later
 * topic is counted in one overflow series per metric, without `messaging.destination.name` and with
 * `otel.metric.overflow: "true"` (OpenTelemetry's cardinality-limit convention), so an application that
 * publishes to topic names made from data cannot grow the registry without bound. The series a publisher
 * created are released when its scope closes, unless another open publisher still updates them (so a
 * process that creates publishers per tenant or per job does not keep their series): they leave the metric
 * registry when the next publisher starts on it. Not at once, because an exporter's last export runs after
 * the publisher closed (the telemetry layer is released after the layers above it): removed at close, the
 * counts of a shutdown's last interval would never be exported.
 *
 * @module
 */
import { Context, Effect, Metric, type Scope } from "effect"

/** The attribute every series of the publisher carries: `messaging.system: "kafka"`. */
export const system = {
  /** Always `kafka`. */
  "messaging.system": "kafka"
} as const

/** The attribute that marks the overflow series of topics beyond `maxTopics`. */
export const overflowAttribute = "otel.metric.overflow"

/** How a publisher's series are kept. */
export interface Options {
  /** Topics with series of their own; later topics share the overflow series. Default 100. */
  readonly maxTopics?: number | undefined
}

/** The defaults of `Options`. */
export const defaults = {
  /** 100 topics with series of their own, per publisher. */
  maxTopics: 100
} as const

// Each metric is defined once, as a function of its attributes: the bare metric below (what readers pass to
// `Metric.withAttributes`), and the series the publisher updates, built with their attributes.

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

/** `messaging.client.sent.messages`: records delivered to their topic (counter). */
export const sentMessages = sentMessagesWith()
/** `messaging.client.operation.duration`: one publish, retries and dead-lettering included (histogram, s). */
export const operationDuration = operationDurationWith()
/** `kafka.publisher.retries`: resends by the retry policy, by `error.type` (counter). */
export const retries = retriesWith()
/** `kafka.publisher.dead_lettered`: records written to a dead-letter topic, by `error.type` (counter). */
export const deadLettered = deadLetteredWith()
/** `kafka.publisher.failed`: publishes that ended in an error returned to the caller (counter). */
export const failed = failedWith()
/** `kafka.publisher.in_flight`: publishes accepted and not finished, of the last publisher to update it (gauge). */
export const inFlight = inFlightWith()

const inFlightSeries = inFlightWith(system)

/** What a publisher records: one call per outcome, cheap (the series are built once per topic). */
export interface Recorder {
  /** A delivered publish and its duration. */
  readonly delivered: (topic: string, seconds: number) => Effect.Effect<void>
  /** A resend by the retry policy after a failure of `errorType` (e.g. `Retriable.BrokerUnavailable`). */
  readonly retry: (topic: string, errorType: string) => Effect.Effect<void>
  /** A dead-lettered publish, why, and its duration. */
  readonly deadLettered: (topic: string, errorType: string, seconds: number) => Effect.Effect<void>
  /** A publish that ended in an error, which, and its duration. */
  readonly failed: (topic: string, errorType: string, seconds: number) => Effect.Effect<void>
  /** The publisher's publishes in flight. */
  readonly setInFlight: (n: number) => Effect.Effect<void>
  /**
   * `delivered` and `setInFlight` done at once, with the registry of `context`: for the publisher's
   * per-event path, which runs outside any Effect.
   */
  readonly unsafe: {
    /** `delivered`, at once. */
    readonly delivered: (topic: string, seconds: number, context: Context.Context<never>) => void
    /** `setInFlight`, at once. */
    readonly setInFlight: (n: number, context: Context.Context<never>) => void
  }
}

/** The series of one topic (or of the overflow); the ones with an `error.type` are built on first use. */
interface TopicSeries {
  readonly sent: Metric.Counter<number>
  readonly duration: Metric.Histogram<number>
  readonly retries: (errorType: string) => Metric.Counter<number>
  readonly deadLettered: (errorType: string) => Metric.Counter<number>
  readonly failed: (errorType: string) => Metric.Counter<number>
}

/** A series this publisher created, with the name it is counted under across publishers. */
interface Owned {
  readonly id: string
  readonly metric: Metric.Metric<never, unknown>
}

/** Per registry: how many open publishers hold each series (by `Owned.id`), and the series none holds. */
interface Holds {
  readonly counts: Map<string, number>
  /** Released by their last publisher; removed from the registry when the next publisher starts. */
  released: Array<Owned>
}

const holdsByRegistry = new WeakMap<Metric.MetricRegistry, Holds>()

/** Removes the released series that no publisher took up again since. */
const removeReleased = (holds: Holds, context: Context.Context<never>): void => {
  for (const { id, metric } of holds.released) if (!holds.counts.has(id)) Metric.removeUnsafe(metric, context)
  holds.released = []
}

/**
 * `own(id, metric)` marks a series as held by this publisher until its scope closes; the series it was the
 * last to hold are then released (see the policy above).
 */
const ownership = Effect.gen(function* () {
  const context = yield* Effect.context<never>()
  const registry = Context.get(context, Metric.MetricRegistry)
  let found = holdsByRegistry.get(registry)
  if (found === undefined) {
    found = { counts: new Map(), released: [] }
    holdsByRegistry.set(registry, found)
  }
  const holds = found
  removeReleased(holds, context)
  const owned: Array<Owned> = []
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      for (const series of owned) {
        const left = (holds.counts.get(series.id) ?? 1) - 1
        if (left > 0) {
          holds.counts.set(series.id, left)
          continue
        }
        holds.counts.delete(series.id)
        holds.released.push(series)
      }
    })
  )
  return <M extends Metric.Metric<never, unknown>>(id: string, metric: M): M => {
    holds.counts.set(id, (holds.counts.get(id) ?? 0) + 1)
    owned.push({ id, metric })
    return metric
  }
})

/** The metrics of one publisher; closing the scope releases the series it created (see the policy above). */
export const make = (options: Options = {}): Effect.Effect<Recorder, never, Scope.Scope> =>
  Effect.gen(function* () {
    const maxTopics = options.maxTopics ?? defaults.maxTopics
    const own = yield* ownership
    const seriesOf = (name: string, attributes: Metric.Metric.Attributes): TopicSeries => {
      const byErrorType = (kind: string, build: (attributes: Metric.Metric.Attributes) => Metric.Counter<number>) => {
        const series = new Map<string, Metric.Counter<number>>()
        return (errorType: string): Metric.Counter<number> => {
          let counter = series.get(errorType)
          if (counter === undefined) {
            counter = own(`${kind}\u0000${name}\u0000${errorType}`, build({ ...attributes, "error.type": errorType }))
            series.set(errorType, counter)
          }
          return counter
        }
      }
      return {
        sent: own(`sent\u0000${name}`, sentMessagesWith(attributes)),
        duration: own(`duration\u0000${name}`, operationDurationWith(attributes)),
        retries: byErrorType("retries", retriesWith),
        deadLettered: byErrorType("deadLettered", deadLetteredWith),
        failed: byErrorType("failed", failedWith)
      }
    }

    // Built once per topic and kept: `Metric.withAttributes` on every update merged the attributes and
    // serialized the series key (a sorted JSON string) each time. A metric built with its attributes keeps
    // its key; it addresses the same series as `Metric.withAttributes(metric, attributes)` does.
    const topics = new Map<string, TopicSeries>()
    let overflow: TopicSeries | undefined
    const forTopic = (topic: string): TopicSeries => {
      const series = topics.get(topic)
      if (series !== undefined) return series
      if (topics.size >= maxTopics) {
        // "\u0000" is in no topic name: the overflow's ids cannot meet a topic's
        overflow ??= seriesOf("\u0000overflow", { ...operation, [overflowAttribute]: "true" })
        return overflow
      }
      const created = seriesOf(topic, { ...operation, "messaging.destination.name": topic })
      topics.set(topic, created)
      return created
    }

    const unsafe: Recorder["unsafe"] = {
      delivered: (topic, seconds, context) => {
        const series = forTopic(topic)
        series.sent.updateUnsafe(1, context)
        series.duration.updateUnsafe(seconds, context)
      },
      setInFlight: (n, context) => inFlightSeries.updateUnsafe(n, context)
    }
    return {
      delivered: (topic, seconds) => {
        const series = forTopic(topic)
        return update2(series.sent, 1, series.duration, seconds)
      },
      retry: (topic, errorType) => Metric.update(forTopic(topic).retries(errorType), 1),
      deadLettered: (topic, errorType, seconds) => {
        const series = forTopic(topic)
        return update2(series.deadLettered(errorType), 1, series.duration, seconds)
      },
      failed: (topic, errorType, seconds) => {
        const series = forTopic(topic)
        return update2(series.failed(errorType), 1, series.duration, seconds)
      },
      setInFlight: (n) => Metric.update(inFlightSeries, n),
      unsafe
    }
  })

const operation = { ...system, "messaging.operation.name": "send" } as const

/** Both updates of one outcome in one effect. */
const update2 = <A, B>(a: Metric.Metric<A, unknown>, x: A, b: Metric.Metric<B, unknown>, y: B): Effect.Effect<void> =>
  Effect.contextWith((context) => {
    a.updateUnsafe(x, context)
    b.updateUnsafe(y, context)
    return Effect.void
  })
