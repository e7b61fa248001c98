/**
 * A module load hook for a child process (`node --import ./test/support/recordModuleLoads.ts ...`): records
 * the URL of every module the process resolves (ESM imports and CommonJS requires alike, through
 * `module.registerHooks`) and, on exit, writes them as JSON lines `{ url, parent }` to the file named by
 * `RECORD_MODULE_LOADS` (`parent`: the first module seen importing it).
 */
import { appendFileSync } from "node:fs"
import { registerHooks } from "node:module"

const out = process.env.RECORD_MODULE_LOADS
if (out === undefined) throw new Error("recordModuleLoads: set RECORD_MODULE_LOADS to the file to write")

const parents = new Map<string, string | undefined>()
registerHooks({
  resolve(specifier, context, nextResolve) {
    const resolved = nextResolve(specifier, context)
    if (!parents.has(resolved.url)) parents.set(resolved.url, context.parentURL)
    return resolved
  }
})
process.on("exit", () => {
  appendFileSync(out, [...parents].map(([url, parent]) => `${JSON.stringify({ url, parent })}\n`).join(""))
})
