/**
 * One layer that exports what the publisher emits (its PRODUCER spans, its metrics, its log lines) over
 * OTLP/HTTP, on `@effect/opentelemetry`'s `NodeSdk` with the OpenTelemetry SDK's OTLP HTTP exporters.
 *
 * ```ts
 * import { Telemetry } from "effect-kafka-publisher/opentelemetry"
 *
 * // from OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_SERVICE_NAME; off (an empty layer) when no endpoint is set
 * program.pipe(Effect.provide(Telemetry.layerConfig({ serviceName: "orders" })))
 * // or explicitly
 * program.pipe(Effect.provide(Telemetry.layer({ serviceName: "orders", endpoint: "http://127.0.0.1:4318" })))
 * ```
 *
 * The OpenTelemetry packages are optional peers: this module imports none of them itself. The exporting
 * part is loaded (a dynamic `import()`) only when the layer is built with at least one signal on, so a
 * process with no endpoint configured loads and starts nothing, and its publish path is the same as
 * without the layer. Closing the layer's scope (the end of `runMain`, SIGTERM included) flushes the spans,
 * metrics and logs still buffered, then shuts the SDK down, within `shutdownTimeout`.
 *
 * Provide it inside (before) a logger layer that replaces the loggers (`Logger.layer([...])`,
 * `Logging.layer`): the OpenTelemetry logger is added to the loggers present when the layer is built.
 *
 * Needs, besides `effect`: `@effect/opentelemetry`, `@opentelemetry/api`, `@opentelemetry/api-logs`,
 * `@opentelemetry/resources`, `@opentelemetry/sdk-logs`, `@opentelemetry/sdk-metrics`,
 * `@opentelemetry/sdk-trace-base`, `@opentelemetry/sdk-trace-node`, `@opentelemetry/semantic-conventions`,
 * `@opentelemetry/exporter-trace-otlp-http`, `@opentelemetry/exporter-metrics-otlp-http` and
 * `@opentelemetry/exporter-logs-otlp-http` (SDK 2.x, the experimental packages 0.223 to 0.299).
 *
 * @module
 */
import { Config, type Duration, Effect, Layer, Option } from "effect"
import type { ConfigError } from "effect/Config"

/** The signals an OTLP exporter can send. */
export type Signal = "traces" | "metrics" | "logs"

/** Where and how to export. */
export interface Options {
  /** `service.name` of the resource every span, metric and log record carries. */
  readonly serviceName: string
  /** `service.version` of the resource. */
  readonly serviceVersion?: string | undefined
  /** More resource attributes (e.g. `deployment.environment.name`). */
  readonly resourceAttributes?: Readonly<Record<string, string | number | boolean>> | undefined
  /**
   * The OTLP/HTTP base URL, e.g. `http://127.0.0.1:4318`: each signal goes to `<endpoint>/v1/<signal>`
   * (as `OTEL_EXPORTER_OTLP_ENDPOINT`). A signal with no endpoint of its own and no base URL is off.
   */
  readonly endpoint?: string | undefined
  /** Full URL for traces (as `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), used as is; `false`: no traces. */
  readonly tracesEndpoint?: string | false | undefined
  /** Full URL for metrics (as `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`), used as is; `false`: no metrics. */
  readonly metricsEndpoint?: string | false | undefined
  /** Full URL for logs (as `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`), used as is; `false`: no logs. */
  readonly logsEndpoint?: string | false | undefined
  /** HTTP headers sent with every export (e.g. an API key). */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** How often metrics are exported (as `OTEL_METRIC_EXPORT_INTERVAL`). Default 60 seconds. */
  readonly metricsInterval?: Duration.Input | undefined
  /** How long the flush at shutdown may take, per signal. Default 10 seconds. */
  readonly shutdownTimeout?: Duration.Input | undefined
}

/** The defaults of `Options`. */
export const defaults = {
  /** `Options.metricsInterval`: 60 seconds (the OpenTelemetry SDK's default). */
  metricsInterval: "60 seconds",
  /** `Options.shutdownTimeout`: 10 seconds. */
  shutdownTimeout: "10 seconds"
} as const

/** The URL each signal is exported to, `undefined` for a signal that is off. */
export type Endpoints = Readonly<Record<Signal, string | undefined>>

const signalUrl = (base: string | undefined, signal: Signal): string | undefined =>
  base === undefined || base.length === 0 ? undefined : `${base.replace(/\/+$/, "")}/v1/${signal}`

/**
 * Where each signal goes: its own endpoint when given, else `<endpoint>/v1/<signal>` (the rule of the
 * `OTEL_EXPORTER_OTLP_*ENDPOINT` variables), else nowhere (off).
 */
export const endpoints = (options: Options): Endpoints => {
  const pick = (own: string | false | undefined, signal: Signal) =>
    own === false ? undefined : own !== undefined && own.length > 0 ? own : signalUrl(options.endpoint, signal)
  return {
    traces: pick(options.tracesEndpoint, "traces"),
    metrics: pick(options.metricsEndpoint, "metrics"),
    logs: pick(options.logsEndpoint, "logs")
  }
}

