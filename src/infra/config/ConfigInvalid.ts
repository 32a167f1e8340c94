/**
 * The one error a configuration that cannot be used fails with: every problem
 * found, each naming its field (`storage.billing_mode`, an environment
 * variable, the file) and saying in plain words what is wrong and what is
 * allowed. Values are quoted only when short and not secret.
 */
import { Schema } from "effect"

/** One thing wrong with a configuration. */
export const ConfigProblem = Schema.Struct({ field: Schema.String, reason: Schema.String })

/** One thing wrong with a configuration: where, and what. */
export type ConfigProblem = typeof ConfigProblem.Type

/**
 * A configuration that cannot be used. `field` and `reason` are the first
 * problem; `problems`, when present, all of them (a single problem may be
 * made with `field` and `reason` alone).
 */
export class ConfigInvalid extends Schema.TaggedError<ConfigInvalid>()("ConfigInvalid", {
  field: Schema.String,
  reason: Schema.String,
  problems: Schema.optionalKey(Schema.Array(ConfigProblem))
}) {
  /** A configuration error listing every problem found (at least one). */
  static readonly of = (problems: readonly [ConfigProblem, ...Array<ConfigProblem>]): ConfigInvalid =>
    new ConfigInvalid({ field: problems[0].field, reason: problems[0].reason, problems })

  /** Every problem, the first one included. */
  get all(): ReadonlyArray<ConfigProblem> {
    return this.problems ?? [{ field: this.field, reason: this.reason }]
  }

  override get message() {
    const all = this.all
    if (all.length === 1) return `invalid configuration ${all[0]!.field}: ${all[0]!.reason}`
    return `invalid configuration, ${all.length} problems:\n${
      all.map((problem) => `  ${problem.field}: ${problem.reason}`).join("\n")
    }`
  }
}

/** The longest value quoted in an error; longer ones are likelier to be a secret pasted in the wrong place. */
const quotedMaxLength = 32

/** How a bad value is shown in an error: quoted when short, by its length otherwise, never when secret. */
export const showValue = (text: string, secret = false): string =>
  secret ? "the value" : text.length > quotedMaxLength ? `a ${text.length}-character value` : JSON.stringify(text)
