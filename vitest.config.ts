import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/globalSetup.ts"],
    // Real DynamoDB Local round trips (and JVM start-ups in a few tests) are slow on CI machines.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
    // Child processes (the JVMs) are more robustly owned and cleaned up from forked workers.
    pool: "forks"
  }
})
