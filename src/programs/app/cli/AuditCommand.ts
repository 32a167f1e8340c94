/**
 * `dynastate audit [--checkpoint FILE] [--checkpoint-out FILE]`: verifies the whole namespace (see `ops/Audit`)
 * and prints its report. Exit 0 when nothing points to tampering, 7 (`AuditFailed`) when something does, like
 * doctor's failed checks; a checkpoint that does not verify is refused before anything is read.
 */
import { Effect, Option, Schema } from "effect"
import { Command, Flag } from "effect/cli"
import * as Audit from "../../ops/Audit.ts"
import { withConfiguredStore } from "./Globals.ts"
import { emit } from "./Output.ts"

/** The audit found evidence of tampering (its report, each finding with key and seq, is on stdout). */
export class AuditFailed extends Schema.TaggedError<AuditFailed>()("AuditFailed", {
  findings: Schema.Number,
  kinds: Schema.Array(Schema.String)
}) {
  override get message() {
    return `the audit found ${this.findings} sign${this.findings === 1 ? "" : "s"} of tampering: ${
      this.kinds.join(", ")
    } (each is printed with its key and seq)`
  }
}

const audit = Command.make("audit", {
  checkpoint: Flag.String("checkpoint").pipe(
    Flag.optional,
    Flag.withDescription("a signed checkpoint to verify and compare every key's newest seq against")
  ),
  checkpointOut: Flag.String("checkpoint-out").pipe(
    Flag.optional,
    Flag.withDescription("write a signed checkpoint of every key's newest seq and revision as found")
  )
}, ({ checkpoint, checkpointOut }) =>
  withConfiguredStore("use", () =>
    Effect.gen(function*() {
      const report = yield* Audit.ofStore({
        checkpoint: Option.getOrUndefined(checkpoint),
        checkpointOut: Option.getOrUndefined(checkpointOut)
      })
      yield* emit({ text: Audit.render(report), json: report, value: report.ok ? "ok" : String(report.tampering) })
      if (!report.ok) {
        const kinds = Object.keys(report.counts).filter((kind) => kind !== "shredded")
        return yield* new AuditFailed({ findings: report.tampering, kinds })
      }
    }))).pipe(
    Command.withDescription(
      "Verify the whole namespace: every event decrypts under its binding, seqs are dense, graves and history " +
        "agree, and (with --checkpoint) no key rolled back since a signed checkpoint; --checkpoint-out writes one. " +
        "Reads only (but makes the checkpoint signing key on first --checkpoint-out). Exit 7 on findings"
    )
  )

/** The audit command. */
export const auditCommands = [audit] as const
