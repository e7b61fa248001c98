#!/usr/bin/env -S node --disable-warning=TimeoutNegativeWarning
/**
 * The `effect-kafka-publisher` command line:
 *
 *   verify --topic T [--expect N] [--id-header eventId]   read a topic back: count, duplicates, offset gaps
 *          [--isolation read_committed|read_uncommitted]   which records (default read_committed; dlt too)
 *   produce --topic T --value V [--key K] [--header k=v]  publish one record (retries and dead-letter included)
 *   dlt --topic T [--dlt-topic T.dlt]                      list dead-lettered records with their headers
 *   dlt replay --topic T.dlt [--to T] [--where k=v]...    send dead letters back (see Redrive); --dry-run lists them
 *
 * verify, dlt and dlt replay show progress on stderr (a line rewritten in place on a terminal, a plain line
 * every --progress-interval seconds otherwise) and with --json print one JSON document on stdout, nothing else.
 *
 * Every command takes the same settings, parsed by `ProducerConfig` as the library parses them: the brokers
 * from --brokers or KAFKA_BROKERS, TLS and SASL from KAFKA_SSL and KAFKA_SASL_MECHANISM / _USERNAME /
 * _PASSWORD, timeouts from KAFKA_CONNECTION_TIMEOUT / KAFKA_REQUEST_TIMEOUT. Each command first contacts
 * the cluster once per broker, without retries, so an unreachable cluster or refused credentials fail at once.
 *
 * An error prints one line on stderr, "error: what is wrong; what to do"; `--log-level debug` adds the
 * details (the cause, stack traces). The library's own logs appear only with `--log-level`. No secret is
 * ever printed.
 *
 * Exit codes:
 *   0  ok
 *   1  the check failed: verify found other than expected (count, duplicates, gaps); produce did not deliver
 *      the record to its topic (dead-lettered or failed); a read did not complete
 *   2  bad usage or configuration: unknown command or flag, a missing or bad KAFKA_* value or --brokers, a
 *      missing package (kafkajs)
 *   3  the cluster could not be reached or refused us: connection refused, unknown host, connection timeout,
 *      TLS failure, authentication failed (wrong SASL credentials), not authorised (ACLs)
 *   130  interrupted (SIGINT, SIGTERM)
 *
 * @module
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import {
  Cause,
  Config,
  Console,
  Data,
  Effect,
  Exit,
  Layer,
  LogLevel,
  Option,
  References,
  Runtime,
  SchemaIssue
} from "effect"
import { CliError, CliOutput, Command, Flag } from "effect/cli"
import * as DeadLetter from "../DeadLetter.ts"
import type { KafkaJsConfig } from "../kafkajs/KafkaJsProducer.ts"
import type { Producer } from "../Producer.ts"
import * as ProducerConfig from "../ProducerConfig.ts"
import type { PublishError } from "../PublishError.ts"
import * as Publisher from "../Publisher.ts"
import * as Redrive from "../Redrive.ts"
import * as TopicAudit from "../reader/TopicAudit.ts"
import * as TopicReader from "../reader/TopicReader.ts"
import * as Progress from "./progress.ts"

/** The exit codes of the command line (see the module comment). */
export const ExitCode = { ok: 0, checkFailed: 1, usage: 2, unreachable: 3 } as const

/** A bad command line the parser cannot see (a bad --brokers value). */
class Usage extends Data.TaggedError("Usage")<{ readonly message: string }> {}

/** The outcome was reported already (verify's FAILED, produce's dead letter): exit with `code`. */
class Reported extends Data.TaggedError("Reported")<{ readonly code: number }> {}

const brokersFlag = Flag.String("brokers").pipe(
  Flag.withDescription("bootstrap servers, host:port[,host:port]; default: KAFKA_BROKERS"),
  Flag.optional
)

const jsonFlag = Flag.Boolean("json").pipe(
  Flag.withDescription("print one JSON document on stdout, nothing else"),
  Flag.withDefault(false)
)

const progressIntervalFlag = Flag.Int("progress-interval").pipe(
  Flag.withDescription("seconds between progress lines when stderr is not a terminal"),
  Flag.withDefault(5)
)

/** Which records the reading commands read (Java: `isolation.level`); the reader's default, read_committed. */
const isolationFlag = Flag.Literals("isolation", ["read_committed", "read_uncommitted"]).pipe(
  Flag.withDescription(
    "read_committed skips aborted transactions and waits for open ones; read_uncommitted reads every record written"
  ),
  Flag.withDefault("read_committed" as const)
)

