/**
 * Runs an ES module `script` in a fresh Node process (package imports resolved to the sources) under the
 * module load hook of `recordModuleLoads.ts`, and returns every module that process resolved: its URL and
 * the first module seen importing it.
 */
import { execFile } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { promisify } from "node:util"

const run = promisify(execFile)

export interface ModuleLoad {
  readonly url: string
  readonly parent?: string | undefined
}

export const moduleLoadsOf = async (
  script: string,
  env: Record<string, string | undefined> = process.env
): Promise<Array<ModuleLoad>> => {
  const dir = mkdtempSync(path.join(tmpdir(), "module-loads-"))
  try {
    const file = path.join(dir, "loads.jsonl")
    const hook = path.resolve("test/support/recordModuleLoads.ts")
    const flags = ["--conditions=effect-kafka-publisher-source", "--import", hook, "--input-type=module"]
    await run(process.execPath, [...flags, "--eval", script], { env: { ...env, RECORD_MODULE_LOADS: file } })
    return readFileSync(file, "utf8")
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as ModuleLoad)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The URL of every module `script` resolved. */
export const modulesLoadedBy = async (
  script: string,
  env: Record<string, string | undefined> = process.env
): Promise<Array<string>> => (await moduleLoadsOf(script, env)).map((load) => load.url)
