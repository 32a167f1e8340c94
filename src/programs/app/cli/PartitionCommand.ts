/**
 * `dynastate partition-migrate [--begin]`: changes the namespace's partition layout to the configured
 * `partitioned_prefixes` while stores serve (see `PartitionMigration`). Progress goes to stderr, the summary to
 * stdout; exit 1 (`PartitionMigrationUnfinished`) when keys are left in old partitions, after the summary.
 */
import { Data, Effect, Layer } from "effect"
import { Command, Flag } from "effect/cli"
import * as Partitioning from "../../../domain/Partitioning.ts"
import * as PartitionMigration from "../../store/PartitionMigration.ts"
import * as StoreLive from "../StoreLive.ts"
import { loadConfig } from "./Globals.ts"
import { emit } from "./Output.ts"

/** A migration that ended with keys left in old partitions (moves that conflicted): exit code 1. */
export class PartitionMigrationUnfinished extends Data.TaggedError("PartitionMigrationUnfinished")<{
  readonly failed: number
}> {
  override get message() {
    return `${this.failed} key${this.failed === 1 ? " is" : "s are"} left in old partitions: run it again`
  }
}

const partitionMigrate = Command.make("partition-migrate", {
  begin: Flag.Boolean("begin").pipe(
    Flag.withDefault(false),
    Flag.withDescription(
      "only record the change (stores with the new layout may open, stores with the old one are refused); move nothing"
    )
  )
}, ({ begin }) =>
  Effect.gen(function*() {
    const { config } = yield* loadConfig
    const target = Partitioning.describe(config.partitionedPrefixes)
    const program = Effect.gen(function*() {
      if (begin) {
        const transition = yield* PartitionMigration.begin
        return yield* emit({
          text: transition === undefined
            ? `the namespace is laid out as [${target}] already: nothing to migrate`
            : `recorded a migration from [${Partitioning.describe(transition.from)}] to [${target}]: start the ` +
              "processes with the new layout, then run partition-migrate",
          json: { transition: transition ?? null, done: transition === undefined },
          value: transition === undefined ? "settled" : "begun"
        })
      }
      const last = yield* PartitionMigration.run({
        onProgress: (progress) =>
          Effect.sync(() =>
            void process.stderr.write(
              `\r[${target}]: ${progress.moved}/${progress.found} keys moved` +
                (progress.failed > 0 ? `, ${progress.failed} could not be moved` : "") +
                (progress.done === undefined ? "" : "\n")
            )
          )
      })
      yield* emit({
        text: `[${target}]: moved ${last.moved} of ${last.found} keys found in old partitions; ` +
          (last.done
            ? "nothing left in old partitions, the layout is settled"
            : `${last.failed} could not be moved (see the log): run it again`),
        json: last,
        value: String(last.moved)
      })
      if (!last.done) return yield* new PartitionMigrationUnfinished({ failed: last.failed })
    })
    return yield* program.pipe(
      Effect.provide(Layer.fresh(StoreLive.tableOnlyLayer(config, { createTable: false, createKey: false })))
    )
  })).pipe(
    Command.withDescription(
      "Change the namespace's partition layout to the configured partitioned_prefixes while the store serves: " +
        "record the change, move every key whose partition changes, settle the layout (resumable: run it again " +
        "after an interruption). Stop the processes with the old layout first"
    )
  )

/** The layout migration command. */
export const partitionCommands = [partitionMigrate] as const
