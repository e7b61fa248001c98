import { defineConfig } from "vitest/config"

export default defineConfig({
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
