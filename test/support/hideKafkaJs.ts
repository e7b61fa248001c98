/**
 * A module resolve hook for a child process (`node --import ./test/support/hideKafkaJs.ts ...`): resolving
 * `kafkajs` fails as it does when the package is not installed, so a test sees what a user without it sees.
 */
import { registerHooks } from "node:module"

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (specifier === "kafkajs") {
      throw Object.assign(new Error(`Cannot find package 'kafkajs' imported from ${context.parentURL}`), {
        code: "ERR_MODULE_NOT_FOUND"
      })
    }
    return nextResolve(specifier, context)
  }
})
