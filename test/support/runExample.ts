/** Runs an example as its own Node process, the way a user would, and collects its output. */
import { type ChildProcess, spawn } from "node:child_process"
import path from "node:path"

export interface Run {
  readonly child: ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  readonly exit: Promise<number | null>
}

export const startExample = (file: string, env: Record<string, string | undefined> = {}): Run => {
  const child = spawn(
    process.execPath,
    ["--disable-warning=TimeoutNegativeWarning", "--conditions=effect-kafka-publisher-source", path.resolve(file)],
    {
      env: { ...process.env, ...env, FORCE_COLOR: "0", NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"]
    }
  )
  let out = ""
  let err = ""
  child.stdout!.on("data", (chunk) => {
    out += chunk
  })
  child.stderr!.on("data", (chunk) => {
    err += chunk
  })
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  return { child, stdout: () => out, stderr: () => err, exit }
}

export const runExample = async (file: string, env: Record<string, string | undefined> = {}) => {
  const run = startExample(file, env)
  const code = await run.exit
  return { code, stdout: run.stdout(), stderr: run.stderr() }
}

/** Resolves once `predicate` holds for the output so far (polling), or rejects after `timeoutMs`. */
export const waitForOutput = async (
  run: Run,
  predicate: (stdout: string, stderr: string) => boolean,
  timeoutMs = 30_000
) => {
  const deadline = Date.now() + timeoutMs
  while (!predicate(run.stdout(), run.stderr())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for output:\n${run.stdout()}\n${run.stderr()}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
