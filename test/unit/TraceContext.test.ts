import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as HttpTraceContext from "effect/http/HttpTraceContext"
import { TraceContext } from "effect-kafka-publisher"

describe("TraceContext", () => {
  it.effect("inject writes the traceparent HttpTraceContext writes, and extract reads it back", () =>
    Effect.gen(function* () {
      for (const sampled of [true, false]) {
        const span = yield* Effect.makeSpan("send orders", { sampled })
        const headers = TraceContext.inject(span)
        assert.strictEqual(headers.traceparent, HttpTraceContext.toHeaders(span).traceparent)
        const parent = TraceContext.extract(headers)
        assert.isTrue(Option.isSome(parent))
        if (Option.isNone(parent)) return
        assert.strictEqual(parent.value.traceId, span.traceId)
        assert.strictEqual(parent.value.spanId, span.spanId)
        assert.strictEqual(parent.value.sampled, sampled)
      }
    })
  )

  it.effect("tracestate is carried when the span has one", () =>
    Effect.gen(function* () {
      const span = yield* Effect.makeSpan("send orders")
      assert.isUndefined(TraceContext.inject(span).tracestate)
      span.attribute(TraceContext.tracestate, "vendor=abc")
      assert.strictEqual(TraceContext.inject(span).tracestate, "vendor=abc")
    })
  )

  it.effect("issue 17.4: a parent's tracestate (an incoming request's) is carried by the spans below it", () =>
    Effect.gen(function* () {
      const incoming = {
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        tracestate: "vendor=abc"
      }
      const headers = yield* Effect.gen(function* () {
        yield* TraceContext.annotateIncoming(incoming)
        const send = yield* Effect.makeSpan("send orders")
        return TraceContext.inject(send)
      }).pipe(Effect.withSpan("POST /orders", { parent: Option.getOrThrow(TraceContext.extract(incoming)) }))
      assert.strictEqual(headers.tracestate, "vendor=abc")
      assert.include(headers.traceparent, "4bf92f3577b34da6a3ce929d0e0e4736")
      const alone = yield* Effect.makeSpan("send orders")
      assert.isUndefined(TraceContext.inject(alone).tracestate, "no tracestate anywhere up the chain: none written")
    })
  )

  it.effect("issue 18.5: propagate keeps traceparent and tracestate of one trace (bytes headers too)", () =>
    Effect.gen(function* () {
      const span = yield* Effect.makeSpan("send orders")
      const encoder = new TextEncoder()
      const own = {
        traceparent: encoder.encode("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        tracestate: encoder.encode("vendor=abc"),
        other: "kept"
      }
      const carried = TraceContext.carried(own)
      assert.strictEqual(carried?.parent.traceId, "4bf92f3577b34da6a3ce929d0e0e4736")
      const written = TraceContext.propagate(own, span, carried)
      assert.strictEqual(written.traceparent, TraceContext.inject(span).traceparent)
      assert.strictEqual(written.tracestate, "vendor=abc")
      assert.strictEqual(written.other, "kept")
      const stray = TraceContext.propagate(
        { tracestate: "vendor=abc" },
        span,
        TraceContext.carried({ tracestate: "x" })
      )
      assert.isUndefined(stray.tracestate)
    })
  )
})
