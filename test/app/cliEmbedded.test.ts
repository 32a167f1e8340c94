/**
 * The CLI on the embedded store, as a user runs it beside `npm start`: `dynastate local` keeps the data
 * directory's DynamoDB Local up, other CLI processes join it (no JVM start of their own), and it stops once the
 * last one has left.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import * as LocalRegistry from "../../src/infra/local/LocalRegistry.ts"
import { cliCwd, cliEntry, cliEnv, nodeBinary, runCli } from "./cliProcess.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-cli-embedded-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
const dataDir = path.join(dir, "data")
const env = { DYNASTATE_DATA_DIR: dataDir, DYNASTATE_LOCAL_IDLE_MS: "500", XDG_DATA_HOME: path.join(dir, "xdg") }

const until = async (condition: () => boolean, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return true
}

describe("dynastate CLI on the embedded store", () => {
  it("local keeps one DynamoDB Local that every CLI call shares, and it stops after the last one leaves", async () => {
    const local = spawn(nodeBinary, [cliEntry, "local", "-o", "json"], { env: cliEnv(env), cwd: cliCwd })
    let out = ""
    local.stdout.on("data", (chunk: Buffer) => (out += chunk.toString("utf8")))
    const closed = new Promise<number | null>((resolve) => local.once("close", resolve))
    expect(await until(() => out.includes("endpoint"), 90_000)).toBe(true)
    const started = JSON.parse(out.trim()) as { endpoint: string; started: boolean; pid: number }
    expect(started.started).toBe(true)
    expect(LocalRegistry.readRecord(dataDir)).toMatchObject({ endpoint: started.endpoint, keeperPid: started.pid })

    const init = await runCli(["init", "-o", "json"], { env })
    expect(init.code).toBe(0)
    expect(JSON.parse(init.stdout)).toMatchObject({ embedded: true, keyFile: path.join(dataDir, "keyring.key") })
    expect((await runCli(["put", "/e/k", "shared"], { env })).code).toBe(0)
    const get = await runCli(["get", "/e/k", "-o", "value", "--log-level", "info"], { env })
    expect(get).toMatchObject({ code: 0, stdout: "shared" })
    expect(get.stderr).toContain(`embedded DynamoDB Local on ${started.endpoint} (shared`)
    expect(LocalRegistry.readRecord(dataDir)?.keeperPid).toBe(started.pid) // nobody started another

    // A second `local` joins rather than starting another.
    const second = await new Promise<string>((resolve) => {
      const child = spawn(nodeBinary, [cliEntry, "local", "-o", "json"], { env: cliEnv(env), cwd: cliCwd })
      child.stdout.on("data", (chunk: Buffer) => {
        child.kill("SIGINT")
        resolve(chunk.toString("utf8"))
      })
    })
    expect(JSON.parse(second.trim())).toMatchObject({ endpoint: started.endpoint, started: false })

    local.kill("SIGINT")
    expect(await closed).not.toBeNull()
    expect(await until(() => LocalRegistry.readRecord(dataDir) === undefined, 20_000)).toBe(true)
    expect(await until(() => !LocalRegistry.isAlive(started.pid), 20_000)).toBe(true)
  }, 150_000)
})
