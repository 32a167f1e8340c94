import * as os from "node:os"
import * as path from "node:path"
import { defineConfig } from "vitest/config"

// Tests start a few hundred Node processes (the CLI, workers, chaos children), each compiling the same sources: a
// shared V8 compile cache takes about a quarter off each start. Node checks every entry against its source.
process.env["NODE_COMPILE_CACHE"] ??= path.join(os.tmpdir(), "dynastate-node-compile-cache")

/**
 * Tests that need no DynamoDB: the domain, crypto, the linearizability checker, the in-memory store, scripted
 * streams. They start no JVM (`npm run test:unit`). Everything else runs against the DynamoDB Locals that
 * the integration project's global setup starts (`npm run test:integration`). `npm test` runs both; the long
 * project (`test/long`, `npm run test:long`) holds runs too long for every CI build.
 */
const unit = [
  "test/domain/**/*.test.ts",
  "test/config/**/*.test.ts",
  "test/crypto/{KmsKeyring,MultiKeyring,RawAesKeyring,KeySealer,SigningHash}.test.ts",
  "test/infra/{Dynamo,DynamoDBLocalDistribution,SortedMerge,EventPage,QueryPages,HotSpan}.test.ts",
  "test/store/MigratingTable.test.ts",
  "test/ops/{NamespacePolicy,AuditFindings}.test.ts",
  "test/app/cliPolicy.test.ts",
  "test/app/WorkerLive.test.ts",
  "test/properties/linearizability/Checker*.test.ts",
  "test/streams/{ShardLineage,StreamReader,WatchRpc}.test.ts",
  "test/store/contract/memory.test.ts",
  "test/store/memory/**/*.test.ts",
  "test/store/SealedFallback.test.ts",
  "test/properties/model/storeModel.memory.test.ts",
  "test/bench/**/*.test.ts",
  "test/*.test.ts"
]

export default defineConfig({
  test: {
    // Real DynamoDB Local round trips (and JVM start-ups in a few tests) are slow on CI machines.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
    // Child processes (the JVMs) are more robustly owned and cleaned up from forked workers.
    pool: "forks",
    // Vitest's default is one worker fewer than the cores: one on a two-core CI machine, which then ran the files one
    // by one with a core mostly idle (they wait on DynamoDB Local, child processes and timers). Two at a time took a
    // full `npm test` from 1,008 s to 637 s on two cores, and every test still passed.
    maxWorkers: Math.max(2, os.availableParallelism() - 1),
    projects: [
      { extends: true, test: { name: "unit", include: unit } },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/**/*.test.ts"],
          exclude: [...unit, "test/long/**"],
          globalSetup: ["test/globalSetup.ts"]
        }
      },
      // Runs kept out of `npm test` (CI stays under 20 minutes on two cores): `npm run test:long`.
      {
        extends: true,
        test: { name: "long", include: ["test/long/**/*.test.ts"], globalSetup: ["test/globalSetup.ts"] }
      }
    ]
  }
})
