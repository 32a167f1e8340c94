/**
 * `dynastate partition-migrate [--begin]`: changes the namespace's partition layout to the configured
 * `partitioned_prefixes` while stores serve (see `PartitionMigration`). Progress goes to stderr, the summary to
 * stdout; exit 1 (`PartitionMigrationUnfinished`) when keys are left in old partitions, after the summary.
 */
import { Data, Effect, Layer } from "effect"
import { Command, Flag } from "effect/cli"
import * as Partitioning from "../../../domain/Partitioning.ts"
import * as Retention from "../../../domain/Retention.ts"
import { layoutLeaseOf } from "../../../infra/StoreConfig.ts"
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
      "only record the change (stores with the new layout may open, stores with the old one are refused) and wait " +
        "until processes with the old layout have lost their layout lease; move nothing"
    )
  )
}, ({ begin }) =>
  Effect.gen(function*() {
    const { config } = yield* loadConfig
    const target = Partitioning.describe(config.partitionedPrefixes)
    const lease = layoutLeaseOf(config)
    const waiting = (millis: number) =>
      `[${target}]: waiting ${Retention.formatDuration(millis)} for processes with the old layout to lose their ` +
      `layout lease (layout_lease ${Retention.formatDuration(config.layoutLeaseMillis)}) before keys move\n`
    const program = Effect.gen(function*() {
      if (begin) {
        const transition = yield* PartitionMigration.begin
        // Stores with the new layout open (and keys move) once the old layout's processes have lost their lease.
        const waitMillis = transition === undefined ? 0 : yield* PartitionMigration.untilMoves({ lease })
        if (waitMillis > 0) {
          yield* Effect.sync(() => void process.stderr.write(waiting(waitMillis)))
          yield* Effect.sleep(waitMillis)
        }
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
        lease,
        onProgress: (progress) =>
          Effect.sync(() =>
            void process.stderr.write(
              progress.waitMillis !== undefined
                ? waiting(progress.waitMillis)
                : `\r[${target}]: ${progress.moved}/${progress.found} keys moved` +
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
        "record the change, wait until processes with the old layout have lost their layout lease, move every key " +
        "whose partition changes, settle the layout (resumable: run it again after an interruption). Stop the " +
        "processes with the old layout first"
    )
  )

/** The layout migration command. */
export const partitionCommands = [partitionMigrate] as const
