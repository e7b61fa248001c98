/**
 * Runs an ES module `script` in a fresh Node process (package imports resolved to the sources) in which the
 * named packages are not installed, as far as the process can tell (the resolve hook of `hidePackages.ts`).
 */
import { spawnSync } from "node:child_process"
import path from "node:path"

export const runWithout = (hidden: ReadonlyArray<string>, script: string) =>
  spawnSync(
    process.execPath,
    [
      "--conditions=effect-kafka-publisher-source",
      "--import",
      path.resolve("test/support/hidePackages.ts"),
      "--input-type=module",
      "--eval",
      script
    ],
    { encoding: "utf8", env: { ...process.env, HIDE_PACKAGES: hidden.join(",") } }
  )
