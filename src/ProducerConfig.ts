/**
 * The settings every driver understands, named after the Java client where they mean the same thing
 * (`acks`, `enable.idempotence`, `request.timeout.ms`, `compression.type`), and how to read them from the
 * environment. A driver adds its own settings on top (`KafkaJsProducer.KafkaJsConfig`,
 * `PlatformaticProducer.PlatformaticConfig`).
 *
 * @module
 */
import {
  Config,
  Duration,
  Effect,
  Layer,
  Option,
  type Redacted,
  Schema,
  SchemaTransformation,
  type Scope
} from "effect"
import { millis } from "./internal/duration.ts"
import { Producer } from "./Producer.ts"
import { Fatal, type PublishError } from "./PublishError.ts"

/**
 * How many replicas must have a record before the broker answers (Java: acks): "all" (-1, every in-sync
 * replica), "leader" (1), "none" (0, no answer at all: receipts carry offset "-1").
 */
export type Acks = "all" | "leader" | "none"

/** SASL mechanisms the drivers offer (Java: sasl.mechanism PLAIN, SCRAM-SHA-256, SCRAM-SHA-512). */
export type SaslMechanism = "plain" | "scram-sha-256" | "scram-sha-512"

/** SASL credentials (Java: sasl.mechanism and sasl.jaas.config). */
export interface Sasl {
  /** The mechanism. */
  readonly mechanism: SaslMechanism
  /** The user name. */
  readonly username: string
  /** Unwrapped only where the driver hands it to its client; never logged. */
  readonly password: Redacted.Redacted<string>
}

/**
 * Compression of record batches (Java: compression.type). With kafkajs, snappy needs the package
 * `kafkajs-snappy` and lz4 `@platformatic/wasm-utils` (optional peers); @platformatic/kafka has all built in.
 */
export type Compression = "none" | "gzip" | "snappy" | "lz4" | "zstd"

/** The client's own retries of one in-flight request (Java: retries, retry.backoff.ms, retry.backoff.max.ms). */
export interface DriverRetry {
  /** Retries of one in-flight request inside the client (same sequence numbers). Default 5. */
  readonly retries?: number | undefined
  /** The first wait between two retries, doubled each time. Default 100 ms. */
  readonly initialRetryTime?: Duration.Input | undefined
  /** Longest wait between two of those retries. Default 2 s (so 5 retries wait about 3 s in all). */
  readonly maxRetryTime?: Duration.Input | undefined
}

/** The driver-neutral settings; every field but `brokers` has a default (`defaults`). */
export interface ProducerConfig {
  /** Bootstrap brokers, "host:port" each (Java: bootstrap.servers). */
  readonly brokers: ReadonlyArray<string>
  /** Default "effect-kafka-publisher". */
  readonly clientId?: string | undefined
  /** Default "all" (Java: acks=all). Idempotence needs "all". */
  readonly acks?: Acks | undefined
  /** Default true (Java: enable.idempotence=true). */
  readonly idempotent?: boolean | undefined
  /** How long one request waits for its answer. Default 30 s (Java: request.timeout.ms). */
  readonly requestTimeout?: Duration.Input | undefined
  /** TCP connect timeout. Default 3 s. */
  readonly connectionTimeout?: Duration.Input | undefined
  /** Ask the broker to create unknown topics (if it allows it). Default true, as kafkajs. */
  readonly autoCreateTopics?: boolean | undefined
  /** Default "none" (Java: compression.type): none, gzip, snappy, lz4 or zstd. */
  readonly compression?: Compression | undefined
  /** The client's retries of one request. Default 5 retries, 100 ms doubling up to 2 s. */
  readonly retry?: DriverRetry | undefined
  /**
   * Produce requests in flight per broker (Java: max.in.flight.requests.per.connection). Default 5. A whole
   * number from 1, and at most 5 with idempotence: the broker keeps the last 5 batches of each producer and
   * partition to drop a resent copy, so more could write a resent batch twice. A bad value fails the layer
   * with a typed Fatal `InvalidConfig`. Environment: `KAFKA_MAX_IN_FLIGHT_REQUESTS`.
   *
   * @platformatic/kafka pipelines up to this many requests per broker, order per partition and
   * zero-duplicates kept through faults (`PipelinedSender`). kafkajs sends idempotent requests one at a time
   * whatever this says (kafkajs takes back a failed request's sequence numbers, see `KafkaJsProducer`);
   * without idempotence it is kafkajs's own `maxInFlightRequests`.
   */
  readonly maxInFlightRequests?: number | undefined
  /** TLS to the brokers with the system's CAs (Java: security.protocol=SSL / SASL_SSL). Default false. */
  readonly ssl?: boolean | undefined
  /** SASL authentication. Default none. */
  readonly sasl?: Sasl | undefined
}