/** How a command reads a topic: its isolation level and how often it reports progress. */
interface ReadSettings {
  readonly isolation: NonNullable<TopicReader.Options["isolation"]>
  readonly progressInterval: number
}

/** Reads a topic with progress on stderr. */
const readWithProgress = (
  config: TopicReader.ConnectionOptions,
  topic: string,
  read: ReadSettings,
  onSkipped?: TopicReader.Options["onSkipped"]
): Effect.Effect<ReadonlyArray<TopicReader.ReadRecord>, TopicReader.ReadFailed> =>
  Effect.suspend(() => {
    const reporter = progressReporter(`reading ${topic}`, read.progressInterval)
    return TopicReader.readAll({
      ...config,
      topic,
      isolation: read.isolation,
      onProgress: reporter.update,
      onSkipped
    }).pipe(Effect.ensuring(Effect.sync(reporter.done)))
  })

const progressReporter = (label: string, intervalSeconds: number) =>
  Progress.make({
    label,
    tty: process.stderr.isTTY === true,
    write: (text) => process.stderr.write(text),
    intervalMs: intervalSeconds * 1000,
    now: Date.now
  })

/** One JSON document on stdout (bigints as strings; bytes are turned into text by the caller). */
const json = (value: unknown) =>
  Console.log(JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v)))

/** The settings of every command: ProducerConfig from the environment, --brokers in place of KAFKA_BROKERS. */
const settings = (brokers: Option.Option<string>) =>
  Option.match(brokers, {
    onNone: () => ProducerConfig.config,
    onSome: (list) =>
      ProducerConfig.parseBrokers(list).pipe(
        Effect.mapError((error) => new Usage({ message: `--brokers: ${error.message}` })),
        Effect.flatMap(ProducerConfig.fromEnvironment)
      )
  })

/** The settings, after a fast first contact with the cluster. */
const connected = (brokers: Option.Option<string>) =>
  Effect.tap(settings(brokers), (config) => TopicReader.checkConnection(config))

const decoder = new TextDecoder()
const text = (bytes: Uint8Array | null) => (bytes === null ? "(null)" : decoder.decode(bytes))

const printReport = (report: TopicAudit.Report) =>
  Effect.gen(function* () {
    for (const p of report.partitions) {
      yield* Console.log(`partition ${p.partition}: ${p.count} records, offsets ${p.first}..${p.last}`)
    }
    const expected = report.expected === undefined ? "" : ` (expected ${report.expected})`
    yield* Console.log(`count ${report.count}${expected}, duplicates ${report.duplicates}, gaps ${report.gaps.length}`)
    for (const gap of report.gaps) {
      yield* Console.log(`  gap in partition ${gap.partition}: after ${gap.after}, next ${gap.next}`)
    }
    for (const id of report.duplicateIds) yield* Console.log(`  duplicate: ${id}`)
    yield* Console.log(report.ok ? "OK" : "FAILED")
  })

const verify = Command.make(
  "verify",
  {
    topic: Flag.String("topic").pipe(Flag.withDescription("the topic to read back")),
    expect: Flag.Int("expect").pipe(Flag.withDescription("expected number of records"), Flag.optional),
    idHeader: Flag.String("id-header").pipe(
      Flag.withDescription("the header that carries a unique event id"),
      Flag.withDefault("eventId")
    ),
    isolation: isolationFlag,
    json: jsonFlag,
    progressInterval: progressIntervalFlag,
    brokers: brokersFlag
  },
  (options) =>
    Effect.gen(function* () {
      const config = yield* connected(options.brokers)
      yield* Console.error(`reading ${options.topic} (${options.isolation}) from ${config.brokers.join(",")} ...`)
      // transaction markers and aborted records take offsets too: not gaps
      const skipped: Array<TopicAudit.Skipped> = []
      const records = yield* readWithProgress(config, options.topic, options, (run) => skipped.push(run))
      const report = TopicAudit.audit(records, {
        expect: Option.getOrUndefined(options.expect),
        idHeader: options.idHeader,
        skipped
      })
      yield* options.json ? json(report) : printReport(report)
      if (!report.ok) return yield* new Reported({ code: ExitCode.checkFailed })
    }).pipe(explained)
).pipe(Command.withDescription("Read a topic back and check count, duplicates and offset gaps; exit 1 if not OK"))

