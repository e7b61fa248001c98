/**
 * The exporting half of `Telemetry`, loaded by `Telemetry.layer` only when a signal is on: this file
 * imports the OpenTelemetry SDK and the OTLP HTTP exporters.
 *
 * @internal
 * @module
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http"
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { BatchLogRecordProcessor } from "@opentelemetry/sdk-logs"
import { PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Duration, type Layer } from "effect"
import { defaults, type Endpoints, type Options } from "../Telemetry.ts"

/** @internal */
export const layer = (options: Options, urls: Endpoints): Layer.Layer<never> => {
  const headers = options.headers === undefined ? {} : { headers: { ...options.headers } }
  const shutdownTimeout = options.shutdownTimeout ?? defaults.shutdownTimeout
  const intervalMillis = Duration.toMillis(
    Duration.fromInputUnsafe(options.metricsInterval ?? defaults.metricsInterval)
  )
  // the SDK refuses an export timeout longer than the interval
  const timeoutMillis = Math.min(intervalMillis, Duration.toMillis(Duration.fromInputUnsafe(shutdownTimeout)))
  return NodeSdk.layer(() => ({
    resource: {
      serviceName: options.serviceName,
      ...(options.serviceVersion === undefined ? {} : { serviceVersion: options.serviceVersion }),
      ...(options.resourceAttributes === undefined ? {} : { attributes: { ...options.resourceAttributes } })
    },
    spanProcessor:
      urls.traces === undefined
        ? undefined
        : new BatchSpanProcessor(new OTLPTraceExporter({ url: urls.traces, ...headers })),
    metricReader:
      urls.metrics === undefined
        ? undefined
        : new PeriodicExportingMetricReader({
            exporter: new OTLPMetricExporter({ url: urls.metrics, ...headers }),
            exportIntervalMillis: intervalMillis,
            exportTimeoutMillis: timeoutMillis
          }),
    logRecordProcessor:
      urls.logs === undefined
        ? undefined
        : new BatchLogRecordProcessor({ exporter: new OTLPLogExporter({ url: urls.logs, ...headers }) }),
    shutdownTimeout
  }))
}
