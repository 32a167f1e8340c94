/**
 * User projections for the CLI (`dynastate worker --projections <file>`,
 * `dynastate rebuild <name> --projections <file>`): a module whose default
 * export (or named export `projections`) is an Effect producing the
 * projections, which may use the store's services, so it can build index
 * views, replicated views and `Projection.make` projections:
 *
 * ```ts
 * import { Effect } from "effect"
 * import { IndexView } from "dynastate"
 *
 * export default Effect.gen(function*() {
 *   const byEmail = yield* IndexView.make({ name: "by-email", prefix: "/users/", indexOf })
 *   return [byEmail.projection]
 * })
 * ```
 *
 * A plain array of projections is accepted as well.
 */
import { Effect, Schema } from "effect"
import type { Layer, Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import type * as StoreLive from "../app/StoreLive.ts"
import type { Projection } from "./Projection.ts"
import { duplicateName } from "./Projection.ts"

/** The services a projection module may use: everything `StoreLive.layer(config)` provides. */
export type StoreServices = Layer.Success<ReturnType<typeof StoreLive.layer>>

/** The loaded module's projections, to run with the store's services (in the scope they should live in). */
export type ProjectionsEffect = Effect.Effect<
  ReadonlyArray<Projection<unknown>>,
  ProjectionModuleFailed | ProjectionModuleInvalid,
  StoreServices | Scope.Scope
>

/** The module cannot be used: missing, not importable, or not exporting projections. */
export class ProjectionModuleInvalid extends Schema.TaggedError<ProjectionModuleInvalid>()("ProjectionModuleInvalid", {
  file: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `projection module ${this.file}: ${this.reason}`
  }
}

/** The module's Effect failed (or died) while making its projections. */
export class ProjectionModuleFailed extends Schema.TaggedError<ProjectionModuleFailed>()("ProjectionModuleFailed", {
  file: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `projection module ${this.file} failed to make its projections: ${this.reason}`
  }
}

const describe = (failure: unknown): string => {
  const message = (failure as { message?: unknown })?.message
  if (typeof message === "string" && message !== "") return message
  const tag = (failure as { _tag?: unknown })?._tag
  return typeof tag === "string" ? tag : String(failure)
}

const isOptionalEffect = (value: unknown) => value === undefined || Effect.isEffect(value)

/** Why `value` is not a projection, or `undefined` if it is one. */
const projectionProblem = (value: unknown): string | undefined => {
  if (typeof value !== "object" || value === null) return "is not an object"
  const candidate = value as Record<string, unknown>
  if (typeof candidate.name !== "string" || candidate.name === "") return "has no name (a non-empty string)"
  if (!Array.isArray(candidate.prefixes) || !candidate.prefixes.every((prefix) => typeof prefix === "string")) {
    return `"${candidate.name}" has no prefixes (an array of strings, empty for every key)`
  }
  if (typeof candidate.apply !== "function") return `"${candidate.name}" has no apply function`
  if (!isOptionalEffect(candidate.rebuild)) return `"${candidate.name}" has a rebuild that is not an Effect`
  if (!isOptionalEffect(candidate.reset)) return `"${candidate.name}" has a reset that is not an Effect`
  return undefined
}

/** Checks what a module produced: an array of well-formed projections with distinct names. */
export const validateProjections = (
  file: string,
  value: unknown
): Effect.Effect<ReadonlyArray<Projection<unknown>>, ProjectionModuleInvalid> => {
  const invalid = (reason: string) => Effect.fail(new ProjectionModuleInvalid({ file, reason }))
  if (!Array.isArray(value)) return invalid("its projections are not an array (ReadonlyArray<Projection>)")
  for (const [i, entry] of value.entries()) {
    const problem = projectionProblem(entry)
    if (problem !== undefined) return invalid(`projection ${i} ${problem}`)
  }
  const projections = value as ReadonlyArray<Projection<unknown>>
  const duplicate = duplicateName(projections)
  return duplicate === undefined ? Effect.succeed(projections) : invalid(`two projections are named "${duplicate}"`)
}

/**
 * Imports the projection module at `file` (relative to `cwd`) and checks its export: the default export,
 * else the named export `projections`, must be an Effect producing projections (or an array of them).
 * Returns the Effect that makes them, which checks what it produced.
 */
export const load = Effect.fn("ProjectionModule.load")(function*(
  file: string,
  cwd: string = process.cwd()
): Effect.fn.Return<ProjectionsEffect, ProjectionModuleInvalid> {
  const absolute = path.resolve(cwd, file)
  const invalid = (reason: string) => new ProjectionModuleInvalid({ file: absolute, reason })
  if (!fs.existsSync(absolute)) return yield* invalid("no such file")
  const exports = yield* Effect.tryPromise({
    try: () => import(pathToFileURL(absolute).href) as Promise<Record<string, unknown>>,
    catch: (cause) => invalid(`cannot be imported: ${describe(cause)}`)
  })
  const name = exports.default !== undefined ? "default" : exports.projections !== undefined ? "projections" : undefined
  if (name === undefined) return yield* invalid("has neither a default export nor an export named projections")
  const exported = exports[name]
  if (Array.isArray(exported)) {
    const projections = yield* validateProjections(absolute, exported)
    return Effect.succeed(projections)
  }
  if (!Effect.isEffect(exported)) {
    return yield* invalid(
      `its ${name} export is not an Effect producing projections (nor an array of projections)` +
        " — is it built with the same effect package as dynastate?"
    )
  }
  const make = exported as Effect.Effect<unknown, unknown, StoreServices | Scope.Scope>
  return make.pipe(
    Effect.mapError((failure) => new ProjectionModuleFailed({ file: absolute, reason: describe(failure) })),
    Effect.catchDefect((defect) =>
      Effect.fail(new ProjectionModuleFailed({ file: absolute, reason: describe(defect) }))
    ),
    Effect.flatMap((value) => validateProjections(absolute, value))
  )
})