/** The kafkajs driver, loaded only by `produce`: the other commands and --help work without it loaded. */
const kafkaJsLayer = (config: KafkaJsConfig): Layer.Layer<Producer, PublishError | TopicReader.ReadFailed> =>
  Layer.unwrap(
    Effect.tryPromise({
      try: () => import("../kafkajs/KafkaJsProducer.ts"),
      catch: (cause) =>
        new TopicReader.ReadFailed({
          message: "produce needs the kafkajs package: npm install kafkajs",
          reason: "ClientMissing",
          cause
        })
    }).pipe(Effect.map((driver) => driver.layer(config)))
  )

const produce = Command.make(
  "produce",
  {
    topic: Flag.String("topic").pipe(Flag.withDescription("the topic to publish to")),
    value: Flag.String("value").pipe(Flag.withDescription("the record's value (UTF-8)")),
    key: Flag.String("key").pipe(Flag.withDescription("the record's key (UTF-8)"), Flag.optional),
    header: Flag.KeyValuePair("header").pipe(Flag.withDescription("a header, name=value"), Flag.withDefault({})),
    brokers: brokersFlag
  },
  (options) =>
    Effect.gen(function* () {
      const config = yield* connected(options.brokers)
      const receipt = yield* Publisher.Publisher.use((publisher) =>
        publisher.publishRecord({
          topic: options.topic,
          key: Option.match(options.key, { onNone: () => null, onSome: (k) => Buffer.from(k) }),
          value: Buffer.from(options.value),
          headers: options.header
        })
      ).pipe(Effect.provide(Publisher.layer().pipe(Layer.provide(kafkaJsLayer(config)))))
      if (receipt._tag === "Delivered") {
        return yield* Console.log(`delivered ${receipt.topic} partition ${receipt.partition} offset ${receipt.offset}`)
      }
      yield* Console.log(
        `dead-lettered to ${receipt.deadLetterTopic} partition ${receipt.partition} offset ${receipt.offset}: ${DeadLetter.errorType(receipt.error)} ${receipt.error.message}`
      )
      return yield* new Reported({ code: ExitCode.checkFailed })
    }).pipe(explained)
).pipe(Command.withDescription("Publish one record; exit 1 if it was dead-lettered instead"))

/** Reads a topic; one that does not exist reads as empty. */
const readOrEmpty = (config: TopicReader.ConnectionOptions, topic: string, read: ReadSettings) =>
  readWithProgress(config, topic, read).pipe(
    Effect.catchIf(
      (error) => error.reason === "UnknownTopic",
      () => Effect.succeed([])
    )
  )

const where = (texts: ReadonlyArray<string>) =>
  Effect.forEach(texts, (text) => {
    const filter = Redrive.parseFilter(text)
    return filter === undefined
      ? Effect.fail(new Usage({ message: `--where ${text}: expected header=value or header=prefix*` }))
      : Effect.succeed(filter)
  })

const replay = Command.make(
  "replay",
  {
    topic: Flag.String("topic").pipe(Flag.withDescription("the dead-letter topic to redrive, e.g. orders.dlt")),
    to: Flag.String("to").pipe(Flag.withDescription("send here instead of each record's originalTopic"), Flag.optional),
    where: Flag.String("where").pipe(
      Flag.withDescription("header=value (or header=prefix*); several are ANDed"),
      Flag.atLeast(0)
    ),
    max: Flag.Int("max").pipe(Flag.withDescription("send at most N records"), Flag.optional),
    maxRedrives: Flag.Int("max-redrives").pipe(
      Flag.withDescription("skip records redriven this many times already"),
      Flag.withDefault(Redrive.defaultMaxRedrives)
    ),
    dryRun: Flag.Boolean("dry-run").pipe(Flag.withDescription("list what would be sent"), Flag.withDefault(false)),
    isolation: isolationFlag,
    json: jsonFlag,
    progressInterval: progressIntervalFlag,
    brokers: brokersFlag
  },
  (options) =>
    Effect.gen(function* () {
      const filters = yield* where(options.where)
      const config = yield* connected(options.brokers)
      const source: Redrive.Source = { read: (topic) => readOrEmpty(config, topic, options) }
      const redrive: Redrive.Options = {
        deadLetterTopic: options.topic,
        to: Option.getOrUndefined(options.to),
        filters,
        max: Option.getOrUndefined(options.max),
        maxRedrives: options.maxRedrives
      }
      const planned = yield* Redrive.plan(source, redrive)
      const sends = planned.decisions.filter((d) => d._tag === "Send")
      const summary = options.dryRun
        ? Redrive.dryRun(planned)
        : yield* Redrive.execute(planned).pipe(
            Effect.provide(
              Publisher.layer({ deadLetter: { topicName: () => options.topic } }).pipe(
                Layer.provide(kafkaJsLayer(config))
              )
            )
          )
      if (options.json) {
        const wouldSend = sends.map((d) => ({ from: d.from, topic: d.record.topic, key: text(d.record.key) }))
        yield* json({ dryRun: options.dryRun, ...summary, ...(options.dryRun ? { wouldSend } : {}) })
      } else {
        if (options.dryRun) {
          for (const d of sends) {
            yield* Console.log(`would send ${d.from} to ${d.record.topic} key ${text(d.record.key)}`)
          }
        }
        yield* Console.log(`${options.dryRun ? "dry run: " : ""}${Redrive.summarize(summary)}`)
      }
      if (summary.deadLetteredAgain > 0 || summary.failed > 0)
        return yield* new Reported({ code: ExitCode.checkFailed })
    }).pipe(explained)
).pipe(
  Command.withDescription(
    "Send dead letters back to their topic, once each (redrivenFrom header); exit 1 if one failed again"
  )
)

