/**
 * The service users call: `publish(topic, event)` validates and encodes the event, sends it, retries
 * `Retriable` failures on the `RetryPolicy`, bounds the whole publish by the delivery timeout, and routes
 * `Fatal` failures and exhausted retries to the dead-letter topic. It answers a `Receipt`
 * (`Delivered` / `DeadLettered`) or a typed error.
 *
 * Lifecycle: a `Publisher` is a scoped resource. Once a publish is accepted (the event encoded and the
 * publisher open) it runs to its end in a fiber owned by the publisher, not by the caller: interrupting the
 * caller does not abandon a record half-way. Closing the scope (SIGINT/SIGTERM under `NodeRuntime.runMain`)
 * stops new publishes with `PublisherClosed`, waits up to `shutdownTimeout` for the accepted ones, and only
 * then lets the `Producer` layer below disconnect.
 *
 * ## Which layer retries what (the idempotence decision)
 *
 * With idempotence on (the default), the driver retries an in-flight produce request itself with the same
 * producer id and sequence numbers, so the broker drops a copy it already wrote. A broker pause, a leader
 * change or a lost connection is absorbed there, without duplicates, as long as the driver's own retries
 * last (kafkajs: `retry` in the driver config; a request waits up to `requestTimeout`, 30 s, for a paused
 * broker). Only when the driver gives up does the failure reach this layer.
 *
 * This layer's retries resend the record, as a new request with new sequence numbers. That is safe when
 * the broker certainly did not write it (connection refused, not leader, not enough replicas, unknown topic
 * while it is being created): the error has `ambiguous: false`. After an ambiguous failure (request
 * timeout, connection closed mid-request, `NOT_ENOUGH_REPLICAS_AFTER_APPEND`, delivery timeout) a resend
 * may duplicate the record: the resulting receipt says `possibleDuplicate: true`, and a dead-lettered one
 * carries the header `ambiguous: true`. Nothing ambiguous is silent.
 *
 * Whatever stops the retries (exhausted, a `Fatal` answer, the breaker's `CircuitOpen`), a failure that
 * follows an ambiguous attempt says so: a dead letter has `ambiguous: true` and `possiblyDelivered`, and an
 * error returned to the caller (`Retriable`, `Fatal`, `CircuitOpen`) has `possiblyDelivered: true`. A
 * caller that resends after such an error may duplicate the record.
 *
 * @module
 */
import { Context, Duration, Effect, Layer, Result, type Scope, Sink, Stream } from "effect"
import { defaults as batcherDefaults } from "./Batcher.ts"
import { CircuitBreaker, type CircuitOpen } from "./CircuitBreaker.ts"
import type * as DeadLetter from "./DeadLetter.ts"
import { Health } from "./Health.ts"
import * as CallbackSend from "./internal/callbackSend.ts"
import * as Deadlines from "./internal/deadlines.ts"
import { makeBulk, makeSink } from "./internal/publisher/bulkPublish.ts"
import { makeLifecycle } from "./internal/publisher/lifecycle.ts"
import { makeObserved } from "./internal/publisher/observation.ts"
import { guardedSend, type Settings } from "./internal/publisher/settings.ts"
import { makePerEvent } from "./internal/publisher/singlePublish.ts"
import * as PublisherMetrics from "./observability/PublisherMetrics.ts"
import { Producer, type ProducerRecord } from "./Producer.ts"
import type { DeadLetterFailed, Fatal, PublishAllFailed, PublisherClosed, Retriable } from "./PublishError.ts"
import type { Receipt } from "./Receipt.ts"
import * as RetryPolicy from "./RetryPolicy.ts"
import * as Topic from "./Topic.ts"

/**
 * Everything a publish can fail with. `CircuitOpen` only when a `CircuitBreaker` is provided;
 * `PublisherClosed` once the publisher's scope is closing.
 */
export type PublishFailure = Retriable | Fatal | PublisherClosed | DeadLetterFailed | CircuitOpen

