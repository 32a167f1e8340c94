/**
 * The keeper process's entry point: `node keeperMain.ts <dataDir> <port> <idleMillis>`, spawned detached by
 * `SharedDynamoDBLocal.acquire`. Its output goes to the data directory's `local.log`.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as LocalKeeper from "./LocalKeeper.ts"

const [dataDir, port, idleMillis] = process.argv.slice(2)
if (dataDir === undefined) {
  process.stderr.write("usage: keeperMain <dataDir> <port> <idleMillis>\n")
  process.exit(2)
}
NodeRuntime.runMain(LocalKeeper.run({ dataDir, port: Number(port ?? 0), idleMillis: Number(idleMillis ?? 10_000) }))