const dlt = Command.make(
  "dlt",
  {
    topic: Flag.String("topic").pipe(Flag.withDescription("the original topic")),
    dltTopic: Flag.String("dlt-topic").pipe(
      Flag.withDescription("the dead-letter topic; default: the topic's name + .dlt"),
      Flag.optional
    ),
    isolation: isolationFlag,
    json: jsonFlag,
    progressInterval: progressIntervalFlag,
    brokers: brokersFlag
  },
  (options) =>
    Effect.gen(function* () {
      const config = yield* connected(options.brokers)
      const topic = Option.getOrElse(options.dltTopic, () => DeadLetter.defaultTopicName(options.topic))
      const records = yield* readOrEmpty(config, topic, options)
      if (options.json) {
        const listed = records.map((r) => ({
          partition: r.partition,
          offset: r.offset,
          key: r.key,
          headers: r.headers
        }))
        return yield* json({ topic, count: records.length, records: listed })
      }
      for (const r of records) {
        yield* Console.log(`${topic} partition ${r.partition} offset ${r.offset} key ${text(r.key)}`)
        for (const [name, value] of Object.entries(r.headers)) yield* Console.log(`  ${name}: ${text(value)}`)
      }
      yield* Console.log(`${records.length} dead-lettered record(s) in ${topic}`)
    }).pipe(explained)
).pipe(
  Command.withDescription("List dead-lettered records with their headers; 'dlt replay' sends them back"),
  Command.withSubcommands([replay])
)

const rootHelp = `Publish to Kafka and check what a topic holds.

  Settings (every command): --brokers or KAFKA_BROKERS, KAFKA_SSL, KAFKA_SASL_MECHANISM,
  KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_CONNECTION_TIMEOUT, KAFKA_REQUEST_TIMEOUT.
  Errors print one line; --log-level info shows the library's logs, debug also the error details.

  Exit codes:
    0  ok
    1  check failed: verify not OK, produce dead-lettered or failed, a read incomplete,
       dlt replay: a record failed again
    2  bad usage or configuration: flags, KAFKA_* variables, a missing package
    3  cluster unreachable or refused: connection, TLS, authentication, authorisation`

/** The command tree: `verify`, `produce`, `dlt`. */
export const cli = Command.make("effect-kafka-publisher").pipe(
  Command.withDescription(rootHelp),
  Command.withSubcommands([verify, produce, dlt])
)

// ---------------------------------------------------------------------------------------------------------
// Errors: one line, an exit code

interface Problem {
  /** What is wrong and what to do; empty when the command printed it already. */
  readonly line: string
  readonly code: number
}

const hints: Partial<Record<TopicReader.ReadFailedReason, string>> = {
  Unreachable: "check --brokers or KAFKA_BROKERS (and KAFKA_SSL) and that the brokers are up",
  AuthenticationFailed: "check KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
  NotAuthorized: "the user needs ACLs for the topic (and, to read it, for consumer groups)",
  UnknownTopic: "check the topic's name",
  Incomplete: "the brokers did not deliver the whole topic in time; try again"
}

const readFailedCodes: Record<TopicReader.ReadFailedReason, number> = {
  ClientMissing: ExitCode.usage,
  Unreachable: ExitCode.unreachable,
  AuthenticationFailed: ExitCode.unreachable,
  NotAuthorized: ExitCode.unreachable,
  UnknownTopic: ExitCode.checkFailed,
  Incomplete: ExitCode.checkFailed,
  Failed: ExitCode.checkFailed
}

