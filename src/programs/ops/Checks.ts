/**
 * The checks `doctor` reports (see `Doctor`): each with a verdict, what was found and, unless it passed, one sentence
 * saying how to fix it.
 */

/** The verdict of one check. */
export type Verdict = "pass" | "fail" | "warn" | "skip"

/** One check: what was checked, what was found and, unless it passed, how to fix it. */
export interface Check {
  readonly id: string
  readonly verdict: Verdict
  readonly detail: string
  readonly fix: string | undefined
}

/** A check that passed. */
export const pass = (id: string, detail: string): Check => ({ id, verdict: "pass", detail, fix: undefined })

/** A check that failed, with its fix. */
export const fail = (id: string, detail: string, fix: string): Check => ({ id, verdict: "fail", detail, fix })

/** A check that passed with a reservation, with what would lift it. */
export const warn = (id: string, detail: string, fix: string): Check => ({ id, verdict: "warn", detail, fix })

/** A check not made, saying why. */
export const skip = (id: string, detail: string): Check => ({ id, verdict: "skip", detail, fix: undefined })
