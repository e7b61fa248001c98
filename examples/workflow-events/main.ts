/**
 * The workflow-events service: `npm run example:workflow-events` (PORT, default 3000).
 *
 *   POST /workflows/:id/trigger   body: { source, runId?, payload, metadata: { environment, triggeredBy? } }
 *                                 -> 202 with the receipt; 400 with the schema error for an invalid body;
 *                                    503 with the error when the event could not be published
 *   GET  /health                  -> the Health report; 200 healthy or degraded, 503 unhealthy
 *   GET  /metrics                 -> the metrics in the Prometheus text format
 *
 * SIGTERM: the server stops accepting, requests in flight finish (their publishes included), the publisher
 * drains, the producer disconnects, exit 0.
 */
import { createServer } from "node:http"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit, Layer, Schema } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { CircuitBreaker, DeadLetter, Health, Publisher, TraceContext } from "effect-kafka-publisher"
import { Telemetry } from "effect-kafka-publisher/opentelemetry"
import { producerLayer } from "../shared/broker.ts"
import { TriggerRequest, WorkflowEvent, workflowEvents } from "./WorkflowEvent.ts"

const PathParams = Schema.Struct({ id: Schema.String.check(Schema.isNonEmpty()) })

const trigger = HttpRouter.add(
  "POST",
  "/workflows/:id/trigger",
  Effect.gen(function* () {
    const { id } = yield* HttpRouter.schemaPathParams(PathParams)
    const request = yield* HttpServerRequest.HttpServerRequest
    // the caller's tracestate travels on with the trace into the record's headers
    yield* TraceContext.annotateIncoming(request.headers)
    const body = yield* HttpServerRequest.schemaBodyJson(TriggerRequest)
    const publisher = yield* Publisher.Publisher
    const event = new WorkflowEvent({
      eventType: "workflow.triggered",
      source: body.source,
      workflowId: id,
      runId: body.runId ?? crypto.randomUUID(),
      payload: body.payload,
      metadata: body.metadata,
      occurredAt: new Date().toISOString()
    })
    const receipt = yield* publisher.publish(workflowEvents, event)
    return yield* HttpServerResponse.json(
      receipt._tag === "Delivered"
        ? {
            status: "Delivered",
            runId: event.runId,
            topic: receipt.topic,
            partition: receipt.partition,
            offset: receipt.offset,
            attempts: receipt.attempts
          }
        : {
            status: "DeadLettered",
            runId: event.runId,
            deadLetterTopic: receipt.deadLetterTopic,
            error: DeadLetter.errorType(receipt.error)
          },
      { status: 202 }
    )
  }).pipe(
    Effect.catchTag("SchemaError", (error) =>
      HttpServerResponse.json({ error: "invalid request", details: error.message }, { status: 400 })
    ),
    Effect.catchTag("HttpServerError", (error) =>
      HttpServerResponse.json({ error: "invalid request", details: error.message }, { status: 400 })
    ),
    Effect.catch((error) => HttpServerResponse.json({ error: error._tag, details: error.message }, { status: 503 }))
  ),
  // a request in flight finishes (and answers) even when SIGTERM arrives meanwhile
  { uninterruptible: true }
)

const health = HttpRouter.add(
  "GET",
  "/health",
  Effect.gen(function* () {
    const report = yield* (yield* Health.Health).check
    return yield* HttpServerResponse.json(report, { status: Health.httpStatus(report) })
  })
)

const port = Number(process.env.PORT ?? 3000)

/**
 * Prometheus names for Effect's text: counters get the `_total` suffix the format asks of them (as the
 * OpenTelemetry Prometheus exporter does), which `PrometheusMetrics.format` leaves out and promtool flags.
 */
export const withCounterTotals = (text: string): string => {
  const counters = new Set([...text.matchAll(/^# TYPE (\S+) counter$/gm)].map((m) => m[1]!))
  return text.replace(/^(# (?:HELP|TYPE) )?([a-zA-Z_:][a-zA-Z0-9_:]*)(?=[{ ])/gm, (line, comment = "", name: string) =>
    counters.has(name) && !name.endsWith("_total") ? `${comment}${name}_total` : line
  )
}

// GET /metrics: every Effect metric (the publisher's included) in the Prometheus text format; dots in the
// OpenTelemetry-style names become underscores and counters end in _total
// (messaging.client.sent.messages -> messaging_client_sent_messages_total)
const metrics = HttpRouter.add(
  "GET",
  "/metrics",
  Effect.map(PrometheusMetrics.format(), (text) =>
    HttpServerResponse.text(withCounterTotals(text), { contentType: "text/plain; version=0.0.4; charset=utf-8" })
  )
)

export const ServiceLive = HttpRouter.serve(Layer.mergeAll(trigger, health, metrics)).pipe(
  Layer.provide(NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" })),
  Layer.provide(Publisher.layer()),
  Layer.provide(Health.layer()),
  Layer.provide(CircuitBreaker.layer()),
  Layer.provide(producerLayer({ topics: { [workflowEvents.name]: { partitions: 3 } } })),
  // OTLP export of spans, metrics and logs when OTEL_EXPORTER_OTLP_ENDPOINT is set; nothing otherwise
  Layer.provide(Telemetry.layerConfig({ serviceName: "workflow-events" }))
)

Layer.launch(ServiceLive).pipe((main) =>
  NodeRuntime.runMain(main, {
    teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? 0 : 1)
  })
)