/** How a publisher retries, dead-letters, bounds and closes; every field has a default (`defaults`). */
export interface Options {
  /** Application-level retries (each resends the record). Default `RetryPolicy.defaultPolicy`. */
  readonly retry?: RetryPolicy.RetryPolicy | undefined
  /** Dead-letter options, or `false` to fail with the error instead. Default: on, `<topic>.dlt`. */
  readonly deadLetter?: DeadLetter.Options | false | undefined
  /** Bounds one whole publish, retries included (Java: `delivery.timeout.ms`). Default 120 s. */
  readonly deliveryTimeout?: Duration.Input | undefined
  /** How long closing waits for accepted publishes. Default 30 s. */
  readonly shutdownTimeout?: Duration.Input | undefined
  /**
   * How many records of one `publishAll` request are retried or dead-lettered at the same time after the
   * request failed (records of one key always one after the other). Default 16.
   */
  readonly concurrency?: number | undefined
  /** Most records in one request of `publishAll` / `publishRecords` / the stream sink. Default 500 (the Batcher's). */
  readonly batchSize?: number | undefined
  /** Most bytes in one such request, estimated as `Batcher.estimatedSize` counts them. Default 1 MiB (the Batcher's). */
  readonly batchBytes?: number | undefined
  /**
   * Requests of one `publishAll` / `publishRecords` / stream sink out at a time (Java:
   * `max.in.flight.requests.per.connection`). Default 5. Order per key is kept whatever the number (see
   * `publishAll`); how many really travel at once is up to the layers below (a `Batcher`'s
   * `maxInFlightBatches`, the driver's own limit).
   */
  readonly maxInFlightRequests?: number | undefined
  /** Metric series of this publisher (cap on per-topic series). Default `PublisherMetrics.defaults`. */
  readonly metrics?: PublisherMetrics.Options | undefined
}

/** The publishing service. */
export interface Publisher {
  /** Validates, encodes and publishes one event. */
  readonly publish: <A, I>(topic: Topic.Topic<A, I>, event: A) => Effect.Effect<Receipt, PublishFailure>
  /**
   * Publishes every event in bulk: all are encoded first (an invalid one fails with its own `Fatal`
   * `SchemaInvalid` and nothing of it is sent; it does not hold the others back), then the valid records go
   * in requests of at most `batchSize` records / `batchBytes` bytes, up to `maxInFlightRequests` out at once.
   * A record whose request failed is retried or dead-lettered on its own, as `publish` does (ambiguous
   * attempts marked), records of one key one after the other and before any later request leaves (the later
   * requests out failed with it or were written before it), so order per key is kept; a resend after an
   * ambiguous attempt is marked and may land after later records of its key.
   * Every event is settled; if any failed, `PublishAllFailed` holds the failures and the other receipts, by
   * index. The call is accepted as a whole: it runs in a fiber of the publisher (the caller's interruption
   * does not abandon it), is drained at shutdown, and each request is bounded by the delivery timeout.
   * See `BulkOptions` for `concurrency` and `deadLetterRetriable`.
   */
  readonly publishAll: <A, I>(
    topic: Topic.Topic<A, I>,
    events: Iterable<A>,
    options?: BulkOptions
  ) => Effect.Effect<ReadonlyArray<Receipt>, PublishAllFailed>
  /** Publishes an already serialized record (no Schema): the same retries, dead-letter and lifecycle. */
  readonly publishRecord: (record: ProducerRecord) => Effect.Effect<Receipt, PublishFailure>
  /**
   * `publishAll` for records already serialized (any topics): the same requests, retries, dead-letter,
   * order per key and lifecycle. `PublishAllFailed.topic` is the first record's topic.
   */
  readonly publishRecords: (
    records: Iterable<ProducerRecord>,
    options?: BulkOptions
  ) => Effect.Effect<ReadonlyArray<Receipt>, PublishAllFailed>
  /**
   * A Sink that publishes every event of a stream and yields a `Summary` (what the module's `sink` returns
   * with the `Publisher` from the context). `batchSize`: most events in one request (default: the
   * publisher's).
   */
  readonly sink: <A, I>(
    topic: Topic.Topic<A, I>,
    options?: Pick<StreamOptions, "batchSize">
  ) => Sink.Sink<Summary, A, never, PublishFailure>
  /** Publishes accepted and not finished yet. */
  readonly inFlight: Effect.Effect<number>
}

