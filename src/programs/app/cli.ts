#!/usr/bin/env node
/**
 * The `dynastate` command line: the worker (with projections of yours from a
 * module), reads and writes, history, key management (rewrap, shred),
 * compaction and projection rebuilds, all on the configured store
 * (`DYNASTATE_CONFIG` / `DYNASTATE_*`; the embedded DynamoDB Local by default).
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Console, Effect, Layer, Option, Stream } from "effect"
import { Argument, CliError, Command, Flag } from "effect/cli"
import type { Item } from "../../domain/Item.ts"
import * as Key from "../../domain/Key.ts"
import * as RawAesKeyring from "../../infra/crypto/RawAesKeyring.ts"
import * as StoreConfig from "../../infra/StoreConfig.ts"
import { Store } from "../store/Store.ts"
import { Compaction } from "../worker/Compaction.ts"
import * as ProjectionModule from "../worker/ProjectionModule.ts"
import * as Rebuild from "../worker/Rebuild.ts"
import { demo } from "./Demo.ts"
import * as StoreLive from "./StoreLive.ts"
import * as WorkerLive from "./WorkerLive.ts"

const text = (value: Uint8Array) => new TextDecoder().decode(value)
const showItem = (item: Item) =>
  `${item.key} = ${JSON.stringify(text(item.value))} @ ${item.revision}${
    item.expires === undefined ? "" : ` expires ${new Date(item.expires).toISOString()}`
  }`

/** Runs the program `make` gives for the configuration, with the configured store. */
const withConfiguredStore = <A, E, R extends ProjectionModule.StoreServices>(
  make: (config: StoreConfig.StoreConfig) => Effect.Effect<A, E, R>
) =>
  Effect.gen(function*() {
    const config = yield* StoreConfig.load()
    return yield* make(config).pipe(Effect.provide(StoreLive.layer(config)))
  })

/** Runs `program` with the configured store. */
const withStore = <A, E, R extends ProjectionModule.StoreServices>(program: Effect.Effect<A, E, R>) =>
  withConfiguredStore(() => program)

/** Runs `work` with a progress bar of `done` out of `total` units, drawn in place on stderr; its line ends however the work ends. */
const withProgressBar = <A, E, R>(unit: string, work: (progress: Rebuild.OnProgress) => Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    let drawn = false
    const draw = (done: number, total: number) =>
      Effect.sync(() => {
        const width = 30
        const filled = total > 0 ? Math.min(width, Math.round((done / total) * width)) : 0
        process.stderr.write(`\r[${"#".repeat(filled)}${" ".repeat(width - filled)}] ${done}/${total} ${unit}`)
        drawn = true
      })
    return work(draw).pipe(Effect.ensuring(Effect.sync(() => void (drawn && process.stderr.write("\n")))))
  })

const projectionsFlag = Flag.String("projections").pipe(
  Flag.optional,
  Flag.withDescription(
    "a module whose default export (or export `projections`) is an Effect producing your projections"
  )
)

/** The projections of the `--projections` module, if one was given (none otherwise). */
const userProjections = (
  file: Option.Option<string>
): Effect.Effect<ProjectionModule.ProjectionsEffect, ProjectionModule.ProjectionModuleInvalid> =>
  Option.isSome(file) ? ProjectionModule.load(file.value) : Effect.succeed(Effect.succeed([]))

const worker = Command.make("worker", { projections: projectionsFlag }, ({ projections }) =>
  Effect.gen(function*() {
    const config = yield* StoreConfig.load()
    const extra = yield* userProjections(projections)
    yield* Console.log(
      `projection worker on table ${config.tableName}; status every 5 s; Ctrl-C stops it and releases its leases`
    )
    yield* Layer.launch(WorkerLive.layer(config, extra))
  })).pipe(
    Command.withDescription(
      "Run the projection worker (history compaction, expiry, your projections and views) until stopped"
    )
  )

const demoCommand = Command.make("demo", {}, () => withStore(demo)).pipe(
  Command.withDescription("A short tour of the store")
)

