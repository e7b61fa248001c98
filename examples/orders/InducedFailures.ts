/**
 * A Producer decorator that makes chosen sends fail, so the demo can show a retry and a dead-letter on any
 * broker, the embedded one or a real one. It fails a send before it reaches the driver: nothing is written.
 */
import { Effect, Layer } from "effect"
import { Producer, type PublishError } from "effect-kafka-publisher"

export type Rule = (record: Producer.ProducerRecord, attempt: number) => PublishError.PublishError | undefined

/** Wraps the Producer below: `rule` sees each record (and how often it was sent) and may fail it. */
export const layer = (rule: Rule): Layer.Layer<Producer.Producer, never, Producer.Producer> =>
  Layer.effect(
    Producer.Producer,
    Effect.gen(function* () {
      const inner = yield* Producer.Producer
      const attempts = new Map<string, number>()
      return Producer.Producer.of({
        inFlight: inner.inFlight,
        send: (records) =>
          Effect.suspend(() => {
            for (const record of records) {
              const id = `${record.topic}/${record.headers.orderId ?? ""}`
              const attempt = (attempts.get(id) ?? 0) + 1
              attempts.set(id, attempt)
              const error = rule(record, attempt)
              if (error) return Effect.fail(error)
            }
            return inner.send(records)
          })
      })
    })
  )