/** Per-call options of `publishAll` and `publishRecords`. */
export interface BulkOptions {
  /** Records of one request sent, retried and settled at once. Default: `Options.concurrency`. */
  readonly concurrency?: number | undefined
  /**
   * Default true: a record whose retries ran out (`Retriable`) is dead-lettered like a `Fatal` one. false: it
   * fails with its `Retriable` error (marked when possibly delivered) and only `Fatal` records are
   * dead-lettered, for a caller that keeps the record and sends it again later (the outbox relay).
   */
  readonly deadLetterRetriable?: boolean | undefined
}

/** The `Publisher` service tag. */
export const Publisher = Context.Service<Publisher>("effect-kafka-publisher/Publisher")

/** The defaults of `Options` (Java: `delivery.timeout.ms` 120 s). */
export const defaults = {
  /** 120 s, Java's `delivery.timeout.ms`. */
  deliveryTimeout: Duration.seconds(120),
  /** 30 s. */
  shutdownTimeout: Duration.seconds(30),
  /** 16 records of a failed `publishAll` request retried at a time. */
  concurrency: 16,
  /** 500 records per `publishAll` request, as the Batcher. */
  batchSize: batcherDefaults.batchSize,
  /** 1 MiB per `publishAll` request, as the Batcher. */
  batchBytes: batcherDefaults.batchBytes,
  /** 5 requests of a bulk call out at a time, as the Java client's `max.in.flight.requests.per.connection`. */
  maxInFlightRequests: 5
} as const

/**
 * A scoped `Publisher` over the `Producer` in context (and the `CircuitBreaker` and `Health` services when
 * provided). Closing the scope refuses new publishes and waits for the accepted ones (`shutdownTimeout`).
 */
export const make = (options: Options = {}): Effect.Effect<Publisher, never, Producer | Scope.Scope> =>
  Effect.gen(function* () {
    const settings = resolve(options)
    const producer = yield* Producer
    const breaker = yield* Effect.serviceOption(CircuitBreaker)
    const health = yield* Effect.serviceOption(Health)
    const metrics = yield* PublisherMetrics.make(settings.metrics)
    // Made before the lifecycle: finalizers run in reverse, so the deadlines still fire during the drain.
    const deadlines = yield* Deadlines.make(settings.deliveryTimeout)
    const lifecycle = yield* makeLifecycle(settings.shutdownTimeout)
    const send = guardedSend(producer, breaker)
    const observed = makeObserved({ metrics, health })
    const deps = {
      settings,
      producer,
      send,
      sendNow: CallbackSend.of(producer, send, breaker),
      deadlines,
      metrics,
      health,
      lifecycle,
      observed
    }
    const publishRecord = makePerEvent(deps)
    const publish = <A, I>(topic: Topic.Topic<A, I>, event: A): Effect.Effect<Receipt, PublishFailure> =>
      Effect.flatMap(Topic.encode(topic, event), publishRecord)
    const bulk = makeBulk(deps)
    const sinkTo = makeSink(deps)
    return Publisher.of({
      publish,
      publishAll: (topic, events, opts) =>
        Effect.suspend(() => {
          const items = Array.from(events)
          return Effect.flatMap(
            Effect.forEach(items, (event) => Effect.result(Topic.encode(topic, event))),
            (encoded) => bulk(topic.name, encoded, opts)
          )
        }),
      publishRecord,
      publishRecords: (records, opts) =>
        Effect.suspend(() => {
          const items = Array.from(records, (record): Result.Result<ProducerRecord, Fatal> => Result.succeed(record))
          const first = items[0]
          return bulk(first !== undefined && Result.isSuccess(first) ? first.success.topic : "", items, opts)
        }),
      sink: (topic, opts) => sinkTo(topic, opts?.batchSize),
      inFlight: observed.inFlight
    })
  })

/** The Publisher over whichever `Producer` layer is provided (kafkajs, FakeKafka, ...). */
export const layer = (options: Options = {}): Layer.Layer<Publisher, never, Producer> =>
  Layer.effect(Publisher, make(options))

/** The options with their defaults. */
const resolve = (options: Options): Settings => ({
  policy: options.retry ?? RetryPolicy.defaultPolicy,
  deadLetter: options.deadLetter ?? {},
  deliveryTimeout: Duration.fromInputUnsafe(options.deliveryTimeout ?? defaults.deliveryTimeout),
  shutdownTimeout: Duration.fromInputUnsafe(options.shutdownTimeout ?? defaults.shutdownTimeout),
  concurrency: options.concurrency ?? defaults.concurrency,
  batchSize: Math.max(1, options.batchSize ?? defaults.batchSize),
  batchBytes: Math.max(1, options.batchBytes ?? defaults.batchBytes),
  maxInFlightRequests: Math.max(1, options.maxInFlightRequests ?? defaults.maxInFlightRequests),
  metrics: options.metrics ?? {}
})

