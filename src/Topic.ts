/**
 * A typed destination: a topic name paired with the Schema of its events, how the key is taken from an
 * event, optional headers, and the serializer that turns the encoded event into bytes (JSON by default).
 *
 * `encode` is the first step of every publish: an event that does not encode, a key function that throws or
 * a header value that is neither a string nor bytes is a `Fatal` error and nothing is sent.
 *
 * @module
 */
import { Effect, Schema } from "effect"
import type { Headers, ProducerRecord } from "./Producer.ts"
import { Fatal } from "./PublishError.ts"

/** Turns the Schema-encoded event into the record value. Bring your own for Avro, Protobuf, raw bytes... */
export interface Serializer<in I> {
  /** The MIME type of the bytes it writes (e.g. `application/json`), for documentation and tools. */
  readonly contentType: string
  /** The record value for an encoded event; a throw becomes `Fatal` `SchemaInvalid`. */
  readonly serialize: (encoded: I) => Uint8Array
}

/** UTF-8 JSON, the default. */
export const json: Serializer<unknown> = {
  contentType: "application/json",
  // Buffer.from, not TextEncoder: the same bytes, a fraction of the time for short strings (it slices them
  // from a shared pool instead of allocating an ArrayBuffer each), and a Buffer is what kafkajs writes.
  serialize: (encoded) => Buffer.from(JSON.stringify(encoded), "utf8")
}

/** The encoded event is already bytes (a `Uint8Array` schema): written as they are. */
export const bytes: Serializer<Uint8Array> = {
  contentType: "application/octet-stream",
  serialize: (encoded) => encoded
}

/** What a key function returns: text (written as UTF-8), bytes, or no key (`null` / `undefined`). */
export type KeyValue = string | Uint8Array | null | undefined

/** A typed destination, built by `make`: every field filled in. */
export interface Topic<A, I = A> {
  /** The Kafka topic name. */
  readonly name: string
  /** The Schema events are validated and encoded with. */
  readonly schema: Schema.Codec<A, I>
  /** The record key of an event. */
  readonly key: (event: A) => KeyValue
  /** The record headers of an event. */
  readonly headers: (event: A) => Headers
  /** The bytes of an encoded event. */
  readonly serializer: Serializer<I>
}

/** What `make` takes: a name and a Schema, the rest optional. */
export interface Options<A, I> {
  /** The Kafka topic name. */
  readonly name: string
  /** The Schema of its events (`A` the event, `I` what it encodes to). */
  readonly schema: Schema.Codec<A, I>
  /** The record key (the partitioning key). Default: no key. */
  readonly key?: ((event: A) => KeyValue) | undefined
  /** Headers for each record. Default: none. */
  readonly headers?: ((event: A) => Headers) | undefined
  /** Default: `json`. */
  readonly serializer?: Serializer<I> | undefined
}

const noKey = (): KeyValue => null
const noHeaders = (): Headers => ({})

/** A topic: no key, no headers and JSON unless the options say otherwise. */
export const make = <A, I>(options: Options<A, I>): Topic<A, I> => ({
  name: options.name,
  schema: options.schema,
  key: options.key ?? noKey,
  headers: options.headers ?? noHeaders,
  serializer: options.serializer ?? (json as Serializer<I>)
})

const toBytes = (value: string | Uint8Array): Uint8Array =>
  typeof value === "string" ? Buffer.from(value, "utf8") : value

const invalid = (topic: string, reason: "SchemaInvalid" | "InvalidRecord", message: string, cause?: unknown) =>
  new Fatal({ reason, topic, message, ...(cause === undefined ? {} : { cause }) })

const checkHeaders = (topic: string, headers: Headers): Fatal | undefined => {
  for (const name in headers) {
    const value: unknown = headers[name]
    if (typeof value !== "string" && !(value instanceof Uint8Array)) {
      return invalid(topic, "InvalidRecord", `header "${name}" must be a string or bytes, got ${typeof value}`)
    }
  }
  return undefined
}

// One encoder per schema, built on first use: `Schema.encodeEffect(schema)` makes a new one on every call.
const encoders = new WeakMap<object, (event: unknown) => Effect.Effect<unknown, Schema.SchemaError>>()

const encoderOf = <A, I>(schema: Schema.Codec<A, I>): ((event: A) => Effect.Effect<I, Schema.SchemaError>) => {
  let encoder = encoders.get(schema)
  if (encoder === undefined) {
    encoder = Schema.encodeEffect(schema as Schema.Codec<unknown, unknown>)
    encoders.set(schema, encoder)
  }
  return encoder as (event: A) => Effect.Effect<I, Schema.SchemaError>
}

/** Validates and serializes one event into the record the driver writes. */
export const encode = <A, I>(topic: Topic<A, I>, event: A): Effect.Effect<ProducerRecord, Fatal> =>
  encoderOf(topic.schema)(event).pipe(
    Effect.mapError((error) => invalid(topic.name, "SchemaInvalid", error.message, error)),
    Effect.flatMap((encoded) => toRecord(topic, event, encoded))
  )

/** Key, headers and value of an encoded event, in one synchronous step. */
const toRecord = <A, I>(topic: Topic<A, I>, event: A, encoded: I): Effect.Effect<ProducerRecord, Fatal> => {
  let key: KeyValue
  let headers: Headers
  try {
    key = topic.key(event)
    headers = topic.headers(event)
  } catch (cause) {
    return Effect.fail(invalid(topic.name, "InvalidRecord", `key or headers function threw: ${String(cause)}`, cause))
  }
  // TypeScript types the key function, but a cast or plain JavaScript can hand anything to the driver
  if (key !== null && key !== undefined && typeof key !== "string" && !(key instanceof Uint8Array)) {
    return Effect.fail(
      invalid(topic.name, "InvalidRecord", `key must be a string, bytes, null or undefined, got ${typeof key}`)
    )
  }
  const bad = checkHeaders(topic.name, headers)
  if (bad) return Effect.fail(bad)
  let value: Uint8Array
  try {
    value = topic.serializer.serialize(encoded)
  } catch (cause) {
    return Effect.fail(invalid(topic.name, "SchemaInvalid", `serializer failed: ${String(cause)}`, cause))
  }
  return Effect.succeed({
    topic: topic.name,
    key: key === null || key === undefined ? null : toBytes(key),
    value,
    headers
  })
}