/** A publish failure's reason in the reader's terms, for its exit code and hint. */
const publishReason = (error: PublishError): TopicReader.ReadFailedReason => {
  switch (error.reason) {
    case "BrokerUnavailable":
      return "Unreachable"
    case "AuthenticationFailed":
      return "AuthenticationFailed"
    case "TopicAuthorizationFailed":
    case "ClusterAuthorizationFailed":
      return "NotAuthorized"
    default:
      return "Failed"
  }
}

const withHint = (message: string, reason: TopicReader.ReadFailedReason) => {
  const hint = hints[reason]
  return hint === undefined ? message : `${message}; ${hint}`
}

/** "KAFKA_BROKERS: 'not-a-host' is not host:port", for each bad variable. */
const configProblem = (error: Config.ConfigError): string => {
  const cause = error.cause
  if (cause._tag !== "SchemaError") return cause.message
  const issues = SchemaIssue.makeFormatterStandardSchemaV1()(cause.issue).issues
  return issues.map((issue) => `${(issue.path ?? []).join(".")}: ${issue.message}`).join("; ")
}

const problemOf = (error: unknown): Problem => {
  if (error instanceof Reported) return { line: "", code: error.code }
  if (error instanceof Usage) return { line: error.message, code: ExitCode.usage }
  if (error instanceof Config.ConfigError) return { line: configProblem(error), code: ExitCode.usage }
  if (error instanceof TopicReader.ReadFailed) {
    return { line: withHint(error.message, error.reason), code: readFailedCodes[error.reason] }
  }
  const tag = (error as { _tag?: unknown } | null)?._tag
  if (tag === "Retriable" || tag === "Fatal") {
    const publishError = error as PublishError
    const reason = publishReason(publishError)
    const line = `${publishError._tag} ${publishError.reason}: ${publishError.message}`
    return { line: withHint(line, reason), code: readFailedCodes[reason] }
  }
  return { line: `unexpected failure: ${String(error)}`, code: ExitCode.checkFailed }
}

const oneLine = (line: string) => line.replace(/\s*\n\s*/g, " ")

/**
 * Reports a command's failure: one line on stderr (the cause too at --log-level debug), then fails with
 * `Reported` so the process exits with the failure's code.
 */
function explained<A, E, R>(command: Effect.Effect<A, E, R>): Effect.Effect<A, Reported, R> {
  return Effect.catchCause(command, (cause) =>
    Effect.gen(function* () {
      if (Cause.hasInterruptsOnly(cause)) return yield* Effect.failCause(cause as Cause.Cause<never>)
      const reason = cause.reasons[0]
      const problem = problemOf(reason?._tag === "Fail" ? reason.error : reason?._tag === "Die" ? reason.defect : cause)
      if (problem.line !== "") {
        yield* Console.error(`error: ${oneLine(problem.line)}`)
        if (yield* LogLevel.isEnabled("Debug")) yield* Console.error(Cause.pretty(cause))
      }
      return yield* new Reported({ code: problem.code })
    })
  )
}

const suggestions = (error: CliError.NonShowHelpErrors): string => {
  const list = (error as { suggestions?: ReadonlyArray<string> }).suggestions ?? []
  return list.length === 0 ? "" : ` (did you mean ${list.join(" or ")}?)`
}

/** Parse errors as one line, pointing to --help, instead of the whole help text. */
const presenter: CliOutput.Presenter = {
  present: (event) =>
    event._tag === "InvalidInvocation"
      ? Console.error(
          `error: ${event.errors.map((e) => oneLine(e.message.split("\n\n")[0]!) + suggestions(e)).join("; ")}; see '${event.commandPath.join(" ")} --help'`
        )
      : CliOutput.defaultPresenter.present(event)
}

/** The exit code of a finished run. */
const exitCode = (error: unknown): number =>
  error instanceof Reported ? error.code : CliError.isCliError(error) ? ExitCode.usage : ExitCode.checkFailed

if (import.meta.main) {
  const main = Command.run(cli, { version: "0.1.0" }).pipe(
    Effect.as(ExitCode.ok as number),
    Effect.catch((error) => Effect.succeed(exitCode(error))),
    // the library's own logs only on request (--log-level, which overrides this): a failure is explained once
    Effect.provideService(References.MinimumLogLevel, "None"),
    Effect.provide(Layer.merge(NodeServices.layer, CliOutput.layerPresenter(presenter)))
  )
  NodeRuntime.runMain(main, {
    disableErrorReporting: true,
    teardown: (exit, onExit) =>
      Exit.isSuccess(exit) ? onExit(exit.value as number) : Runtime.defaultTeardown(exit, onExit)
  })
}
