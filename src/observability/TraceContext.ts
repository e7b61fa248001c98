/**
 * W3C trace context in Kafka record headers: the publisher writes `traceparent` (and `tracestate` when
 * there is one) into every record it sends, so a consumer can continue the trace; `extract` is the
 * consumer's side. Built on Effect's own codec (`effect/http/HttpTraceContext`), not a hand parser.
 *
 * ## A record that already carries trace context (the rule)
 *
 * - A valid `traceparent` in the record's own headers (a relay forwarding a record, a caller that
 *   propagates by hand) is the publish span's parent: the record leaves with the publish span's
 *   `traceparent`, in the caller's trace, and the caller's `tracestate` travels unchanged with it (W3C: a
 *   child keeps its parent's trace state).
 * - An invalid `traceparent` is replaced by the publish span's (whose parent is then the fiber's current
 *   span), and a `tracestate` that came with it is dropped: it belongs to no trace the record is in.
 * - A `tracestate` without a `traceparent` is dropped for the same reason.
 *
 * So `traceparent` and `tracestate` on a written record always describe the same trace.
 *
 * @module
 */
import { Effect, Option, type Tracer } from "effect"
import * as Headers from "effect/http/Headers"
import * as HttpTraceContext from "effect/http/HttpTraceContext"

/** The W3C header name `traceparent`: `00-<trace id>-<span id>-<flags>`. */
export const traceparent = "traceparent"
/** The W3C header name `tracestate`: vendor entries that travel with the trace. */
export const tracestate = "tracestate"

/** Header values as records carry them (strings, or bytes as a consumer reads them). */
export type HeaderValues = Readonly<Record<string, string | Uint8Array | undefined>>

/**
 * The propagation headers for a span. `traceparent` is the string `HttpTraceContext.toHeaders` writes
 * (`00-<trace id>-<span id>-<flags>`), formatted here because this runs for every record: `toHeaders` also
 * builds a b3 header and a `Headers` object (`Object.setPrototypeOf`) each call. A test holds them equal.
 * `state` is the `tracestate` to carry; default: the trace's, as `tracestateOf` finds it.
 */
export const inject = (span: Tracer.Span, state?: string | undefined): Record<string, string> => {
  const out: Record<string, string> = { [traceparent]: traceparentOf(span) }
  const carried = state ?? tracestateOf(span)
  if (carried !== undefined) out[tracestate] = carried
  return out
}

const traceparentOf = (span: Tracer.Span): string =>
  `00-${span.traceId.padStart(32, "0")}-${span.spanId}-${span.sampled ? "01" : "00"}`

/** How far up the parents `tracestateOf` looks: spans of one request rarely nest deeper. */
const maxTracestateDepth = 32

/**
 * The `tracestate` of the trace a span is in: its own `tracestate` attribute, or the nearest local
 * parent's (W3C: a child keeps its parent's trace state). An HTTP server span gets one from
 * `annotateIncoming`, so the records its handler publishes carry the incoming request's `tracestate`.
 */
export const tracestateOf = (span: Tracer.Span): string | undefined => {
  let current: Tracer.AnySpan | undefined = span
  for (let depth = 0; current?._tag === "Span" && depth < maxTracestateDepth; depth++) {
    const state = current.attributes.get(tracestate)
    if (typeof state === "string" && state.length > 0) return state
    current = Option.getOrUndefined(current.parent)
  }
  return undefined
}

/**
 * For a server handler: keeps the incoming request's `tracestate` on the current span (the server span,
 * whose parent Effect's HTTP middleware took from the request's `traceparent`), so what the handler
 * publishes carries it on. Nothing happens when the request has none.
 */
export const annotateIncoming = (headers: HeaderValues): Effect.Effect<void> => {
  const state = headers[tracestate]
  return state === undefined ? Effect.void : Effect.annotateCurrentSpan(tracestate, textOf(state))
}

const decoder = new TextDecoder()

const textOf = (value: string | Uint8Array): string => (typeof value === "string" ? value : decoder.decode(value))

/**
 * The remote parent span from a record's headers (as a consumer reads them: bytes or strings). Use it with
 * `Effect.withParentSpan` or as the `parent` of `Effect.withSpan` to continue the producer's trace.
 */
export const extract = (headers: HeaderValues): Option.Option<Tracer.ExternalSpan> => {
  const value = headers[traceparent]
  if (value === undefined) return Option.none()
  return HttpTraceContext.w3c(Headers.fromRecordUnsafe({ [traceparent]: textOf(value) }))
}

/** Trace context a record brought with it: its valid `traceparent` as a parent, and its `tracestate`. */
export interface Carried {
  /** The span its `traceparent` names: the publish span's parent. */
  readonly parent: Tracer.ExternalSpan
  /** Its `tracestate`, carried unchanged. */
  readonly tracestate: string | undefined
}

/** The record's own trace context, when its `traceparent` is valid (see the rule above). */
export const carried = (headers: HeaderValues): Carried | undefined => {
  if (headers[traceparent] === undefined) return undefined // the common case: one property read
  const parent = extract(headers)
  if (Option.isNone(parent)) return undefined
  const state = headers[tracestate]
  return { parent: parent.value, tracestate: state === undefined ? undefined : textOf(state) }
}

/**
 * The record's headers as written: the publish span's `traceparent`, and the `tracestate` of the trace
 * the span is in (the carried one, or the span's own); a `tracestate` of another trace is removed.
 */
export const propagate = <V>(
  headers: Readonly<Record<string, V>>,
  span: Tracer.Span,
  from: Carried | undefined
): Record<string, V | string> => {
  const out: Record<string, V | string> = {}
  for (const name in headers) if (name !== traceparent && name !== tracestate) out[name] = headers[name]!
  out[traceparent] = traceparentOf(span)
  // the record's own tracestate goes only with its own valid traceparent (`from`); else it is another trace's
  const state = from?.tracestate ?? tracestateOf(span)
  if (state !== undefined) out[tracestate] = state
  return out
}
