/**
 * W3C trace context in Kafka record headers: the publisher injects `traceparent` (and `tracestate` when
 * there is one) into every record it sends, so a consumer can continue the trace; `extract` is the
 * consumer's side. Built on Effect's own codec (`effect/http/HttpTraceContext`), not a hand parser.
 */
import { Option, type Tracer } from "effect"
import * as Headers from "effect/http/Headers"
import * as HttpTraceContext from "effect/http/HttpTraceContext"

export const traceparent = "traceparent"
export const tracestate = "tracestate"

/**
 * The propagation headers for a span. `traceparent` is the string `HttpTraceContext.toHeaders` writes
 * (`00-<trace id>-<span id>-<flags>`), formatted here because this runs for every record: `toHeaders` also
 * builds a b3 header and a `Headers` object (`Object.setPrototypeOf`) each call. A test holds them equal.
 */
export const inject = (span: Tracer.Span): Record<string, string> => {
  const out: Record<string, string> = {
    [traceparent]: `00-${span.traceId.padStart(32, "0")}-${span.spanId}-${span.sampled ? "01" : "00"}`
  }
  const state = span.attributes.get(tracestate)
  if (typeof state === "string" && state.length > 0) out[tracestate] = state
  return out
}

const decoder = new TextDecoder()

/**
 * The remote parent span from a record's headers (as a consumer reads them: bytes or strings). Use it with
 * `Effect.withParentSpan` or as the `parent` of `Effect.withSpan` to continue the producer's trace.
 */
export const extract = (
  headers: Readonly<Record<string, string | Uint8Array | undefined>>
): Option.Option<Tracer.ExternalSpan> => {
  const value = headers[traceparent]
  if (value === undefined) return Option.none()
  const text = typeof value === "string" ? value : decoder.decode(value)
  return HttpTraceContext.w3c(Headers.fromRecordUnsafe({ [traceparent]: text }))
}
