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
})
