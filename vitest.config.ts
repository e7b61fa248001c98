import { defineConfig } from "vitest/config"

// Tests and examples import the package by its own name ("effect-kafka-publisher/kafkajs", as users do); this
// condition of package.json's `exports` points those imports at the sources instead of the build.
const sourceCondition = "effect-kafka-publisher-source"

export default defineConfig({
  resolve: { conditions: [sourceCondition] },
  ssr: { resolve: { conditions: [sourceCondition], externalConditions: [sourceCondition] } },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"]
        }
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          // one broker for the whole run, started once; see testbed/vitest-global-setup.ts
          globalSetup: ["testbed/vitest-global-setup.ts"],
          // brokers start in seconds, a failover takes a broker session timeout or more
          testTimeout: 120_000,
          hookTimeout: 240_000,
          // 2 cores: a file that starts its own cluster must not compete with another one
          fileParallelism: false,
          // each test file in its own process: the clusters it starts are killed if that process dies
          pool: "forks"
        }
      }
    ]
  }
})
