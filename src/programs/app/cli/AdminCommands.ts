/**
 * Commands that run or maintain the store rather than read and write it: the projection worker (with projections
 * of yours from a module), the tour, key management (rewrap, shred), compaction, projection rebuilds and the migration
 * that seals an existing prefix in place.
 */
import { Console, Data, Effect, Layer, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as RawAesKeyring from "../../../infra/crypto/RawAesKeyring.ts"
import * as StoreConfig from "../../../infra/StoreConfig.ts"
import * as SealMigration from "../../store/SealMigration.ts"
import { Store } from "../../store/Store.ts"
import { Compaction } from "../../worker/Compaction.ts"
import * as ProjectionModule from "../../worker/ProjectionModule.ts"
import * as Rebuild from "../../worker/Rebuild.ts"
import { demo } from "../Demo.ts"
import * as WorkerLive from "../WorkerLive.ts"
import { loadConfig, withConfiguredStore, withStore } from "./Globals.ts"
import { InputInvalid } from "./Input.ts"
import { emit } from "./Output.ts"

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
    const { config } = yield* loadConfig
    const extra = yield* userProjections(projections)
    yield* Console.error(
      `projection worker on table ${config.tableName}; Ctrl-C stops it and releases its leases`
    )
    yield* Layer.launch(WorkerLive.layer(config, extra))
  })).pipe(
    Command.withDescription(
      "Run the projection worker (history compaction, expiry, your projections and views) until stopped"
    )
  )

const demoCommand = Command.make("demo", {}, () => withStore("setup", demo)).pipe(
  Command.withDescription("A short tour of the store (creates its table and first key when missing)")
)

const rewrap = Command.make("rewrap", {
  keyFile: Flag.String("to-key-file").pipe(
    Flag.withDescription("raw AES key file (id:base64 per line) to wrap every data key under; created if missing")
  )
}, ({ keyFile }) =>
  withStore(
    "use",
    Effect.gen(function*() {
      const keys = yield* RawAesKeyring.loadOrCreateKeyFile(keyFile)
      const count = yield* Store.use((store) => store.rewrap(RawAesKeyring.make(keys)))
      yield* emit({
        text: `re-wrapped ${count} data keys under ${keyFile}; point storage.keyring_file at it now`,
        json: { rewrapped: count, keyFile },
        value: String(count)
      })
    })
  )).pipe(Command.withDescription("Re-wrap every data key under another key (events are not touched)"))

const shred = Command.make("shred", {
  scope: Argument.String("scope-prefix"),
  yes: Flag.Boolean("yes").pipe(
    Flag.withDefault(false),
    Flag.withDescription("confirm: the values become unrecoverable")
  )
}, ({ scope, yes }) =>
  Effect.gen(function*() {
    if (!yes) {
      return yield* new InputInvalid({
        input: "shred",
        reason: "shred destroys data keys for good: add --yes to confirm"
      })
    }
    const count = yield* withStore("use", Store.use((store) => store.shred(scope)))
    yield* emit({
      text: `shredded ${count} data keys of scopes under "${scope}"`,
      json: { shredded: count, scope },
      value: String(count)
    })
  })).pipe(Command.withDescription("Destroy the data keys of a shred scope (GDPR erasure)"))

/** The history projection's rebuild: compaction of every key under the configured retention, with a progress bar. */
const compactAll = (config: StoreConfig.StoreConfig) =>
  Effect.gen(function*() {
    const compaction = yield* Compaction
    const pass = yield* withProgressBar("keys", (progress) =>
      compaction.all(progress, { retention: config.historyRetention }))
    yield* emit({
      text: `compacted ${pass.keys} keys` +
        (pass.pending.length === 0
          ? ""
          : `; ${pass.pending.length} have events too recent to move yet (the worker moves them once settled)`),
      json: { compacted: pass.keys, pending: pass.pending.length },
      value: String(pass.keys)
    })
  }).pipe(Effect.provide(Compaction.layer))

