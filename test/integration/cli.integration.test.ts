// The command line against a SASL/SCRAM cluster, run as a user runs it: every command (produce, verify, dlt)
// takes the same KAFKA_* settings, SASL included (issue 18.8: verify and dlt ignored them). A wrong password
// or a user without ACLs fails at once with one line and exit code 3; the password appears in no output, even
// with --log-level debug. On the run's shared broker: verify --isolation over one committed and one aborted
// transaction (issue 15.6).
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { PlatformaticProducer } from "effect-kafka-publisher/platformatic"
import { runCli } from "../support/runCli.ts"
import { bootstrapServers, describeWithKafka } from "./broker.ts"
import { ownCluster, scramUsers } from "./ownCluster.ts"
import { createTopic } from "./realHarness.ts"

const wrongPassword = "wrong-Pa55word-that-must-not-leak"

describeWithKafka("CLI on a SASL/SCRAM cluster", () => {
  const cluster = ownCluster({ sasl: scramUsers })
  const settings = (username: string, password: string) => ({
    KAFKA_BROKERS: cluster().saslBrokers!.join(","),
    KAFKA_SASL_MECHANISM: "scram-sha-512",
    KAFKA_SASL_USERNAME: username,
    KAFKA_SASL_PASSWORD: password
  })

  it("produce, verify and dlt reach the cluster with KAFKA_SASL_* (issue 18.8)", async () => {
    const topic = `cli-sasl-${Date.now()}`
    await Effect.runPromise(createTopic(cluster().brokers, topic, { partitions: 2 }))
    await Effect.runPromise(createTopic(cluster().brokers, `${topic}.dlt`, { partitions: 1 }))
    const admin = settings("admin", "admin-secret")

    for (const key of ["order-1", "order-2"]) {
      const produce = await runCli(["produce", "--topic", topic, "--key", key, "--value", `{"id":"${key}"}`], admin)
      assert.strictEqual(produce.code, 0, produce.stderr)
      assert.match(produce.stdout, new RegExp(`^delivered ${topic} partition \\d offset 0$`, "m"))
    }
    const deadLetter = await runCli(
      ["produce", "--topic", `${topic}.dlt`, "--key", "order-3", "--value", "x", "--header", "errorType=Fatal.Test"],
      admin
    )
    assert.strictEqual(deadLetter.code, 0, deadLetter.stderr)

    const verify = await runCli(["verify", "--topic", topic, "--expect", "2"], admin)
    assert.strictEqual(verify.code, 0, `${verify.stdout}\n${verify.stderr}`)
    assert.match(verify.stdout, /^count 2 \(expected 2\), duplicates 0, gaps 0$/m)
    assert.match(verify.stdout, /^OK$/m)

    const dlt = await runCli(["dlt", "--topic", topic], admin)
    assert.strictEqual(dlt.code, 0, `${dlt.stdout}\n${dlt.stderr}`)
    assert.match(dlt.stdout, new RegExp(`^${topic}\\.dlt partition 0 offset 0 key order-3$`, "m"))
    assert.match(dlt.stdout, /^ {2}errorType: Fatal\.Test$/m)
    assert.match(dlt.stdout, /^1 dead-lettered record\(s\) in /m)
  })

  it("produce of a record the topic refuses: dead-lettered, exit 1, the receipt printed", async () => {
    const topic = `cli-small-${Date.now()}`
    await Effect.runPromise(createTopic(cluster().brokers, topic, { partitions: 1, maxMessageBytes: 1_000 }))
    const run = await runCli(
      ["produce", "--topic", topic, "--value", "x".repeat(5_000)],
      settings("admin", "admin-secret")
    )
    assert.strictEqual(run.code, 1, `${run.stdout}\n${run.stderr}`)
    assert.match(
      run.stdout,
      new RegExp(`^dead-lettered to ${topic}\\.dlt partition 0 offset 0: Fatal\\.RecordTooLarge `, "m")
    )
    assert.strictEqual(run.stdout.trim().split("\n").length, 1, "the receipt only: library logs need --log-level")
    console.log(`produce too large -> exit ${run.code}: ${run.stdout.trim()}`)
  })

  it("a topic that does not exist: verify fails (exit 1) saying so, dlt lists no dead letters", async () => {
    const topic = `cli-never-created-${Date.now()}`
    const admin = settings("admin", "admin-secret")
    const verify = await runCli(["verify", "--topic", topic], admin)
    assert.strictEqual(verify.code, 1, `${verify.stdout}\n${verify.stderr}`)
    assert.match(verify.stderr, new RegExp(`^error: topic '${topic}' does not exist; check the topic's name$`, "m"))
    const dlt = await runCli(["dlt", "--topic", topic], admin)
    assert.strictEqual(dlt.code, 0, `${dlt.stdout}\n${dlt.stderr}`)
    assert.strictEqual(dlt.stdout, `0 dead-lettered record(s) in ${topic}.dlt\n`)
    assert.isBelow(verify.elapsedMs + dlt.elapsedMs, 10_000, "an unknown topic is not retried for long")
  })

  describe("a wrong password", () => {
    for (const command of [
      ["verify", "--topic", "anything"],
      ["dlt", "--topic", "anything"],
      ["produce", "--topic", "anything", "--value", "x"]
    ]) {
      for (const debug of [false, true]) {
        const args = debug ? [...command, "--log-level", "debug"] : command
        it(`${args.join(" ")}: exit 3 at once, one line, the password never printed`, async () => {
          const run = await runCli(args, settings("admin", wrongPassword))
          assert.strictEqual(run.code, 3, `${run.stdout}\n${run.stderr}`)
          assert.isBelow(run.elapsedMs, 10_000, "no retry storm")
          assert.notInclude(`${run.stdout}${run.stderr}`, wrongPassword)
          const errors = run.stderr.split("\n").filter((line) => line.startsWith("error: "))
          assert.strictEqual(errors.length, 1, run.stderr)
          assert.match(errors[0]!, /authentication failed/i)
          if (!debug) assert.strictEqual(run.stderr.trim().split("\n").at(-1), errors[0], "no stack trace")
          console.log(`${args.join(" ")} -> exit ${run.code} in ${run.elapsedMs} ms: ${errors[0]}`)
        })
      }
    }
  })

  it("a user without ACLs: verify exits 3 saying it is not authorised", async () => {
    const run = await runCli(["verify", "--topic", "anything"], settings("alice", "alice-secret"))
    assert.strictEqual(run.code, 3, `${run.stdout}\n${run.stderr}`)
    assert.match(run.stderr, /^error: .*not authori[sz]ed/im)
    assert.notInclude(`${run.stdout}${run.stderr}`, "alice-secret")
    console.log(`alice: verify -> exit ${run.code}: ${run.stderr.trim()}`)
  })
})