const get = Command.make(
  "get",
  { key: Argument.String("key") },
  ({ key }) => withStore(Effect.flatMap(Store.use((store) => store.get(key)), (item) => Console.log(showItem(item))))
).pipe(
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

const del = Command.make(
  "delete",
  { key: Argument.String("key") },
  ({ key }) => withStore(Effect.andThen(Store.use((store) => store.delete(key)), Console.log(`deleted ${key}`)))
).pipe(
  Command.withDescription("Delete a live item")
)

const range = Command.make(
  "range",
  {
    prefix: Argument.String("prefix"),
    limit: Flag.Int("limit").pipe(Flag.optional)
  },
  ({ prefix, limit }) =>
    withStore(
      Store.use((store) =>
        store.items({ start: prefix, end: Key.rangeEnd(prefix), limit: Option.getOrUndefined(limit) }).pipe(
          Stream.runForEach((item) => Console.log(showItem(item)))
        )
      )
    )
).pipe(Command.withDescription("List the live items under a prefix"))

const history = Command.make(
  "history",
  { key: Argument.String("key") },
  ({ key }) =>
    withStore(Store.use((store) =>
      store.history(key).pipe(
        Stream.runForEach((event) =>
          Console.log(
            `seq ${event.seq} ${new Date(event.timestamp).toISOString()} ${event.op} @ ${event.revision}` +
              (event.value === undefined ? "" : ` ${JSON.stringify(text(event.value))}`)
          )
        )
      )
    ))
).pipe(Command.withDescription("Print every kept event of a key, oldest first"))

const rewrap = Command.make("rewrap", {
  keyFile: Flag.String("to-key-file").pipe(
    Flag.withDescription("raw AES key file (id:base64 per line) to wrap every data key under")
  )
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

/** The history projection's rebuild: compaction of every key under the configured retention, with a progress bar. */
const compactAll = (config: StoreConfig.StoreConfig) =>
  Effect.gen(function*() {
    const compaction = yield* Compaction
    const pass = yield* withProgressBar("keys", (progress) =>
      compaction.all(progress, { retention: config.historyRetention }))
    yield* Console.log(
      `compacted ${pass.keys} keys` +
        (pass.pending.length === 0
          ? ""
          : `; ${pass.pending.length} have events too recent to move yet (the worker moves them once settled)`)
    )
  }).pipe(Effect.provide(Compaction.layer))

const compact = Command.make("compact", {}, () => withConfiguredStore(compactAll)).pipe(
  Command.withDescription(
    "Rebuild the history projection (same as `rebuild history`): move every superseded event into history"
  )
)

const rebuild = Command.make("rebuild", {
  name: Argument.String("name").pipe(Argument.withDescription("history, or the name of one of your projections")),
  projections: projectionsFlag
}, ({ name, projections }) =>
  Effect.gen(function*() {
    const make = yield* userProjections(projections)
    yield* withConfiguredStore((config) =>
      Effect.scoped(Effect.gen(function*() {
        if (name === "history") return yield* compactAll(config)
        if (name === "expiry") {
          return yield* Console.log(
            "expiry keeps its schedule in each worker's memory and rebuilds it when a worker starts: nothing to rebuild"
          )
        }
        const projection = yield* Rebuild.byName(yield* make, name, ["history"])
        const outcome = yield* withProgressBar("keys", (progress) =>
          Rebuild.rebuild(projection, { onProgress: progress }))
        if (outcome._tag === "Custom") {
          return yield* Console.log(`rebuilt ${name} (its own rebuild)`)
        }
        for (const skipped of outcome.unreadable) {
          yield* Console.error(`left out ${skipped.key} (seq ${skipped.seq}): ${skipped.reason}`)
        }
        yield* Console.log(
          `rebuilt ${name}: replayed ${outcome.keys} keys` +
            (outcome.shredded > 0 ? `, ${outcome.shredded} with shredded values skipped` : "") +
            (outcome.unreadable.length > 0 ? `, ${outcome.unreadable.length} unreadable left out` : "")
        )
      }))
    )
  })).pipe(
    Command.withDescription(
      "Rebuild a projection from the event table (history, or one of yours from --projections), with a progress bar"
    )
  )

/** The root command. */
export const cli = Command.make("dynastate").pipe(
  Command.withDescription("An event-sourced, encrypted state store on DynamoDB"),
  Command.withSubcommands([worker, demoCommand, get, put, del, range, history, rewrap, shred, compact, rebuild])
)

/** A failure the user can act on is one line on stderr and exit code 1, not a stack trace (defects still get one). */
const reportFailure = (error: unknown) =>
  Console.error(`dynastate: ${describeFailure(error)}`).pipe(Effect.andThen(Effect.sync(() => {
    process.exitCode = 1
  })))

const describeFailure = (error: unknown): string => {
  const message = (error as { message?: unknown })?.message
  const tag = (error as { _tag?: unknown })?._tag
  if (typeof message === "string" && message !== "") {
    return typeof tag === "string" && !message.startsWith(tag)
      ? `${tag}: ${message}`
      : message
  }
  return typeof tag === "string" ? tag : String(error)
}

Command.run(cli, { version: "0.1.0" }).pipe(
  // The CLI's own errors (unknown command, bad option) were already shown with the help.
  Effect.catchIf((error) => !CliError.isCliError(error), reportFailure),
  Effect.provide(NodeServices.layer),
  NodeRuntime.runMain
)
