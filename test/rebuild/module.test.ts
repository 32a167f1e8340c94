/**
 * Loading user projection modules (`--projections <file>`): a module written
 * to a temporary directory, importing the repository's sources by absolute
 * path, is loaded, checked and run with the store's services; a missing
 * file, a missing export, an export of the wrong shape, projections of the
 * wrong shape and a failing module each give their typed error naming the file.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { fromClients, StreamsApi } from "../../src/infra/streams/StreamsApi.ts"
import { Store } from "../../src/programs/store/Store.ts"
import { defaultStoreOptions } from "../../src/programs/store/Store.ts"
import * as ProjectionModule from "../../src/programs/worker/ProjectionModule.ts"
import * as Rebuild from "../../src/programs/worker/Rebuild.ts"
import { eventTableLayer, makeClient, provisionTable, streamsConfig } from "../support/TestStore.ts"
import type { TestTable } from "../support/TestStore.ts"
import { bytes } from "./support.ts"

const repo = path.resolve(import.meta.dirname, "../..")
const effectUrl = pathToFileURL(path.join(repo, "node_modules/effect/dist/index.js")).href
const source = (file: string) => pathToFileURL(path.join(repo, "src", file)).href

let client: DynamoDBClient
let table: TestTable
let dir: string
beforeAll(async () => {
  client = makeClient()
  table = await Effect.runPromise(provisionTable(client))
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-projections-"))
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ type: "module" }))
})
afterAll(() => {
  client.destroy()
  fs.rmSync(dir, { recursive: true, force: true })
})

/** Writes a module into the temporary directory (after the imports every module gets) and returns its file name. */
const writeModule = (name: string, body: string): string => {
  const file = `${name}-${randomUUID().slice(0, 8)}.ts`
  fs.writeFileSync(
    path.join(dir, file),
    `import { Effect } from ${JSON.stringify(effectUrl)}\n` +
      `import * as Projection from ${JSON.stringify(source("programs/worker/Projection.ts"))}\n` +
      `import { EventTable } from ${JSON.stringify(source("infra/EventTable.ts"))}\n` +
      body
  )
  return file
}

/** Everything `StoreLive.layer` provides, on a namespace of its own of the test table. */
const storeServices = (location: TestTable) =>
  Store.layer(defaultStoreOptions).pipe(
    Layer.provideMerge(Layer.succeed(StreamsApi, fromClients(client, new DynamoDBStreamsClient(streamsConfig())))),
    Layer.provideMerge(eventTableLayer(location, { client })),
    Layer.orDie
  )

/** Loads a module from the temporary directory and runs it with the store's services. */
const loadAndRun = (file: string, location: TestTable = { table: table.table, namespace: "module-test" }) =>
  Effect.gen(function*() {
    const make = yield* ProjectionModule.load(file, dir)
    return yield* make.pipe(Effect.provide(storeServices(location)))
  })

