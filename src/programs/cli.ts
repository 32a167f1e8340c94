/**
 * The `dynastate` command line: the worker, reads and writes, history, key
 * management (rewrap, shred) and compaction, all on the configured store
 * (`DYNASTATE_CONFIG` / `DYNASTATE_*`; the embedded DynamoDB Local by default).
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Console, Effect, Layer, Option, Stream } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as Key from "../domain/Key.ts"
import type { Item } from "../domain/Item.ts"
import * as RawAesKeyring from "../infra/crypto/RawAesKeyring.ts"
import * as StoreConfig from "../infra/StoreConfig.ts"
import { Compaction } from "./Compaction.ts"
import { demo } from "./Demo.ts"
import { Store } from "./Store.ts"
import * as StoreLive from "./StoreLive.ts"
import * as WorkerLive from "./WorkerLive.ts"

const text = (value: Uint8Array) => new TextDecoder().decode(value)
const showItem = (item: Item) =>
  `${item.key} = ${JSON.stringify(text(item.value))} @ ${item.revision}${item.expires === undefined ? "" : ` expires ${new Date(item.expires).toISOString()}`}`

/** Runs `program` with the configured store. */
const withStore = <A, E, R extends Layer.Success<ReturnType<typeof StoreLive.layer>>>(program: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const config = yield* StoreConfig.load()
    return yield* program.pipe(Effect.provide(StoreLive.layer(config)))
  })

const worker = Command.make("worker", {}, () =>
  Effect.gen(function*() {
    const config = yield* StoreConfig.load()
    yield* Console.log(`projection worker on table ${config.tableName}; status every 5 s; Ctrl-C stops it and releases its leases`)
    yield* Layer.launch(WorkerLive.layer(config))
  })).pipe(Command.withDescription("Run the projection worker (history compaction, expiry, views) until stopped"))

const demoCommand = Command.make("demo", {}, () => withStore(demo)).pipe(
  Command.withDescription("A short tour of the store")
)

const get = Command.make("get", { key: Argument.String("key") }, ({ key }) =>
  withStore(Effect.flatMap(Store.use((store) => store.get(key)), (item) => Console.log(showItem(item))))).pipe(
    Command.withDescription("Print the live item of a key")
  )

const put = Command.make("put", {
  key: Argument.String("key"),
  value: Argument.String("value"),
  ttl: Flag.Int("ttl-seconds").pipe(Flag.optional, Flag.withDescription("expire after this many seconds"))
}, ({ key, value, ttl }) =>
  withStore(Effect.gen(function*() {
    const expires = Option.isSome(ttl) ? Date.now() + ttl.value * 1000 : undefined
    const lease = yield* Store.use((store) => store.put({ key, value: new TextEncoder().encode(value), expires }))
    yield* Console.log(`${key} @ ${lease.revision}`)
  }))).pipe(Command.withDescription("Store a value (UTF-8 text) under a key"))

const del = Command.make("delete", { key: Argument.String("key") }, ({ key }) =>
  withStore(Effect.andThen(Store.use((store) => store.delete(key)), Console.log(`deleted ${key}`)))).pipe(
    Command.withDescription("Delete a live item")
  )

const range = Command.make("range", {
  prefix: Argument.String("prefix"),
  limit: Flag.Int("limit").pipe(Flag.optional)
}, ({ prefix, limit }) =>
  withStore(Store.use((store) =>
    store.items({ start: prefix, end: Key.rangeEnd(prefix), limit: Option.getOrUndefined(limit) }).pipe(
      Stream.runForEach((item) => Console.log(showItem(item)))
    )
  ))).pipe(Command.withDescription("List the live items under a prefix"))

const history = Command.make("history", { key: Argument.String("key") }, ({ key }) =>
  withStore(Store.use((store) =>
    store.history(key).pipe(
      Stream.runForEach((event) =>
        Console.log(`seq ${event.seq} ${new Date(event.timestamp).toISOString()} ${event.op} @ ${event.revision}` +
          (event.value === undefined ? "" : ` ${JSON.stringify(text(event.value))}`))
      )
    )
  ))).pipe(Command.withDescription("Print every kept event of a key, oldest first"))

const rewrap = Command.make("rewrap", {
  keyFile: Flag.String("to-key-file").pipe(Flag.withDescription("raw AES key file (id:base64 per line) to wrap every data key under"))
}, ({ keyFile }) =>
  withStore(Effect.gen(function*() {
    const keys = yield* RawAesKeyring.loadOrCreateKeyFile(keyFile)
    const count = yield* Store.use((store) => store.rewrap(RawAesKeyring.make(keys)))
    yield* Console.log(`re-wrapped ${count} data keys under ${keyFile}; point storage.keyring_file at it now`)
  }))).pipe(Command.withDescription("Re-wrap every data key under another key (events are not touched)"))

const shred = Command.make("shred", {
  scope: Argument.String("scope-prefix"),
  yes: Flag.Boolean("yes").pipe(Flag.withDescription("confirm: the values become unrecoverable"))
}, ({ scope, yes }) =>
  withStore(Effect.gen(function*() {
    if (!yes) return yield* Console.error("shred destroys data keys for good: add --yes to confirm")
    const count = yield* Store.use((store) => store.shred(scope))
    yield* Console.log(`shredded ${count} data keys of scopes under "${scope}"`)
  }))).pipe(Command.withDescription("Destroy the data keys of a shred scope (GDPR erasure)"))

const compact = Command.make("compact", {}, () =>
  withStore(Effect.gen(function*() {
    const compaction = yield* Compaction
    yield* compaction.all((done, total) =>
      Effect.sync(() => {
        const width = 30
        const filled = total > 0 ? Math.min(width, Math.round((done / total) * width)) : 0
        process.stderr.write(`\r[${"#".repeat(filled)}${" ".repeat(width - filled)}] ${done}/${total || "?"} keys`)
      })
    )
    process.stderr.write("\n")
  }).pipe(Effect.provide(Compaction.layer)))).pipe(
    Command.withDescription("Rebuild the history projection: move every superseded event into history, with a progress bar")
  )

/** The root command. */
export const cli = Command.make("dynastate").pipe(
  Command.withDescription("An event-sourced, encrypted state store on DynamoDB"),
  Command.withSubcommands([worker, demoCommand, get, put, del, range, history, rewrap, shred, compact])
)

Command.run(cli, { version: "0.1.0" }).pipe(Effect.provide(NodeServices.layer), NodeRuntime.runMain)

