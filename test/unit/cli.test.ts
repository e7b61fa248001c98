// The command line as a user runs it (a Node process from source), for the failures that need no broker: each
// prints one line saying what is wrong and what to do, and exits with the documented code (2 bad usage or
// configuration, 3 cluster unreachable); stack traces only with --log-level debug; no secret in any output.
import { assert, describe, it } from "@effect/vitest"
import { freePort } from "../support/freePort.ts"
import { type CliRun, runCli } from "../support/runCli.ts"

const password = "Pa55word-that-must-not-leak"

/** The run printed exactly this one line on stderr, nothing on stdout, and exited with `code`. */
const oneLine = (run: CliRun, code: number, line: string | RegExp) => {
  assert.strictEqual(run.code, code, `${run.stdout}\n${run.stderr}`)
  const lines = run.stderr.trimEnd().split("\n")
  assert.strictEqual(lines.length, 1, run.stderr)
  if (typeof line === "string") assert.strictEqual(lines[0], line)
  else assert.match(lines[0]!, line)
}

const refusedBroker = async () => `127.0.0.1:${await freePort()}`

describe("CLI", { timeout: 60_000 }, () => {
  describe("bad configuration: exit 2, at once", () => {
    it("KAFKA_BROKERS=not-a-host names the bad entry", async () => {
      const run = await runCli(["verify", "--topic", "orders"], { KAFKA_BROKERS: "not-a-host" })
      oneLine(run, 2, "error: KAFKA_BROKERS: 'not-a-host' is not host:port")
      assert.strictEqual(run.stdout, "")
      assert.isBelow(run.elapsedMs, 7_000, "no connection attempt (it took 7 s + node's start)")
    })

    it("one bad entry among good ones is named", async () => {
      const run = await runCli(["dlt", "--topic", "orders"], { KAFKA_BROKERS: "kafka-1:9092,kafka-2" })
      oneLine(run, 2, "error: KAFKA_BROKERS: 'kafka-2' is not host:port")
    })

    for (const [what, env] of [
      ["empty", { KAFKA_BROKERS: "" }],
      ["unset", {}]
    ] as const) {
      it(`an ${what} KAFKA_BROKERS says it is empty and what to set`, async () => {
        const run = await runCli(["verify", "--topic", "orders"], env)
        oneLine(
          run,
          2,
          "error: KAFKA_BROKERS: empty or not set; set it to host:port[,host:port...], e.g. localhost:9092"
        )
      })
    }

    it("a bad --brokers is parsed as KAFKA_BROKERS is", async () => {
      const run = await runCli(["produce", "--topic", "t", "--value", "v", "--brokers", "a:1,b"])
      oneLine(run, 2, "error: --brokers: 'b' is not host:port")
    })

    it("a bad SASL mechanism names the variable and never shows the password", async () => {
      const run = await runCli(["verify", "--topic", "t", "--log-level", "debug"], {
        KAFKA_BROKERS: "localhost:9092",
        KAFKA_SASL_MECHANISM: "gssapi",
        KAFKA_SASL_USERNAME: "u",
        KAFKA_SASL_PASSWORD: password
      })
      assert.strictEqual(run.code, 2, run.stderr)
      assert.match(run.stderr, /^error: KAFKA_SASL_MECHANISM: /)
      assert.notInclude(`${run.stdout}${run.stderr}`, password)
    })
  })

  describe("bad usage: exit 2, one line pointing to --help", () => {
    it("an unknown flag suggests the right one", async () => {
      const run = await runCli(["verify", "--topik", "orders"], { KAFKA_BROKERS: "localhost:9092" })
      oneLine(
        run,
        2,
        "error: Unrecognized flag: --topik in command effect-kafka-publisher verify (did you mean --topic?); see 'effect-kafka-publisher verify --help'"
      )
      assert.strictEqual(run.stdout, "", "no help dump")
    })

    it("a missing required flag", async () => {
      const run = await runCli(["produce", "--topic", "orders"])
      oneLine(run, 2, "error: Missing required flag: --value; see 'effect-kafka-publisher produce --help'")
    })

    it("an unknown command", async () => {
      const run = await runCli(["publish"])
      oneLine(
        run,
        2,
        /^error: Unknown subcommand "publish" for "effect-kafka-publisher".*; see 'effect-kafka-publisher --help'$/
      )
    })

    it("--help exits 0 and documents the exit codes", async () => {
      const run = await runCli(["--help"])
      assert.strictEqual(run.code, 0, run.stderr)
      for (const line of [
        /^ +Exit codes:$/m,
        /^ +0 {2}ok$/m,
        /^ +1 {2}check failed: /m,
        /^ +2 {2}bad usage or configuration: /m,
        /^ +3 {2}cluster unreachable or refused: /m
      ]) {
        assert.match(run.stdout, line)
      }
    })
  })

  describe("a refused connection: exit 3 at once", () => {
    for (const command of [
      ["verify", "--topic", "orders"],
      ["dlt", "--topic", "orders"],
      ["produce", "--topic", "orders", "--value", "v"]
    ]) {
      it(`${command[0]}: one line naming the broker, no stack trace`, async () => {
        const broker = await refusedBroker()
        const run = await runCli(command, { KAFKA_BROKERS: broker })
        assert.strictEqual(run.code, 3, `${run.stdout}\n${run.stderr}`)
        const errors = run.stderr.split("\n").filter((line) => line.startsWith("error: "))
        assert.deepStrictEqual(
          errors,
          [
            `error: cannot connect to ${broker}: Connection error: connect ECONNREFUSED ${broker}; check --brokers or KAFKA_BROKERS (and KAFKA_SSL) and that the brokers are up`
          ],
          run.stderr
        )
        assert.notMatch(run.stderr, /^\s+at /m, "no stack trace")
        // kafkajs's default retries alone wait over 7 s (it took 13 s); node itself starts in 1-4 s on a loaded machine
        assert.isBelow(run.elapsedMs, 7_000, "no client retries on the first contact")
      })
    }

    it("--brokers wins over KAFKA_BROKERS", async () => {
      const broker = await refusedBroker()
      const run = await runCli(["verify", "--topic", "orders", "--brokers", broker], { KAFKA_BROKERS: "not-a-host" })
      assert.strictEqual(run.code, 3, run.stderr)
      assert.include(run.stderr, `cannot connect to ${broker}`)
    })

    it("--log-level debug adds the stack trace; the SASL password appears in no output", async () => {
      const broker = await refusedBroker()
      const env = {
        KAFKA_BROKERS: broker,
        KAFKA_SASL_MECHANISM: "plain",
        KAFKA_SASL_USERNAME: "admin",
        KAFKA_SASL_PASSWORD: password
      }
      const quiet = await runCli(["verify", "--topic", "orders"], env)
      const debug = await runCli(["verify", "--topic", "orders", "--log-level", "debug"], env)
      assert.strictEqual(quiet.code, 3, quiet.stderr)
      assert.strictEqual(debug.code, 3, debug.stderr)
      assert.notMatch(quiet.stderr, /^\s+at /m)
      assert.match(debug.stderr, /^\s+at /m, "the details, with --log-level debug")
      for (const run of [quiet, debug]) assert.notInclude(`${run.stdout}${run.stderr}`, password)
    })
  })

  describe("--isolation (issue 15)", () => {
    it("a bad value is bad usage: exit 2, one line naming the accepted values, before any connection", async () => {
      const run = await runCli(["verify", "--topic", "orders", "--isolation", "committed"], {
        KAFKA_BROKERS: await refusedBroker()
      })
      oneLine(
        run,
        2,
        `error: Invalid value for flag --isolation: "committed". Expected: "read_committed" | "read_uncommitted"; see 'effect-kafka-publisher verify --help'`
      )
    })

    for (const command of [
      ["verify", "--topic", "orders"],
      ["dlt", "--topic", "orders"],
      ["dlt", "replay", "--topic", "orders.dlt"]
    ]) {
      for (const isolation of ["read_committed", "read_uncommitted"]) {
        it(`${command.slice(0, -2).join(" ")} --isolation ${isolation} parses, then needs the cluster (exit 3)`, async () => {
          const broker = await refusedBroker()
          const run = await runCli([...command, "--isolation", isolation], { KAFKA_BROKERS: broker })
          oneLine(run, 3, new RegExp(`^error: cannot connect to ${broker}`))
        })
      }
    }

    it("verify --help documents it", async () => {
      const run = await runCli(["verify", "--help"])
      assert.strictEqual(run.code, 0, run.stderr)
      assert.match(run.stdout, /--isolation/)
      assert.match(run.stdout, /read_uncommitted/)
    })
  })

  describe("dlt replay (issue 16)", () => {
    it("a --where without '=' is bad usage: exit 2 before any connection", async () => {
      const run = await runCli(["dlt", "replay", "--topic", "orders.dlt", "--where", "errorType"], {
        KAFKA_BROKERS: await refusedBroker()
      })
      oneLine(run, 2, "error: --where errorType: expected header=value or header=prefix*")
    })

    it("parses its flags (several --where, --max, --max-redrives, --dry-run, --json), then needs the cluster", async () => {
      const broker = await refusedBroker()
      const run = await runCli(
        [
          "dlt",
          "replay",
          "--topic",
          "orders.dlt",
          "--to",
          "orders",
          "--where",
          "errorType=Fatal.*",
          "--where",
          "a=b"
        ].concat(["--max", "5", "--max-redrives", "2", "--dry-run", "--json", "--progress-interval", "1"]),
        { KAFKA_BROKERS: broker }
      )
      oneLine(run, 3, new RegExp(`^error: cannot connect to ${broker}`))
      assert.strictEqual(run.stdout, "", "--json: nothing but the document on stdout")
    })
  })
})
