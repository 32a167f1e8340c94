/**
 * Commands on one key (or one prefix): `get` (now or `--at` a revision or moment), `put`, `create`, `update`,
 * `cas`, `delete` (by key, `--prefix`, or `--revision`) and `keepalive`, each a call of the store's contract.
 */
import { Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import type { AlreadyExists, IncorrectRevision, NotFound } from "../../../domain/Errors.ts"
import type { Lease } from "../../../domain/Item.ts"
import { Store } from "../../store/Store.ts"
import type { WriteFailure } from "../../store/Store.ts"
import { withStore } from "./Globals.ts"
import * as Input from "./Input.ts"
import { emit, itemJson, itemText } from "./Output.ts"

const keyArgument = Argument.String("key").pipe(Argument.withDescription("the key, e.g. /app/config"))
const valueArgument = Argument.String("value").pipe(
  Argument.withDescription("the value: literal text, @file for a file's bytes, - for stdin (@@x is the literal @x)")
)
const ttlFlag = Flag.String("ttl").pipe(
  Flag.optional,
  Flag.withDescription("expire after this long: 30s, 5m, 2h, 1d (a plain number is seconds)")
)

const expiresOf = (ttl: Option.Option<string>) =>
  Option.isSome(ttl) ? Effect.map(Input.expiresIn(ttl.value), (at): number | undefined => at) : Effect.undefined

/** A written lease, in every format (`value`: the revision). */
export const emitLease = (lease: Lease) =>
  emit({
    text: `${lease.key} @ ${lease.revision}`,
    json: { key: lease.key, revision: lease.revision },
    value: lease.revision
  })

const get = Command.make("get", {
  key: keyArgument,
  at: Flag.String("at").pipe(
    Flag.optional,
    Flag.withDescription("the item right after this revision was written, or at this moment (ISO 8601 or epoch ms)")
  )
}, ({ key, at }) =>
  withStore(
    "use",
    Effect.gen(function*() {
      const store = yield* Store
      const item = Option.isSome(at) ? yield* store.getAt(key, Input.pastPoint(at.value)) : yield* store.get(key)
      yield* emit({ text: itemText(item), json: itemJson(item), value: item.value })
    })
  )).pipe(Command.withDescription("Print the live item of a key (-o value: its raw bytes), or its past with --at"))

const write = (name: "put" | "create" | "update", description: string) =>
  Command.make(
    name,
    { key: keyArgument, value: valueArgument, ttl: ttlFlag },
    ({ key, value, ttl }) =>
      Effect.gen(function*() {
        const bytes = yield* Input.value("value", value)
        const expires = yield* expiresOf(ttl)
        const lease = yield* withStore(
          "use",
          Store.use((store): Effect.Effect<Lease, AlreadyExists | NotFound | WriteFailure> =>
            store[name]({ key, value: bytes, expires })
          )
        )
        yield* emitLease(lease)
      })
  ).pipe(Command.withDescription(description))

const put = write("put", "Store a value under a key, replacing any")
const create = write("create", "Store a value under a key that has no live item (exit 4 if it has one)")
const update = write("update", "Replace the live item of a key (exit 3 if there is none)")

const cas = Command.make("cas", {
  key: keyArgument,
  value: valueArgument,
  expect: Flag.String("expect").pipe(
    Flag.optional,
    Flag.withDescription("replace only if the live value is this (literal, @file or -)")
  ),
  revision: Flag.String("revision").pipe(Flag.optional, Flag.withDescription("replace only if this revision is live")),
  ttl: ttlFlag
}, ({ key, value, expect, revision, ttl }) =>
  Effect.gen(function*() {
    if (Option.isSome(expect) === Option.isSome(revision)) {
      return yield* new Input.InputInvalid({ input: "cas", reason: "give exactly one of --expect or --revision" })
    }
    yield* Input.oneStdin([value, Option.getOrUndefined(expect)])
    const bytes = yield* Input.value("value", value)
    const expires = yield* expiresOf(ttl)
    const lease = Option.isSome(revision)
      ? yield* withStore(
        "use",
        Store.use((store) => store.conditionalUpdate({ key, value: bytes, expires, revision: revision.value }))
      )
      : yield* Effect.gen(function*() {
        const expected = yield* Input.value("--expect", Option.getOrThrow(expect))
        return yield* withStore(
          "use",
          Store.use((store) => store.compareAndSwap({ key, value: expected }, { key, value: bytes, expires }))
        )
      })
    yield* emitLease(lease)
  })).pipe(
    Command.withDescription(
      "Compare and swap: replace a live item only if its value (--expect) or revision (--revision) matches"
    )
  )

const del = Command.make("delete", {
  key: Argument.String("key").pipe(Argument.withDescription("the key (with --prefix: every key starting with it)")),
  prefix: Flag.Boolean("prefix").pipe(
    Flag.withDefault(false),
    Flag.withDescription("delete every live item under the prefix")
  ),
  revision: Flag.String("revision").pipe(Flag.optional, Flag.withDescription("delete only if this revision is live"))
}, ({ key, prefix, revision }) =>
  Effect.gen(function*() {
    if (prefix && Option.isSome(revision)) {
      return yield* new Input.InputInvalid({ input: "delete", reason: "--prefix and --revision do not go together" })
    }
    if (prefix) {
      const deleted = yield* withStore("use", Store.use((store) => store.deleteRange(key, Input.prefixEnd(key))))
      return yield* emit({ text: `deleted ${deleted}`, json: { prefix: key, deleted }, value: String(deleted) })
    }
    yield* withStore(
      "use",
      Store.use((store): Effect.Effect<void, IncorrectRevision | NotFound | WriteFailure> =>
        Option.isSome(revision) ? store.conditionalDelete(key, revision.value) : store.delete(key)
      )
    )
    yield* emit({ text: `deleted ${key}`, json: { key, deleted: 1 }, value: "1" })
  })).pipe(Command.withDescription("Delete a live item (exit 3 if none), or every item under a --prefix"))

const keepalive = Command.make("keepalive", {
  key: keyArgument,
  ttl: ttlFlag,
  revision: Flag.String("revision").pipe(Flag.optional, Flag.withDescription("extend only if this revision is live"))
}, ({ key, ttl, revision }) =>
  Effect.gen(function*() {
    const expires = yield* expiresOf(ttl)
    const lease = yield* withStore(
      "use",
      Store.use((store) => store.keepAlive({ key, revision: Option.getOrElse(revision, () => "") }, expires))
    )
    yield* emitLease(lease)
  })).pipe(Command.withDescription("Give a live item a new expiry (--ttl), or none without --ttl; its revision stays"))

/** The commands on one key. */
export const keyCommands = [get, put, create, update, cas, del, keepalive] as const