// --- streams: publishStream, sink ----------------------------------------------------------------------------

/** How the stream functions group a stream's events into requests. */
export interface StreamOptions {
  /** Most events in one request (and in flight at a time). Default: the publisher's `batchSize` default, 500. */
  readonly batchSize?: number | undefined
  /** How long a request waits for more events after its first one (Java: `linger.ms`). Default 5 ms. */
  readonly linger?: Duration.Input | undefined
}

/**
 * A Stream transformer that publishes the stream's events and emits, per event and in input order, its
 * outcome: `Result.succeed(receipt)` or `Result.fail(error)` (a failed event does not stop the stream: the
 * caller decides). Events are grouped into requests (`batchSize` or `linger`, whichever comes first) and
 * each group is one `publishAll`: the next group is published once the previous one is settled, so at most
 * `batchSize` events are in flight and at most one more group is gathered meanwhile (backpressure: the
 * upstream is not pulled further). Interrupting the stream does not abandon a group already accepted.
 */
export const publishStream =
  <A, I>(topic: Topic.Topic<A, I>, options: StreamOptions = {}) =>
  <E, R>(self: Stream.Stream<A, E, R>): Stream.Stream<Result.Result<Receipt, PublishFailure>, E, R | Publisher> =>
    Stream.unwrap(
      Effect.map(Effect.service(Publisher), (publisher) =>
        self.pipe(
          Stream.groupedWithin(options.batchSize ?? defaults.batchSize, options.linger ?? batcherDefaults.linger),
          Stream.mapEffect((events) => outcomesOf(publisher.publishAll(topic, events), events.length)),
          Stream.flattenIterable
        )
      )
    )

/** `publishAll` as one outcome per event. */
const outcomesOf = (
  all: Effect.Effect<ReadonlyArray<Receipt>, PublishAllFailed>,
  count: number
): Effect.Effect<ReadonlyArray<Result.Result<Receipt, PublishFailure>>> =>
  Effect.match(all, {
    onSuccess: (receipts) => receipts.map((receipt) => Result.succeed(receipt)),
    onFailure: (error) => {
      const out: Array<Result.Result<Receipt, PublishFailure>> = new Array(count)
      error.receipts.forEach((receipt, i) => {
        if (receipt !== undefined) out[i] = Result.succeed(receipt as Receipt)
      })
      for (const { index, error: failure } of error.failures) out[index] = Result.fail(failure as PublishFailure)
      return out
    }
  })

/** What `sink` yields: how the stream's events ended. */
export interface Summary {
  /** Events written to the topic. */
  readonly delivered: number
  /** Of those, written after an ambiguous attempt (`possibleDuplicate`). */
  readonly possibleDuplicates: number
  /** Events written to the dead-letter topic instead. */
  readonly deadLettered: number
}

/**
 * A Sink that publishes every event of the stream and yields a `Summary`: `Stream.run(events,
 * Publisher.sink(topic))`. Each array the stream emits is published as it comes (no linger: requests are as
 * large as the stream's chunks, at most `batchSize`; group a trickling stream first with
 * `Stream.groupedWithin`, or use `publishStream`), in requests pipelined as `publishAll`'s are, across
 * arrays too (order per key kept; see `publishAll`). Backpressure: the stream is pulled while fewer than
 * `maxInFlightRequests` requests are out and nothing failed, with one array waiting. An accepted array is
 * settled (retried, dead-lettered) by the publisher whatever becomes of the stream. The first event that
 * fails (a typed error, not a dead letter) fails the sink with its `PublishFailure` once what is out is
 * settled; no later array is published. Closing the publisher refuses the next array (`PublisherClosed`).
 */
export const sink = <A, I>(
  topic: Topic.Topic<A, I>,
  options: Pick<StreamOptions, "batchSize"> = {}
): Sink.Sink<Summary, A, never, PublishFailure, Publisher> =>
  Sink.unwrap(Effect.map(Effect.service(Publisher), (publisher) => publisher.sink(topic, options)))
