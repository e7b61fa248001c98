// kcat, a Kafka reader nobody here wrote: counts of a topic's records at an isolation level, to check what the
// project's own reader (TopicReader) says. Tests that use it skip without kcat, and fail under CI=true.
import { execFile } from "node:child_process"
import { promisify } from "node:util"
import { assert } from "@effect/vitest"
import { Effect } from "effect"

const run = promisify(execFile)

/** kcat's lines for a topic's records (`format`, e.g. `%o` offset, `%k` key) at an isolation level, from the
 * beginning to the end it sees. */
export const kcatLines = async (
  brokers: ReadonlyArray<string>,
  topic: string,
  isolation: "read_committed" | "read_uncommitted",
  format: string
): Promise<Array<string>> => {
  const args = ["-C", "-b", brokers.join(","), "-t", topic, "-X", `isolation.level=${isolation}`]
  const { stdout } = await run("kcat", [...args, "-o", "beginning", "-e", "-q", "-f", `${format}\\n`], {
    maxBuffer: 64 * 1024 * 1024
  })
  return stdout.split("\n").filter((line) => line.length > 0)
}

/** kcat's count of a topic's records at an isolation level, from the beginning to the end it sees. */
export const kcatCount = async (
  brokers: ReadonlyArray<string>,
  topic: string,
  isolation: "read_committed" | "read_uncommitted"
): Promise<number> => (await kcatLines(brokers, topic, isolation, "%o")).length

/** Why kcat cannot run (not installed), or undefined when it can. */
export const kcatMissing = async (): Promise<string | undefined> => {
  try {
    await run("kcat", ["-V"])
    return undefined
  } catch {
    return "kcat is not installed (Debian package kcat)"
  }
}

/** Whether kcat can run: false (with a warning) when it is missing locally; the test fails under CI=true. */
export const kcatAvailable: Effect.Effect<boolean> = Effect.gen(function* () {
  const missing = yield* Effect.promise(kcatMissing)
  if (missing === undefined) return true
  if (process.env.CI === "true") assert.fail(missing)
  console.warn(`skipped: ${missing}`)
  return false
})
