/** Runs the command line as its own Node process, the way a user would, and collects its output. */
import { spawn } from "node:child_process"
import path from "node:path"

/** What one run of the CLI printed and how it exited. */
export interface CliRun {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly elapsedMs: number
}

const cliFile = path.resolve(import.meta.dirname, "../../src/bin/cli.ts")

/**
 * Runs `effect-kafka-publisher <args>` from source with `env` on top of a clean environment: the caller's PATH
 * and HOME only, so no KAFKA_* variable of the machine leaks in.
 */
export const runCli = (args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<CliRun> =>
  new Promise((resolve, reject) => {
    const started = Date.now()
    const child = spawn(
      process.execPath,
      ["--disable-warning=TimeoutNegativeWarning", "--conditions=effect-kafka-publisher-source", cliFile, ...args],
      {
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", NO_COLOR: "1", ...env },
        stdio: ["ignore", "pipe", "pipe"]
      }
    )
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => {
      stdout += chunk
    })
    child.stderr.on("data", (chunk) => {
      stderr += chunk
    })
    child.once("error", reject)
    child.once("close", (code) => resolve({ code, stdout, stderr, elapsedMs: Date.now() - started }))
  })
