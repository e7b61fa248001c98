// biome-ignore-all lint/suspicious/noExplicitAny: the OTLP JSON bodies are read loosely, as a test reads them
/**
 * A small OTLP/HTTP receiver for tests: what the OTLP JSON exporters (`@opentelemetry/exporter-*-otlp-http`,
 * JSON by default) POST to `/v1/traces`, `/v1/metrics` and `/v1/logs`, kept as parsed requests. Answers 200
 * with an empty JSON body, as a collector does.
 */
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"

/** An OTLP `AnyValue` as JSON (only the kinds the tests read). */
export interface AnyValue {
  readonly stringValue?: string
  readonly intValue?: string | number
  readonly boolValue?: boolean
  readonly doubleValue?: number
}
/** An OTLP `KeyValue` attribute. */
export interface KeyValue {
  readonly key: string
  readonly value: AnyValue
}

/** A JSON attribute list as a plain record (strings, numbers, booleans). */
export const attributesOf = (list: ReadonlyArray<KeyValue> | undefined): Record<string, unknown> =>
  Object.fromEntries(
    (list ?? []).map(({ key, value }) => [
      key,
      value.stringValue ??
        value.boolValue ??
        value.doubleValue ??
        (value.intValue === undefined ? undefined : Number(value.intValue))
    ])
  )

/** One exported metric: its name, unit and data points' attributes and values. */
export interface ReceivedMetric {
  readonly name: string
  readonly unit: string | undefined
  readonly kind: string
  readonly points: ReadonlyArray<{ readonly attributes: Record<string, unknown>; readonly value: unknown }>
}

interface RawMetric {
  readonly name: string
  readonly unit?: string
  readonly [kind: string]: unknown
}
interface RawPoint {
  readonly attributes?: ReadonlyArray<KeyValue>
  readonly asInt?: string | number
  readonly asDouble?: number
  readonly count?: string | number
  readonly sum?: number
}

export const startOtlpReceiver = async () => {
  const requests: Array<{ readonly path: string; readonly body: any }> = []
  const server = createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8")
      let body: unknown
      try {
        body = JSON.parse(text)
      } catch {
        body = { unparsed: text, contentType: req.headers["content-type"] }
      }
      requests.push({ path: req.url ?? "", body })
      res.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  const bodies = (path: string) => requests.filter((r) => r.path === path).map((r) => r.body)
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => requests,
    spans: (): Array<{ name: string; kind: number; attributes: Record<string, unknown>; traceId: string }> =>
      bodies("/v1/traces").flatMap((b) =>
        (b.resourceSpans ?? []).flatMap((rs: any) =>
          (rs.scopeSpans ?? []).flatMap((ss: any) =>
            (ss.spans ?? []).map((s: any) => ({ ...s, attributes: attributesOf(s.attributes) }))
          )
        )
      ),
    metrics: (): Array<ReceivedMetric> =>
      bodies("/v1/metrics").flatMap((b) =>
        (b.resourceMetrics ?? []).flatMap((rm: any) =>
          (rm.scopeMetrics ?? []).flatMap((sm: any) =>
            (sm.metrics ?? []).map((m: RawMetric) => {
              const kind = ["sum", "gauge", "histogram", "exponentialHistogram"].find((k) => m[k] !== undefined) ?? "?"
              const points = ((m[kind] as { dataPoints?: ReadonlyArray<RawPoint> } | undefined)?.dataPoints ?? []).map(
                (p) => ({
                  attributes: attributesOf(p.attributes),
                  value:
                    p.asInt !== undefined
                      ? Number(p.asInt)
                      : (p.asDouble ?? (p.count === undefined ? undefined : Number(p.count)))
                })
              )
              return { name: m.name, unit: m.unit, kind, points }
            })
          )
        )
      ),
    logs: (): Array<{ body: unknown; severityText: string | undefined; attributes: Record<string, unknown> }> =>
      bodies("/v1/logs").flatMap((b) =>
        (b.resourceLogs ?? []).flatMap((rl: any) =>
          (rl.scopeLogs ?? []).flatMap((sl: any) =>
            (sl.logRecords ?? []).map((l: any) => ({
              body: l.body?.stringValue ?? l.body,
              severityText: l.severityText,
              attributes: attributesOf(l.attributes)
            }))
          )
        )
      ),
    resources: (path: string): Array<Record<string, unknown>> =>
      bodies(path).flatMap((b) =>
        (b.resourceSpans ?? b.resourceMetrics ?? b.resourceLogs ?? []).map((r: any) =>
          attributesOf(r.resource?.attributes)
        )
      ),
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

export type OtlpReceiver = Awaited<ReturnType<typeof startOtlpReceiver>>
