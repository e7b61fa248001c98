/**
 * A module resolve hook for a child process (`node --import ./test/support/hidePackages.ts ...`): the
 * packages named in `HIDE_PACKAGES` (comma-separated) fail to resolve, by `import` and by `require`, as
 * they do when not installed, so a test sees what an app without them sees.
 */
import { registerHooks } from "node:module"

const hidden = new Set((process.env.HIDE_PACKAGES ?? "").split(",").filter((name) => name !== ""))

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (hidden.has(specifier)) {
      throw Object.assign(new Error(`Cannot find package '${specifier}' imported from ${context.parentURL}`), {
        code: "ERR_MODULE_NOT_FOUND"
      })
    }
    return nextResolve(specifier, context)
  }
})