describeWithKafka("CLI verify --isolation on a transactional topic (issue 15.6)", () => {
  it.live(
    "read_committed counts the committed transactions, read_uncommitted the aborted one too; markers are no gaps",
    () =>
      Effect.gen(function* () {
        const brokers = bootstrapServers()
        const topic = `cli-isolation-${Date.now()}`
        yield* createTopic(brokers, topic, { partitions: 1 })
        const producer = yield* PlatformaticProducer.makeTransactional({ brokers, transactionalId: `${topic}-txn` })
        const records = (ids: ReadonlyArray<string>) =>
          ids.map((id) => ({ topic, key: null, value: new TextEncoder().encode(id), headers: { eventId: id } }))
        const committed = yield* producer.begin
        yield* committed.send(records(["c1", "c2"]))
        yield* committed.commit
        const aborted = yield* producer.begin
        yield* aborted.send(records(["a1", "a2", "a3"]))
        yield* aborted.abort
        const after = yield* producer.begin
        yield* after.send(records(["c3", "c4"]))
        yield* after.commit
        const env = { KAFKA_BROKERS: brokers.join(",") }
        const verify = (isolation: string) =>
          Effect.promise(() => runCli(["verify", "--topic", topic, "--isolation", isolation, "--json"], env))

        // offsets 0-1 committed, 2 its marker, 3-5 aborted, 6 the abort marker, 7-8 committed, 9 its marker:
        // the markers and the aborted records are reported as skipped, not as gaps
        const readCommitted = yield* verify("read_committed")
        assert.strictEqual(readCommitted.code, 0, `${readCommitted.stdout}\n${readCommitted.stderr}`)
        assert.include(JSON.parse(readCommitted.stdout), { count: 4, duplicates: 0, ok: true })
        const readUncommitted = yield* verify("read_uncommitted")
        assert.strictEqual(readUncommitted.code, 0, `${readUncommitted.stdout}\n${readUncommitted.stderr}`)
        const report = JSON.parse(readUncommitted.stdout) as { count: number; gaps: ReadonlyArray<unknown> }
        assert.strictEqual(report.count, 7)
        assert.deepStrictEqual(report.gaps, [])
        const byDefault = yield* Effect.promise(() => runCli(["verify", "--topic", topic, "--expect", "4"], env))
        assert.strictEqual(byDefault.code, 0, `the default is read_committed: ${byDefault.stdout}`)
        console.log(`verify --isolation: read_committed 4, read_uncommitted ${report.count} records, no gaps`)
      }).pipe(Effect.scoped),
    60_000
  )
})
