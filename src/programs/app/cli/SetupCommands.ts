/**
 * Commands that set a store up: `init` (the table and, for a store without data, the first key: the only CLI
 * command that creates them) and `local` (the shared embedded DynamoDB Local of the data directory, kept running
 * in the foreground).
 */
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import * as fs from "node:fs"
import * as SharedDynamoDBLocal from "../../../infra/local/SharedDynamoDBLocal.ts"
import { isEmbedded } from "../../../infra/StoreConfig.ts"
import type { StoreConfig } from "../../../infra/StoreConfig.ts"
import { loadConfig, withConfiguredStore } from "./Globals.ts"
import { emit } from "./Output.ts"

const keyDescription = (config: StoreConfig, existed: boolean): string =>
  Option.isSome(config.kmsKey)
    ? `KMS key ${config.kmsKey.value}`
    : Option.isSome(config.keyringKey)
    ? "the inline storage.keyring_key"
    : `${existed ? "existing" : "new"} key file ${config.keyringFile}`

const init = Command.make("init", {}, () =>
  Effect.gen(function*() {
    const { config } = yield* loadConfig
    const keyExisted = fs.existsSync(config.keyringFile)
    yield* withConfiguredStore("setup", () => Effect.void)
    const storage = isEmbedded(config) ? `embedded DynamoDB Local (data in ${config.dataDir})` : "DynamoDB"
    yield* emit({
      text: [
        `table ${config.tableName} ready on ${storage}, namespace ${config.namespace}`,
        `keys: ${keyDescription(config, keyExisted)}`
      ].join("\n"),
      json: {
        table: config.tableName,
        namespace: config.namespace,
        embedded: isEmbedded(config),
        dataDir: config.dataDir,
        keyFile: config.keyringFile,
        keyCreated: !keyExisted && fs.existsSync(config.keyringFile)
      },
      value: config.tableName
    })
  })).pipe(
    Command.withDescription(
      "Set up a store: create its table if missing and, for a store without data, its first key file " +
        "(never a new key beside existing data)"
    )
  )

const local = Command.make("local", {
  port: Flag.Int("port").pipe(Flag.optional, Flag.withDescription("the port to start it on (if not running yet)"))
}, ({ port }) =>
  Effect.scoped(Effect.gen(function*() {
    const { config } = yield* loadConfig
    const instance = yield* SharedDynamoDBLocal.acquire({ dataDir: config.dataDir, port: Option.getOrUndefined(port) })
    if (Option.isSome(port) && port.value !== instance.port) {
      yield* Console.error(`already running on port ${instance.port}: using that one, not ${port.value}`)
    }
    yield* emit({
      text: `DynamoDB Local on ${instance.endpoint} (data in ${config.dataDir}, ` +
        `${instance.started ? "started" : "already running"}, keeper pid ${instance.keeperPid})`,
      json: {
        endpoint: instance.endpoint,
        dataDir: config.dataDir,
        started: instance.started,
        pid: instance.keeperPid
      },
      value: instance.endpoint
    })
    yield* Console.error(
      "every process of this data directory shares it; Ctrl-C leaves (it stops once no process uses it)"
    )
    return yield* Effect.never
  }))).pipe(
    Command.withDescription(
      "Run the embedded DynamoDB Local of the data directory in the foreground (shared with the other processes)"
    )
  )

/** The set-up commands. */
export const setupCommands = [init, local] as const