const compact = Command.make("compact", {}, () => withConfiguredStore("use", compactAll)).pipe(
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
    yield* withConfiguredStore("use", (config) =>
      Effect.scoped(Effect.gen(function*() {
        if (name === "history") return yield* compactAll(config)
        if (name === "expiry") {
          return yield* Console.error(
            "expiry keeps its schedule in each worker's memory and rebuilds it when a worker starts: nothing to rebuild"
          )
        }
        const projection = yield* Rebuild.byName(yield* make, name, ["history"])
        const outcome = yield* withProgressBar("keys", (progress) =>
          Rebuild.rebuild(projection, { onProgress: progress }))
        if (outcome._tag === "Custom") {
          return yield* emit({ text: `rebuilt ${name} (its own rebuild)`, json: { rebuilt: name }, value: name })
        }
        for (const skipped of outcome.unreadable) {
          yield* Console.error(`left out ${skipped.key} (seq ${skipped.seq}): ${skipped.reason}`)
        }
        yield* emit({
          text: `rebuilt ${name}: replayed ${outcome.keys} keys` +
            (outcome.shredded > 0 ? `, ${outcome.shredded} with shredded values skipped` : "") +
            (outcome.unreadable.length > 0 ? `, ${outcome.unreadable.length} unreadable left out` : ""),
          json: {
            rebuilt: name,
            keys: outcome.keys,
            shredded: outcome.shredded,
            unreadable: outcome.unreadable.length
          },
          value: String(outcome.keys)
        })
      })))
  })).pipe(
    Command.withDescription(
      "Rebuild a projection from the event table (history, or one of yours from --projections), with a progress bar"
    )
  )

/** A migration that ended with keys left in clear (moves that conflicted): exit code 1, after the summary. */
export class SealMigrationUnfinished extends Data.TaggedError("SealMigrationUnfinished")<{
  readonly prefixes: ReadonlyArray<string>
}> {
  override get message() {
    return `keys are left in clear under ${this.prefixes.join(", ")}`
  }
}

const sealMigrate = Command.make("seal-migrate", {
  prefix: Flag.String("prefix").pipe(
    Flag.optional,
    Flag.withDescription("only this one of the configured sealed_prefixes (default: all of them)")
  )
}, ({ prefix }) =>
  withConfiguredStore("use", (config) =>
    Effect.gen(function*() {
      if (config.sealedPrefixes.length === 0) {
        return yield* new InputInvalid({
          input: "seal-migrate",
          reason: "no sealed_prefixes are configured: name the prefixes to seal in storage.sealed_prefixes first"
        })
      }
      const summary = yield* SealMigration.run(config.sealedPrefixes, {
        prefixes: Option.isSome(prefix) ? [prefix.value] : undefined,
        // Keys move once processes configured without the prefixes have lost their layout lease.
        lease: StoreConfig.layoutLeaseOf(config),
        onProgress: (progress) =>
          Effect.sync(() =>
            void process.stderr.write(
              `\r${progress.prefix}: ${progress.moved}/${progress.found} keys sealed` +
                (progress.failed > 0 ? `, ${progress.failed} could not be moved` : "") +
                (progress.done === undefined ? "" : "\n")
            )
          )
      })
      const left = summary.filter((entry) => !entry.done)
      yield* emit({
        text: summary.map((entry) =>
          `${entry.prefix}: sealed ${entry.moved} of ${entry.found} keys found in clear; ` +
          (entry.done ? "nothing left in clear" : `${entry.failed} could not be moved (see the log): run it again`)
        ).join("\n"),
        json: { prefixes: summary, done: left.length === 0 },
        value: String(summary.reduce((sum, entry) => sum + entry.moved, 0))
      })
      if (left.length > 0) return yield* new SealMigrationUnfinished({ prefixes: left.map((entry) => entry.prefix) })
    }))).pipe(
    Command.withDescription(
      "Seal keys written in clear under the configured sealed_prefixes, in place, while the store serves " +
        "(resumable: run it again after an interruption)"
    )
  )

/** The commands that run or maintain the store. */
export const adminCommands = [worker, demoCommand, rewrap, shred, compact, rebuild, sealMigrate] as const
