/**
 * What the controller and its child processes say to each other: one JSON object a line, the child's lines on
 * stdout prefixed with {@link marker} (anything else a child prints, its logs, is not protocol), and how a child is
 * configured (environment variables, so nothing secret reaches a command line).
 */
import { LogLevel } from "effect"
import type { KvInput, KvOutput } from "../properties/linearizability/KvModel.ts"

/** The index view the workers keep of the `/kv/` keys, and its index: the last character of a value (hex). */
export const indexName = "chaos-by-value"

/** What a `/kv/` value is filed under in the index view: few buckets, so entries move between them often. */
export const indexOf = (value: string): string => `h-${value.slice(-1)}`

/** Every bucket of {@link indexOf} (values end in a hex digit). */
export const indexBuckets = Array.from("0123456789abcdef", (digit) => `h-${digit}`)

/** Prefix of a protocol line on a child's stdout. */
export const marker = "@@chaos "

/** A write with an expiry: outside the linearizability model (which has no time), checked by the expiry check. */
export interface PutTtl {
  readonly _tag: "PutTtl"
  readonly key: string
  readonly value: string
  readonly ttlMillis: number
}

/** An operation the controller asks a writer for. */
export type ChaosInput = KvInput | PutTtl

/** A request to a writer. */
export interface Request {
  readonly id: number
  readonly input: ChaosInput
}

/**
 * A writer's answer: `ok` (succeeded), `failed` (refused by the contract, so definitely not applied) or
 * `indeterminate` (an error or a timeout: it may or may not have been applied).
 */
export interface Response {
  readonly id: number
  readonly status: "ok" | "failed" | "indeterminate"
  readonly output?: KvOutput | undefined
  /** The error's tag, for indeterminate operations. */
  readonly error?: string | undefined
  /** What the error said, for the report's samples (never a value: the store's errors carry none). */
  readonly reason?: string | undefined
}

/** What a child announces once its store (or worker) is built. */
export interface Ready {
  readonly ready: true
}

/** A worker's replica of the `/kv/` keys, sent when the controller writes the line `dump`. */
export interface Dump {
  readonly dump: ReadonlyArray<{ readonly key: string; readonly value: string; readonly revision: string }>
}

/** The environment of a child process. */
export interface ChildEnv {
  readonly CHAOS_ENDPOINT: string
  readonly CHAOS_TABLE: string
  readonly CHAOS_NAMESPACE: string
  /** The raw AES key (base64) every process shares, so each can read the others' values. */
  readonly CHAOS_KEY: string
  readonly CHAOS_MAX_STATE_AGE: string
  readonly CHAOS_WRITE_TIMEOUT: string
  /** Writers: how long an operation may take in all before it is reported indeterminate. */
  readonly CHAOS_OP_TIMEOUT: string
  /** Workers: compaction's settle time. */
  readonly CHAOS_SETTLE: string
  readonly CHAOS_LEASE_TABLE: string
  readonly CHAOS_LEASE_MILLIS: string
  /** Workers: attempts of a projection on one event before its key is quarantined. */
}

/** Reads a numeric setting of the child's environment, failing loudly when it is missing. */
export const numberSetting = (name: keyof ChildEnv): number => {
  const value = Number(process.env[name])
  if (!Number.isFinite(value)) throw new Error(`${name} must be a number, got ${process.env[name]}`)
  return value
}

/** Reads a text setting of the child's environment, failing loudly when it is missing. */
export const textSetting = (name: keyof ChildEnv): string => {
  const value = process.env[name]
  if (value === undefined || value === "") throw new Error(`${name} is not set`)
  return value
}

/** Writes one protocol line. */
export const send = (message: Response | Ready | Dump): void => {
  process.stdout.write(`${marker}${JSON.stringify(message)}\n`)
}

/** The children's log level: errors only, unless CHAOS_LOG_LEVEL (e.g. `Info`, with CHAOS_LOG_DIR) asks for more. */
export const logLevel = (): LogLevel.LogLevel => {
  const wanted = process.env["CHAOS_LOG_LEVEL"]
  return LogLevel.values.find((level) => level === wanted) ?? "Error"
}

/**
 * The configuration environment of a child's store: the campaign's table, namespace, key and write fence. The fence
 * goes through the configuration, which wins over the store options (`StoreLive.storeOptions`): passed as an
 * option only, it was silently replaced by the default 30 s fence, unsafe for the campaign's short settle time.
 */
export const storeEnvironment = (): Record<string, string> => ({
  DYNASTATE_ENDPOINT: textSetting("CHAOS_ENDPOINT"),
  DYNASTATE_REGION: "us-east-1",
  DYNASTATE_TABLE_NAME: textSetting("CHAOS_TABLE"),
  DYNASTATE_NAMESPACE: textSetting("CHAOS_NAMESPACE"),
  DYNASTATE_KEYRING_KEY: textSetting("CHAOS_KEY"),
  DYNASTATE_MAX_STATE_AGE: `${numberSetting("CHAOS_MAX_STATE_AGE")}ms`,
  DYNASTATE_WRITE_TIMEOUT: `${numberSetting("CHAOS_WRITE_TIMEOUT")}ms`
})
