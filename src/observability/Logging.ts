/**
 * Log output for services that publish: the Publisher logs with key/value annotations (topic, key,
 * attempt, delayMs, errorType, deadLetterTopic ...) at sensible levels (a retry is a warning, a dead-letter
 * or a failed dead-letter write an error, shutdown progress info). This module picks the format:
 * `json` (one JSON object per line, for log shippers), `logfmt`, or `pretty` (for a terminal).
 * Spans keep receiving log lines as span events (`Logger.tracerLogger` stays installed).
 *
 * Secrets: the SASL password is a `Redacted` value end to end; it is unwrapped only inside the kafkajs
 * driver's options and never logged. Redacted values that reach a log line print as `<redacted>`.
 *
 * @module
 */
import { Config, Effect, Layer, Logger, type LogLevel, References, Schema } from "effect"

/** The log line format: one JSON object per line, logfmt, or pretty for a terminal. */
export type Format = "json" | "logfmt" | "pretty"

/** The format and the minimum level. */
export interface Options {
  /** Default "pretty". */
  readonly format?: Format | undefined
  /** Default "Info". */
  readonly level?: LogLevel.LogLevel | undefined
}

const loggerFor = (format: Format) =>
  format === "json" ? Logger.consoleJson : format === "logfmt" ? Logger.consoleLogFmt : Logger.consolePretty()

/** Installs the logger (and keeps span events): `pretty` at `Info` unless told otherwise. */
export const layer = (options: Options = {}): Layer.Layer<never> =>
  Layer.mergeAll(
    Logger.layer([loggerFor(options.format ?? "pretty"), Logger.tracerLogger]),
    Layer.succeed(References.MinimumLogLevel, options.level ?? "Info")
  )

/** From the environment: `LOG_FORMAT` (json|logfmt|pretty) and `LOG_LEVEL` (Trace..Fatal); bad values fail at startup. */
export const layerConfig: Layer.Layer<never, Config.ConfigError> = Layer.unwrap(
  Effect.gen(function* () {
    const format = yield* Config.schema(Schema.Literals(["json", "logfmt", "pretty"]), "LOG_FORMAT").pipe(
      Config.withDefault("pretty" as const)
    )
    const level = yield* Config.schema(
      Schema.Literals(["Trace", "Debug", "Info", "Warn", "Error", "Fatal"]),
      "LOG_LEVEL"
    ).pipe(Config.withDefault("Info" as const))
    return layer({ format, level })
  })
)
