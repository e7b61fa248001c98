// Vitest global setup of the "integration" project: ONE single-node broker for the whole run, handed to the tests
// with provide("kafkaTestbed", ...) and read with test/integration/broker.ts. Runs once, in the main vitest process.
//
// Without java (or without mvn and cached jars) the integration tests are skipped with a loud message, except under
// CI=true, where that fails the run: a CI job that silently skips its broker tests would prove nothing.
import type { TestProject } from "vitest/node"
import {
  type KafkaCluster,
  kafkaVersionFromEnv,
  reapStaleClusters,
  startCluster,
  toolchainProblem
} from "./KafkaCluster.ts"
import type { KafkaVersion } from "./layout.ts"

/** What the integration tests get from inject("kafkaTestbed"). */
export type KafkaTestbed =
  | { readonly available: true; readonly version: KafkaVersion; readonly bootstrap: string; readonly dir: string }
  | { readonly available: false; readonly version: KafkaVersion; readonly reason: string }

declare module "vitest" {
  export interface ProvidedContext {
    kafkaTestbed: KafkaTestbed
  }
}

const shout = (lines: ReadonlyArray<string>): void => {
  const bar = "=".repeat(100)
  console.warn(`\n${bar}\n${lines.map((line) => `  ${line}`).join("\n")}\n${bar}\n`)
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const version = kafkaVersionFromEnv()
  const problem = toolchainProblem(version)
  if (problem !== undefined) {
    if (process.env.CI === "true") throw new Error(`CI=true and the Kafka test bed cannot run: ${problem}`)
    shout([
      `KAFKA INTEGRATION TESTS SKIPPED: ${problem}.`,
      "They need Java 17 and Maven (or jars cached in .kafka/), see testbed/README.md.",
      "Under CI=true this fails the run instead."
    ])
    project.provide("kafkaTestbed", { available: false, version, reason: problem })
    return async () => undefined
  }

  const killed = await reapStaleClusters()
  if (killed.length > 0) console.warn(`kafka testbed: killed ${killed.length} broker JVM(s) left by a crashed run`)

  const cluster: KafkaCluster = await startCluster({ version, nodes: 1 })
  console.info(
    `kafka testbed: Kafka ${version} at ${cluster.bootstrap} (ready in ${cluster.startupMs} ms, ${cluster.dir})`
  )
  project.provide("kafkaTestbed", { available: true, version, bootstrap: cluster.bootstrap, dir: cluster.dir })

  return async () => {
    await cluster.stop()
    // clusters started by test files whose worker died without stopping them
    await reapStaleClusters()
  }
}
