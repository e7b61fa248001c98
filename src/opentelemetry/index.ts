/**
 * `effect-kafka-publisher/opentelemetry`: export the publisher's spans, metrics and logs over OTLP with
 * one layer (`Telemetry.layerConfig`, from the standard `OTEL_*` variables). The OpenTelemetry packages
 * are optional peers, loaded only when an endpoint is configured.
 *
 * @module effect-kafka-publisher/opentelemetry
 */

export * as Telemetry from "./Telemetry.ts"
