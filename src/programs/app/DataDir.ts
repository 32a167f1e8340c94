/**
 * Where a store's local files live when the configuration does not say: the embedded DynamoDB Local's data and
 * the raw AES key file belong to a data directory beside the configuration file (`<its folder>/.dynastate`) or,
 * without one, to the user's data directory (`$XDG_DATA_HOME/dynastate`, `~/.local/share/dynastate`). Never the
 * working directory: the same application started from another folder must find the same key, not make a new one.
 */
import { existsSync } from "node:fs"
import { homedir } from "node:os"
import { dirname, join, resolve } from "node:path"
import type { StoreConfig } from "../../infra/StoreConfig.ts"

/**
 * The values `StoreConfig` gives `data_dir` and `keyring_file` when they are not set (a test checks they still
 * match): only those are moved; a path set explicitly is used as given.
 */
export const configDefaults = { dataDir: ".dynastate/dynamodb", keyringFile: ".dynastate/keyring.key" } as const

/**
 * The per-user data directory of dynastate: `$XDG_DATA_HOME/dynastate` or `~/.local/share/dynastate`,
 * `~/Library/Application Support/dynastate` on macOS, `%LOCALAPPDATA%\dynastate\Data` on Windows.
 */
export const userDataDir = (
  env: Record<string, string | undefined> = process.env,
  platform: NodeJS.Platform = process.platform,
  home: string = homedir()
): string => {
  if (platform === "win32") return join(env["LOCALAPPDATA"] ?? join(home, "AppData", "Local"), "dynastate", "Data")
  if (platform === "darwin") return join(home, "Library", "Application Support", "dynastate")
  const xdg = env["XDG_DATA_HOME"]
  return join(xdg !== undefined && xdg !== "" ? xdg : join(home, ".local", "share"), "dynastate")
}

/** The folder the defaults live in: beside the configuration file, else the user's data directory. */
export const baseDir = (configFile: string | undefined, env: Record<string, string | undefined> = process.env) =>
  configFile === undefined ? userDataDir(env) : join(dirname(resolve(configFile)), ".dynastate")

/**
 * The configuration with its local paths made absolute: defaults moved out of the working directory (DynamoDB
 * Local's data in `<base>/dynamodb`, the key in `<base>/keyring.key`; with `data_dir` set, the key defaults to
 * `<data_dir>/keyring.key`), explicit relative paths resolved against the working directory as given.
 */
export const resolvePaths = (
  config: StoreConfig,
  options: { readonly configFile?: string | undefined; readonly env?: Record<string, string | undefined> } = {}
): StoreConfig => {
  const base = baseDir(options.configFile, options.env)
  const dataDirSet = config.dataDir !== configDefaults.dataDir
  const dataDir = dataDirSet ? resolve(config.dataDir) : join(base, "dynamodb")
  const keyringFile = config.keyringFile !== configDefaults.keyringFile
    ? resolve(config.keyringFile)
    : dataDirSet
    ? join(dataDir, "keyring.key")
    : join(base, "keyring.key")
  return { ...config, dataDir, keyringFile }
}

/**
 * A warning when the working directory holds the files of an older dynastate (which kept them there) that the
 * configuration no longer uses, with the settings that keep using them; `undefined` otherwise.
 */
export const legacyDataWarning = (config: StoreConfig, cwd: string = process.cwd()): string | undefined => {
  const legacy = resolve(cwd, ".dynastate")
  const usedHere = config.dataDir.startsWith(legacy) || config.keyringFile.startsWith(legacy)
  if (usedHere || !existsSync(join(legacy, "keyring.key"))) return undefined
  return `${legacy} holds the data and key of an older dynastate, which kept them in the working directory; this ` +
    `store uses ${config.dataDir}. To keep using the old ones: DYNASTATE_DATA_DIR=${join(legacy, "dynamodb")} ` +
    `DYNASTATE_KEYRING_FILE=${join(legacy, "keyring.key")}`
}
