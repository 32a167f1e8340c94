/**
 * Where local files go by default: beside the configuration file or in the user's data directory, never the working
 * directory; paths set explicitly stay as given.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as StoreConfig from "../../src/infra/StoreConfig.ts"
import * as DataDir from "../../src/programs/app/DataDir.ts"

const load = (env: Record<string, string>) => StoreConfig.load({ env })

describe("DataDir", () => {
  it.effect("the defaults it moves are the ones StoreConfig gives", () =>
    Effect.gen(function*() {
      const config = yield* load({})
      expect(config.dataDir).toBe(DataDir.configDefaults.dataDir)
      expect(config.keyringFile).toBe(DataDir.configDefaults.keyringFile)
    }))

  it.effect("without a configuration file, the defaults go to the user's data directory", () =>
    Effect.gen(function*() {
      const env = { XDG_DATA_HOME: "/home/u/.data" }
      const config = DataDir.resolvePaths(yield* load({}), { env })
      expect(config.dataDir).toBe("/home/u/.data/dynastate/dynamodb")
      expect(config.keyringFile).toBe("/home/u/.data/dynastate/keyring.key")
      // Idempotent: a resolved configuration stays where it is.
      expect(DataDir.resolvePaths(config, { env: { XDG_DATA_HOME: "/elsewhere" } })).toEqual(config)
    }))

  it.effect("with a configuration file, they go beside it whatever the working directory", () =>
    Effect.gen(function*() {
      const config = DataDir.resolvePaths(yield* load({}), { configFile: "/etc/app/dynastate.yaml" })
      expect(config.dataDir).toBe("/etc/app/.dynastate/dynamodb")
      expect(config.keyringFile).toBe("/etc/app/.dynastate/keyring.key")
    }))

  it.effect("an explicit data_dir holds the key by default; an explicit key file is used as given", () =>
    Effect.gen(function*() {
      const withDir = DataDir.resolvePaths(yield* load({ DYNASTATE_DATA_DIR: "/var/lib/dyn" }))
      expect(withDir).toMatchObject({ dataDir: "/var/lib/dyn", keyringFile: "/var/lib/dyn/keyring.key" })
      const withKey = DataDir.resolvePaths(yield* load({ DYNASTATE_KEYRING_FILE: "keys/k.key" }))
      expect(withKey.keyringFile).toBe(path.resolve("keys/k.key"))
    }))

  it("the user's data directory follows each platform's convention", () => {
    expect(DataDir.userDataDir({}, "linux", "/home/u")).toBe("/home/u/.local/share/dynastate")
    expect(DataDir.userDataDir({}, "darwin", "/Users/u")).toBe("/Users/u/Library/Application Support/dynastate")
    expect(DataDir.userDataDir({ LOCALAPPDATA: "C:\\L" }, "win32", "C:\\U")).toBe(
      path.join("C:\\L", "dynastate", "Data")
    )
  })

  it.effect("files an older version left in the working directory are pointed out, unless they are in use", () =>
    Effect.gen(function*() {
      const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-legacy-"))
      const config = DataDir.resolvePaths(yield* load({}), { env: { XDG_DATA_HOME: "/home/u/.data" } })
      expect(DataDir.legacyDataWarning(config, cwd)).toBeUndefined()
      fs.mkdirSync(path.join(cwd, ".dynastate"))
      fs.writeFileSync(path.join(cwd, ".dynastate", "keyring.key"), "k")
      const warning = DataDir.legacyDataWarning(config, cwd)
      expect(warning).toContain(`DYNASTATE_KEYRING_FILE=${path.join(cwd, ".dynastate", "keyring.key")}`)
      const inUse = { ...config, keyringFile: path.join(cwd, ".dynastate", "keyring.key") }
      expect(DataDir.legacyDataWarning(inUse, cwd)).toBeUndefined()
      fs.rmSync(cwd, { recursive: true, force: true })
    }))
})
