/**
 * The CLI end to end, as a separate Node process on the test DynamoDB Local
 * (configured through `DYNASTATE_*`): `rebuild <name> --projections <module>`
 * replays a user projection with a progress bar, an unknown name lists the
 * names there are, `rebuild history` compacts, and `worker --projections`
 * runs the module's projections on new events.
 */
import { PutItemCommand } from "@aws-sdk/client-dynamodb"
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { Keyring } from "../../src/infra/crypto/Keyring.ts"
import * as RawAesKeyring from "../../src/infra/crypto/RawAesKeyring.ts"
import { endpoint, makeClient, openStore, provisionTable } from "../support/TestStore.ts"
import type { TestTable } from "../support/TestStore.ts"
import { eventually } from "../worker/support.ts"
import { bytes } from "./support.ts"

const repo = path.resolve(import.meta.dirname, "../..")
const keyBase64 = randomBytes(32).toString("base64")

let client: DynamoDBClient
let table: TestTable
let dir: string
beforeAll(async () => {
  client = makeClient()
  table = await Effect.runPromise(provisionTable(client))
  // As in test/worker/support.ts: a first record on the table's stream before any reader takes an iterator.
  await client.send(
    new PutItemCommand({ TableName: table.table, Item: { pk: { S: "warm-up" }, sk: { B: new Uint8Array([0]) } } })
  )
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-cli-"))
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ type: "module" }))
})
afterAll(() => {
  client.destroy()
  fs.rmSync(dir, { recursive: true, force: true })
})

/** A namespace of the test table, a store on it with the key the CLI is given, and a module recording into `log`. */
const setUp = Effect.gen(function*() {
  const location = { table: table.table, namespace: `cli-${randomUUID().slice(0, 8)}` }
  const key = yield* RawAesKeyring.keyFromBase64(Redacted.make(keyBase64))
  const store = yield* openStore(location, { client, keyring: Layer.succeed(Keyring, RawAesKeyring.make([key])) })
  const log = path.join(dir, `${location.namespace}.log`)
  const module = path.join(dir, `${location.namespace}.ts`)
  const url = (file: string) => JSON.stringify(pathToFileURL(file).href)
  fs.writeFileSync(
    module,
    `import * as fs from "node:fs"\n` +
      `import { Effect } from ${url(path.join(repo, "node_modules/effect/dist/index.js"))}\n` +
      `import * as Projection from ${url(path.join(repo, "src/programs/worker/Projection.ts"))}\n` +
      `export default Effect.succeed([Projection.make({ name: "files", prefixes: ["/files/"],\n` +
      `  apply: (event) => Effect.sync(() => fs.appendFileSync(${
        JSON.stringify(log)
      }, event.key + "@" + event.seq + " " + event.op + "\\n")) })])\n`
  )
  const { DYNASTATE_CONFIG: _file, ...inherited } = process.env
  const env = {
    ...inherited,
    DYNASTATE_ENDPOINT: endpoint(),
    DYNASTATE_REGION: "us-east-1",
    DYNASTATE_TABLE_NAME: location.table,
    DYNASTATE_NAMESPACE: location.namespace,
    DYNASTATE_KEYRING_KEY: keyBase64
  }
  const lines = () => (fs.existsSync(log) ? fs.readFileSync(log, "utf8").split("\n").filter((line) => line !== "") : [])
  return { store, module, env, lines }
})

/** Starts the CLI with `args`. */
const start = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv): ChildProcess =>
  spawn(path.join(repo, "node_modules/.bin/node"), [path.join(repo, "src/programs/app/cli.ts"), ...args], {
    cwd: dir,
    env
  })

/** Runs the CLI to its end: exit code, stdout and stderr. */
const cli = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv) =>
  Effect.promise(() =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = start(args, env)
      let stdout = ""
      let stderr = ""
      child.stdout!.on("data", (chunk) => (stdout += chunk))
      child.stderr!.on("data", (chunk) => (stderr += chunk))
      child.on("close", (code) => resolve({ code, stdout, stderr }))
    })
  )

describe("dynastate CLI with user projections", () => {
  it.live(
    "rebuild <name> --projections replays a user projection; an unknown name lists the names; rebuild history compacts",
    () =>
      Effect.gen(function*() {
        const { store, module, env, lines } = yield* setUp
        yield* store.put({ key: "/files/a", value: bytes("a1") })
        yield* store.put({ key: "/files/a", value: bytes("a2") })
        yield* store.put({ key: "/files/b", value: bytes("b1") })
        yield* store.delete("/files/b")
        yield* store.put({ key: "/elsewhere", value: bytes("x") })

        const rebuilt = yield* cli(["rebuild", "--projections", module, "files"], env)
        expect(rebuilt.stdout).toContain("rebuilt files: replayed 2 keys")
        expect(rebuilt.code).toBe(0)
        expect(rebuilt.stderr).toContain("] 2/2 keys")
        expect(lines()).toEqual(["/files/a@2 put", "/files/b@2 delete"])
        expect(rebuilt.stdout + rebuilt.stderr).not.toContain(keyBase64)

        const unknown = yield* cli(["rebuild", "--projections", module, "nope"], env)
        expect(unknown.code).not.toBe(0)
        expect(unknown.stdout + unknown.stderr).toContain(`no projection named "nope"; available: history, files`)

        const history = yield* cli(["rebuild", "history"], env)
        expect(history.stdout).toContain("compacted 3 keys")
        expect(history.code).toBe(0)
      }),
    60_000
  )

  it.live(
    "worker --projections runs the module's projections on new events, and stops on SIGTERM",
    () =>
      Effect.gen(function*() {
        const { store, module, env, lines } = yield* setUp
        const worker = start(["worker", "--projections", module], env)
        let output = ""
        worker.stdout!.on("data", (chunk) => (output += chunk))
        worker.stderr!.on("data", (chunk) => (output += chunk))
        const exited = new Promise<number | null>((resolve) => worker.on("close", resolve))
        yield* Effect.addFinalizer(() => Effect.sync(() => worker.exitCode === null && worker.kill("SIGKILL")))
        yield* eventually(
          "the worker started",
          Effect.sync(() => expect(output).toContain("projection worker on table")),
          30_000
        )
        yield* eventually(
          "the worker applies new events to the module's projection",
          Effect.gen(function*() {
            if (lines().length === 0) yield* store.put({ key: "/files/live", value: bytes(`at ${Date.now()}`) })
            expect(lines().some((line) => line.startsWith("/files/live@"))).toBe(true)
          }),
          40_000,
          1000
        )
        worker.kill("SIGTERM")
        expect(yield* Effect.promise(() => exited)).not.toBeNull()
        expect(output).not.toContain(keyBase64)
      }),
    90_000
  )
})