/** True when at least one signal is exported. */
export const enabled = (options: Options): boolean => {
  const urls = endpoints(options)
  return urls.traces !== undefined || urls.metrics !== undefined || urls.logs !== undefined
}

/**
 * The OTLP/HTTP export of every signal that has an endpoint; `Layer.empty` (nothing loaded, nothing
 * started) when none has. Dies at build time with what to install when the OpenTelemetry packages are
 * missing.
 */
export const layer = (options: Options): Layer.Layer<never> => {
  if (!enabled(options)) return Layer.empty
  return Layer.unwrap(
    Effect.tryPromise({
      try: () => import("./internal/sdk.ts"),
      catch: (cause) =>
        new Error(
          "Telemetry.layer needs the OpenTelemetry packages (optional peers of effect-kafka-publisher): " +
            "npm install @effect/opentelemetry @opentelemetry/api @opentelemetry/api-logs @opentelemetry/resources " +
            "@opentelemetry/sdk-logs @opentelemetry/sdk-metrics @opentelemetry/sdk-trace-base " +
            "@opentelemetry/sdk-trace-node @opentelemetry/semantic-conventions " +
            "@opentelemetry/exporter-trace-otlp-http @opentelemetry/exporter-metrics-otlp-http " +
            "@opentelemetry/exporter-logs-otlp-http",
          { cause }
        )
    }).pipe(
      Effect.map((sdk) => sdk.layer(options, endpoints(options))),
      Effect.orDie
    )
  )
}

const optionalString = (name: string) =>
  Config.String(name).pipe(
    Config.option,
    Config.map(Option.filter((s) => s.trim().length > 0)),
    Config.map(Option.getOrUndefined)
  )

/** `OTEL_<SIGNAL>_EXPORTER=none` turns one signal off, as the OpenTelemetry SDKs read it. */
const signalEndpoint = (signal: Signal) =>
  Effect.gen(function* () {
    const exporter = yield* optionalString(`OTEL_${signal.toUpperCase()}_EXPORTER`)
    if (exporter?.trim() === "none") return false as const
    return yield* optionalString(`OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_ENDPOINT`)
  })

/** The comma-separated `key=value` list of `OTEL_EXPORTER_OTLP_HEADERS` (values URL-encoded, as the spec says). */
const parseHeaders = (text: string | undefined): Record<string, string> | undefined => {
  if (text === undefined) return undefined
  const out: Record<string, string> = {}
  for (const pair of text.split(",")) {
    const at = pair.indexOf("=")
    if (at <= 0) continue
    out[decodeURIComponent(pair.slice(0, at).trim())] = decodeURIComponent(pair.slice(at + 1).trim())
  }
  return out
}

/**
 * The options from the standard OpenTelemetry variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (base URL),
 * `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT` (full URLs), `OTEL_{TRACES,METRICS,LOGS}_EXPORTER=none`,
 * `OTEL_SERVICE_NAME` (else `fallback.serviceName`), `OTEL_EXPORTER_OTLP_HEADERS`,
 * `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds) and `OTEL_SDK_DISABLED=true` (everything off).
 */
export const optionsConfig = (
  fallback: Partial<Options> & { readonly serviceName: string }
): Effect.Effect<Options, ConfigError> =>
  Effect.gen(function* () {
    const disabled = (yield* optionalString("OTEL_SDK_DISABLED"))?.trim().toLowerCase() === "true"
    const serviceName = (yield* optionalString("OTEL_SERVICE_NAME")) ?? fallback.serviceName
    if (disabled)
      return {
        ...fallback,
        serviceName,
        endpoint: undefined,
        tracesEndpoint: false,
        metricsEndpoint: false,
        logsEndpoint: false
      }
    const endpoint = (yield* optionalString("OTEL_EXPORTER_OTLP_ENDPOINT")) ?? fallback.endpoint
    const tracesEndpoint = (yield* signalEndpoint("traces")) ?? fallback.tracesEndpoint
    const metricsEndpoint = (yield* signalEndpoint("metrics")) ?? fallback.metricsEndpoint
    const logsEndpoint = (yield* signalEndpoint("logs")) ?? fallback.logsEndpoint
    const headers = parseHeaders(yield* optionalString("OTEL_EXPORTER_OTLP_HEADERS")) ?? fallback.headers
    const interval = yield* Config.Int("OTEL_METRIC_EXPORT_INTERVAL").pipe(
      Config.option,
      Config.map(Option.getOrUndefined)
    )
    const metricsInterval = interval === undefined ? fallback.metricsInterval : (`${interval} millis` as const)
    return {
      ...fallback,
      serviceName,
      endpoint,
      tracesEndpoint,
      metricsEndpoint,
      logsEndpoint,
      headers,
      metricsInterval
    }
  })

/**
 * `layer` configured from the environment (see `optionsConfig`): exports when
 * `OTEL_EXPORTER_OTLP_ENDPOINT` (or a per-signal endpoint) is set, an empty layer otherwise.
 * `fallback` gives the service name used when `OTEL_SERVICE_NAME` is not set, and any other option.
 */
export const layerConfig = (
  fallback: Partial<Options> & { readonly serviceName: string }
): Layer.Layer<never, ConfigError> => Layer.unwrap(Effect.map(optionsConfig(fallback), layer))