/** The defaults of `ProducerConfig`: the Java client's where it has the setting. */
export const defaults = {
  /** "effect-kafka-publisher" (Java: client.id). */
  clientId: "effect-kafka-publisher",
  /** "all" (Java: acks=all). */
  acks: "all",
  /** true (Java: enable.idempotence=true). */
  idempotent: true,
  /** 30 s (Java: request.timeout.ms). */
  requestTimeout: Duration.seconds(30),
  /** 3 s (Java: socket.connection.setup.timeout.ms is 10 s; kafkajs's default is 1 s). */
  connectionTimeout: Duration.seconds(3),
  /** true, as kafkajs (Java: allow.auto.create.topics=true). */
  autoCreateTopics: true,
  /** "none" (Java: compression.type=none). */
  compression: "none",
  /** The client's retries of one request. */
  retry: {
    /** 5. */
    retries: 5,
    /** 100 ms (Java: retry.backoff.ms). */
    initialRetryTime: Duration.millis(100),
    /** 2 s. */
    maxRetryTime: Duration.seconds(2)
  },
  /** 5 (Java: max.in.flight.requests.per.connection). */
  maxInFlightRequests: 5
} as const

/** The most produce requests in flight per broker with idempotence: the batches a broker keeps per producer and partition. */
export const maxIdempotentInFlight = 5

/** `acks` as the protocol counts it (the produce request's `acks` field). */
export const acksValue = {
  /** -1: every in-sync replica. */
  all: -1,
  /** 1: the leader. */
  leader: 1,
  /** 0: no answer. */
  none: 0
} as const

/** Whole milliseconds of a duration setting, as the clients take them. */
export { millis }

/**
 * Idempotence needs `acks=all` (Java: enable.idempotence requires acks=all; the broker tracks sequence
 * numbers only for writes every in-sync replica has): a config asking for both fails with a typed
 * Fatal `InvalidConfig`, before any connection is made. Every driver calls it first.
 */
export const checkIdempotence = (config: ProducerConfig): Effect.Effect<void, Fatal> => {
  const idempotent = config.idempotent ?? defaults.idempotent
  const acks = config.acks ?? defaults.acks
  return idempotent && acks !== "all"
    ? Effect.fail(
        new Fatal({
          reason: "InvalidConfig",
          message: `idempotence needs acks=all (got acks=${acks}): set acks to "all" or idempotent to false (KAFKA_ACKS, KAFKA_IDEMPOTENT)`
        })
      )
    : Effect.void
}

/**
 * The produce requests a driver may have in flight per broker (`maxInFlightRequests`, default 5), checked: a
 * whole number from 1, at most 5 with idempotence. Anything else fails with a typed Fatal `InvalidConfig`
 * before any connection is made.
 */
