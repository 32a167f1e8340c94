/**
 * `txn`: an atomic write across keys from a YAML or JSON file (JSON is YAML too). The file is a list of up to 64
 * entries, one per key, applied all together or not at all:
 *
 * ```yaml
 * - key: /app/config          # the key
 *   if: { revision: 0190… }   # its condition: whatever (default), exists, not-exists, or { revision: … }
 *   put: "new value"          # the action: put (text, or { base64: … }) with an optional ttl: 30s,
 *   ttl: 1h                   #   or delete: true; neither is a pure check of the condition
 * - key: /app/lock
 *   if: not-exists
 *   put: mine
 * ```
 */
import { Effect } from "effect"
import { Argument, Command } from "effect/cli"
import { parse as parseYaml } from "yaml"
import { Action, Condition } from "../../../domain/AtomicWrite.ts"
import type { ConditionalAction } from "../../../domain/AtomicWrite.ts"
import { Store } from "../../store/Store.ts"
import { withStore } from "./Globals.ts"
import * as Input from "./Input.ts"
import { emit } from "./Output.ts"

const entryKeys = ["key", "if", "put", "ttl", "delete"]

const conditionOf = (where: string, given: unknown): Effect.Effect<Condition, Input.InputInvalid> => {
  if (given === undefined || given === "whatever") return Effect.succeed(Condition.whatever)
  if (given === "exists") return Effect.succeed(Condition.exists)
  if (given === "not-exists") return Effect.succeed(Condition.notExists)
  const revision = (given as { revision?: unknown } | null)?.revision
  if (typeof revision === "string" && revision !== "") return Effect.succeed(Condition.revision(revision))
  return Effect.fail(
    new Input.InputInvalid({ input: `${where}.if`, reason: "must be whatever, exists, not-exists or { revision: … }" })
  )
}

const entryValue = (where: string, given: unknown): Effect.Effect<Uint8Array, Input.InputInvalid> => {
  if (typeof given === "string") return Effect.succeed(new TextEncoder().encode(given))
  const base64 = (given as { base64?: unknown } | null)?.base64
  if (typeof base64 === "string" && /^[A-Za-z0-9+/]*={0,2}$/.test(base64)) {
    return Effect.succeed(new Uint8Array(Buffer.from(base64, "base64")))
  }
  return Effect.fail(
    new Input.InputInvalid({
      input: `${where}.put`,
      reason: "must be text (quote numbers and booleans) or { base64: … }"
    })
  )
}

const entryOf = Effect.fnUntraced(function*(given: unknown, index: number) {
  const where = `entry ${index + 1}`
  if (typeof given !== "object" || given === null || Array.isArray(given)) {
    return yield* new Input.InputInvalid({ input: where, reason: "must be a mapping with a key" })
  }
  const entry = given as Record<string, unknown>
  const unknown = Object.keys(entry).filter((name) => !entryKeys.includes(name))
  if (unknown.length > 0) {
    return yield* new Input.InputInvalid({
      input: where,
      reason: `unknown field ${unknown.join(", ")} (known: ${entryKeys.join(", ")})`
    })
  }
  if (typeof entry.key !== "string") {
    return yield* new Input.InputInvalid({ input: `${where}.key`, reason: "must be text" })
  }
  if (entry.put !== undefined && entry.delete !== undefined) {
    return yield* new Input.InputInvalid({ input: where, reason: "put and delete do not go together" })
  }
  if (entry.delete !== undefined && entry.delete !== true) {
    return yield* new Input.InputInvalid({ input: `${where}.delete`, reason: "must be true when given" })
  }
  if (entry.ttl !== undefined && entry.put === undefined) {
    return yield* new Input.InputInvalid({ input: `${where}.ttl`, reason: "only a put takes a ttl" })
  }
  const condition = yield* conditionOf(where, entry.if)
  const action = entry.put !== undefined
    ? Action.put(
      yield* entryValue(where, entry.put),
      entry.ttl === undefined
        ? undefined
        : Date.now() + (yield* Input.durationMillis(`${where}.ttl`, String(entry.ttl)))
    )
    : entry.delete === true
    ? Action.delete
    : Action.nop
  return { key: entry.key, condition, action } satisfies ConditionalAction
})

/** The entries of a txn file's text (YAML or JSON). */
export const parseTxn = Effect.fnUntraced(function*(text: string) {
  const document = yield* Effect.try({
    try: () => parseYaml(text) as unknown,
    catch: (cause) => {
      const position = (cause as { linePos?: ReadonlyArray<{ line: number; col: number }> }).linePos?.[0]
      return new Input.InputInvalid({
        input: "txn file",
        reason: position ? `not valid YAML or JSON at line ${position.line}, column ${position.col}` : "not valid YAML"
      })
    }
  })
  if (!Array.isArray(document) || document.length === 0) {
    return yield* new Input.InputInvalid({ input: "txn file", reason: "must be a non-empty list of entries" })
  }
  return yield* Effect.forEach(document, entryOf)
})

const txn = Command.make("txn", {
  file: Argument.String("file").pipe(Argument.withDescription("the YAML or JSON file of entries, - for stdin"))
}, ({ file }) =>
  Effect.gen(function*() {
    const bytes = file === "-" ? yield* Input.readStdin("txn file") : yield* Input.readFile("txn file", file)
    const actions = yield* parseTxn(new TextDecoder().decode(bytes))
    const revision = yield* withStore("use", Store.use((store) => store.atomicWrite(actions)))
    yield* emit({
      text: `committed ${actions.length} entries @ ${revision}`,
      json: { revision, keys: actions.map((action) => action.key) },
      value: revision
    })
  })).pipe(
    Command.withDescription(
      "Atomic write across keys from a YAML/JSON list of { key, if, put | delete, ttl } (exit 4 if a condition fails)"
    )
  )

/** The atomic-write command. */
export const txnCommands = [txn] as const