describe("ProjectionModule.load", () => {
  it.live("loads a default export that uses the store's services, and its projections rebuild from the table", () =>
    Effect.gen(function*() {
      const marker = `seen-${randomUUID()}`
      const file = writeModule(
        "valid",
        `const seen = ((globalThis as any)[${JSON.stringify(marker)}] ??= [])\n` +
          `export default Effect.gen(function*() {\n` +
          `  const table = yield* EventTable\n` +
          `  return [Projection.make({ name: "notes@" + table.location.namespace, prefixes: ["/notes/"],\n` +
          `    apply: (event) => Effect.sync(() => void seen.push(event.key + "@" + event.seq + " " + event.op)) })]\n` +
          `})\n`
      )
      const location = { table: table.table, namespace: `mod-${randomUUID().slice(0, 8)}` }
      const services = yield* Layer.build(storeServices(location))
      const store = Context.get(services, Store)
      yield* store.put({ key: "/notes/a", value: bytes("a1") })
      yield* store.put({ key: "/notes/a", value: bytes("a2") })
      yield* store.put({ key: "/notes/b", value: bytes("b1") })
      yield* store.delete("/notes/b")
      yield* store.put({ key: "/other", value: bytes("not covered") })

      const make = yield* ProjectionModule.load(path.join(dir, file))
      const projections = yield* make.pipe(Effect.provide(services))
      expect(projections.map((projection) => [projection.name, projection.prefixes])).toEqual([[
        `notes@${location.namespace}`,
        ["/notes/"]
      ]])
      const projection = yield* Rebuild.byName(projections, `notes@${location.namespace}`)
      const outcome = yield* Rebuild.rebuild(projection).pipe(Effect.provide(services))
      expect(outcome).toEqual({ _tag: "Replayed", keys: 2, shredded: 0, unreadable: [] })
      expect((globalThis as Record<string, unknown>)[marker]).toEqual(["/notes/a@2 put", "/notes/b@2 delete"])
    }))

  it.live("takes the named export `projections` when there is no default, and a plain array of projections", () =>
    Effect.gen(function*() {
      const named = writeModule(
        "named",
        `export const projections = Effect.succeed([Projection.make({ name: "named", prefixes: [], apply: () => Effect.void })])\n`
      )
      expect((yield* loadAndRun(named)).map((projection) => projection.name)).toEqual(["named"])
      const array = writeModule(
        "array",
        `export default [Projection.make({ name: "one", prefixes: ["/1/"], apply: () => Effect.void }),\n` +
          `  { name: "two", prefixes: ["/2/"], apply: () => Effect.void, reset: Effect.void }]\n`
      )
      expect((yield* loadAndRun(array)).map((projection) => projection.name)).toEqual(["one", "two"])
    }))

  it.live("fails with ProjectionModuleInvalid, naming the file, when the file or its export is missing or of the wrong shape", () =>
    Effect.gen(function*() {
      const invalid = (file: string) =>
        Effect.flip(loadAndRun(file)).pipe(Effect.map((error) => {
          expect(error._tag).toBe("ProjectionModuleInvalid")
          expect(error.file).toBe(path.join(dir, file))
          expect(error.message).toContain(path.join(dir, file))
          return error.message
        }))
      expect(yield* invalid("no-such-module.ts")).toContain("no such file")
      expect(yield* invalid(writeModule("missing", `export const other = Effect.succeed([])\n`)))
        .toContain("has neither a default export nor an export named projections")
      expect(yield* invalid(writeModule("string", `export default "my projections"\n`)))
        .toContain("its default export is not an Effect producing projections")
      expect(
        yield* invalid(
          writeModule(
            "object",
            `export default Effect.succeed({ name: "x", prefixes: [], apply: () => Effect.void })\n`
          )
        )
      )
        .toContain("its projections are not an array")
      expect(
        yield* invalid(
          writeModule(
            "prefixes",
            `export default Effect.succeed([{ name: "x", prefixes: "/x/", apply: () => Effect.void }])\n`
          )
        )
      )
        .toContain(`projection 0 "x" has no prefixes`)
      expect(
        yield* invalid(
          writeModule(
            "apply",
            `export default [Projection.make({ name: "ok", prefixes: [], apply: () => Effect.void }), { name: "y", prefixes: [] }]\n`
          )
        )
      )
        .toContain(`projection 1 "y" has no apply function`)
      expect(
        yield* invalid(
          writeModule(
            "rebuild",
            `export default [{ name: "z", prefixes: [], apply: () => Effect.void, rebuild: () => Effect.void }]\n`
          )
        )
      )
        .toContain(`"z" has a rebuild that is not an Effect`)
      expect(yield* invalid(writeModule("unnamed", `export default [{ prefixes: [], apply: () => Effect.void }]\n`)))
        .toContain("projection 0 has no name")
      expect(
        yield* invalid(
          writeModule(
            "twice",
            `const p = { name: "same", prefixes: [], apply: () => Effect.void }\nexport default [p, { ...p }]\n`
          )
        )
      )
        .toContain(`two projections are named "same"`)
      expect(yield* invalid(writeModule("syntax", `export default [\n`))).toContain("cannot be imported")
    }))

  it.live("fails with ProjectionModuleFailed when the module's Effect fails or throws", () =>
    Effect.gen(function*() {
      const failing = writeModule(
        "failing",
        `export default Effect.fail({ _tag: "NoDatabase", message: "the index database is down" })\n`
      )
      const failed = yield* Effect.flip(loadAndRun(failing))
      expect(failed).toMatchObject({
        _tag: "ProjectionModuleFailed",
        file: path.join(dir, failing),
        reason: "the index database is down"
      })
      const throwing = writeModule(
        "throwing",
        `export default Effect.sync(() => { throw new Error("bug in the module") })\n`
      )
      expect(yield* Effect.flip(loadAndRun(throwing))).toMatchObject({
        _tag: "ProjectionModuleFailed",
        reason: "bug in the module"
      })
    }))
})