export const maxInFlightOf = (config: ProducerConfig): Effect.Effect<number, Fatal> => {
  const value = config.maxInFlightRequests ?? defaults.maxInFlightRequests
  const idempotent = config.idempotent ?? defaults.idempotent
  const limit = idempotent ? maxIdempotentInFlight : Number.MAX_SAFE_INTEGER
  if (Number.isInteger(value) && value >= 1 && value <= limit) return Effect.succeed(value)
  const range = idempotent
    ? `a whole number from 1 to ${maxIdempotentInFlight} with idempotence (the broker keeps the last ${maxIdempotentInFlight} batches to drop a resent copy)`
    : "a whole number from 1"
  return Effect.fail(
    new Fatal({
      reason: "InvalidConfig",
      message: `maxInFlightRequests must be ${range}, got ${value} (KAFKA_MAX_IN_FLIGHT_REQUESTS)`
    })
  )
}

/** The driver's own retries of one request, with defaults filled in, in milliseconds. */
export const driverRetry = (config: ProducerConfig) => ({
  /** Retries of one request. */
  retries: config.retry?.retries ?? defaults.retry.retries,
  /** The first wait, in milliseconds. */
  initialRetryTime: millis(config.retry?.initialRetryTime ?? defaults.retry.initialRetryTime),
  /** The longest wait, in milliseconds. */
  maxRetryTime: millis(config.retry?.maxRetryTime ?? defaults.retry.maxRetryTime)
})

const isBroker = (entry: string): boolean => {
  const match = /^([^\s:,]+):(\d{1,5})$/.exec(entry)
  return match !== null && Number(match[2]) >= 1 && Number(match[2]) <= 65535
}

/** The entries of a list, empty ones dropped: a trailing comma is harmless. */
const brokerEntries = (list: string | undefined): ReadonlyArray<string> =>
  (list ?? "")
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")

/** What is wrong with a broker list, naming the bad entry, or true. Unset counts as empty. */
const brokerListProblem = (list: string | undefined): string | true => {
  const entries = brokerEntries(list)
  if (entries.length === 0) return "empty or not set; set it to host:port[,host:port...], e.g. localhost:9092"
  const bad = entries.find((entry) => !isBroker(entry))
  return bad === undefined ? true : `'${bad}' is not host:port`
}

/**
 * A broker list, "host:port,host:port", decoded to its entries. Checked here so a typo fails at startup with
 * one line naming the bad entry (`'not-a-host' is not host:port`), not later as a connection error. It also
 * accepts `undefined` (an unset variable) to say that the list is empty.
 */
export const BrokerList = Schema.UndefinedOr(Schema.String)
  .check(Schema.makeFilter(brokerListProblem))
  .pipe(
    Schema.decodeTo(
      Schema.Array(Schema.String),
      SchemaTransformation.transform<ReadonlyArray<string>, string | undefined>({
        decode: brokerEntries,
        encode: (entries) => entries.join(",")
      })
    )
  )

/** Parses a broker list ("host:port,host:port") as `KAFKA_BROKERS` is parsed: a command line's `--brokers`. */
export const parseBrokers = Schema.decodeUnknownEffect(BrokerList)

/** Everything but the brokers, for callers that name the brokers themselves. */
export const optionsConfig = Config.all({
  /** `KAFKA_CLIENT_ID`. */
  clientId: Config.String("KAFKA_CLIENT_ID").pipe(Config.withDefault(defaults.clientId)),
  /** `KAFKA_ACKS`: all, leader or none. */
  acks: Config.schema(Schema.Literals(["all", "leader", "none"]), "KAFKA_ACKS").pipe(
    Config.withDefault("all" as const)
  ),
  /** `KAFKA_IDEMPOTENT`. */
  idempotent: Config.Boolean("KAFKA_IDEMPOTENT").pipe(Config.withDefault(defaults.idempotent)),
  /** `KAFKA_REQUEST_TIMEOUT`, a duration ("30 seconds"). */
  requestTimeout: Config.Duration("KAFKA_REQUEST_TIMEOUT").pipe(Config.withDefault(defaults.requestTimeout)),
  /** `KAFKA_CONNECTION_TIMEOUT`, a duration. */
  connectionTimeout: Config.Duration("KAFKA_CONNECTION_TIMEOUT").pipe(Config.withDefault(defaults.connectionTimeout)),
  /** `KAFKA_AUTO_CREATE_TOPICS`. */
  autoCreateTopics: Config.Boolean("KAFKA_AUTO_CREATE_TOPICS").pipe(Config.withDefault(defaults.autoCreateTopics)),
  /** `KAFKA_COMPRESSION`: none, gzip, snappy, lz4 or zstd. */
  compression: Config.schema(Schema.Literals(["none", "gzip", "snappy", "lz4", "zstd"]), "KAFKA_COMPRESSION").pipe(
    Config.withDefault("none" as const)
  ),
  /** `KAFKA_SSL`. */
  ssl: Config.Boolean("KAFKA_SSL").pipe(Config.withDefault(false)),
  /** `KAFKA_MAX_IN_FLIGHT_REQUESTS`: produce requests in flight per broker, an integer (the range is checked by the driver). */
  maxInFlightRequests: Config.Int("KAFKA_MAX_IN_FLIGHT_REQUESTS").pipe(
    Config.withDefault(defaults.maxInFlightRequests)
  ),
  /** `KAFKA_SASL_MECHANISM`, `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD`, all or none. */
  sasl: Config.all({
    /** `KAFKA_SASL_MECHANISM`: plain, scram-sha-256 or scram-sha-512. */
    mechanism: Config.schema(Schema.Literals(["plain", "scram-sha-256", "scram-sha-512"]), "KAFKA_SASL_MECHANISM"),
    /** `KAFKA_SASL_USERNAME`. */
    username: Config.String("KAFKA_SASL_USERNAME"),
    /** `KAFKA_SASL_PASSWORD`, kept `Redacted`. */
    password: Config.Redacted("KAFKA_SASL_PASSWORD")
  }).pipe(Config.option, Config.map(Option.getOrUndefined))
})

/**
 * The config from the environment: `KAFKA_BROKERS` (required, comma-separated host:port), `KAFKA_CLIENT_ID`,
 * `KAFKA_ACKS` (all|leader|none), `KAFKA_IDEMPOTENT`, `KAFKA_REQUEST_TIMEOUT` / `KAFKA_CONNECTION_TIMEOUT`
 * (durations: "30 seconds", "500 millis"), `KAFKA_AUTO_CREATE_TOPICS`, `KAFKA_COMPRESSION` (none|gzip|snappy|lz4|zstd),
 * `KAFKA_SSL`, `KAFKA_MAX_IN_FLIGHT_REQUESTS` (an integer, 1 to 5 with idempotence; default 5),
 * `KAFKA_SASL_MECHANISM` (plain|scram-sha-256|scram-sha-512), `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD`
 * (kept `Redacted`). A bad value fails at startup and names the variable.
 */
export const config: Config.Config<ProducerConfig> = Config.all({
  brokers: Config.schema(BrokerList, "KAFKA_BROKERS"),
  options: optionsConfig
}).pipe(Config.map(({ brokers, options }) => ({ ...options, brokers })))

/** The environment's config, or only its options when the caller names the brokers. */
export const fromEnvironment = (brokers: ReadonlyArray<string> | undefined) =>
  brokers === undefined ? config : Config.map(optionsConfig, (options): ProducerConfig => ({ ...options, brokers }))

/** A driver's layer configured from the environment: its `make` over `config`, the caller's overrides on top. */
export const layerConfig = <C extends ProducerConfig>(
  make: (config: C) => Effect.Effect<Producer, PublishError, Scope.Scope>,
  overrides: Partial<C>
): Layer.Layer<Producer, PublishError | Config.ConfigError> =>
  Layer.effect(
    Producer,
    Effect.gen(function* () {
      const fromEnv = yield* fromEnvironment(overrides.brokers)
      // the environment names only the driver-neutral settings; a driver's own come from the overrides
      return yield* make({ ...fromEnv, ...overrides } as C)
    })
  )
