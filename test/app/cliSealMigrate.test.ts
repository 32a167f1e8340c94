/**
 * `dynastate seal-migrate` as a process against DynamoDB Local: keys written in clear before a prefix was sealed are
 * read through the sealed configuration at once, the command seals them with progress on stderr and a final line on
 * stdout, and a second run finds nothing left. Without sealed prefixes configured it refuses, changing nothing.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { endpoint, freshTableName } from "../support/TestStore.ts"
import { runCli } from "./cliProcess.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-cli-seal-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

// A short layout lease and write timeout: the run waits them out after recording the sealed prefix.
const base = {
  DYNASTATE_KEYRING_FILE: path.join(dir, "keyring.key"),
  XDG_DATA_HOME: path.join(dir, "data"),
  DYNASTATE_LAYOUT_LEASE: "1s",
  DYNASTATE_WRITE_TIMEOUT: "1s"
}
const sealedEnv = { ...base, DYNASTATE_SEALED_PREFIXES: "/tokens/:rest" }
const table = freshTableName("cli-seal")
const cli = (args: ReadonlyArray<string>, env: Record<string, string> = base) =>
  runCli(["--endpoint", endpoint(), "--table", table, ...args], { env })

describe("dynastate seal-migrate", () => {
  it("seals the clear keys of a configured prefix, and says when nothing is left", async () => {
    expect((await cli(["init"])).code).toBe(0)
    for (const name of ["alpha", "beta", "gamma"]) {
      expect((await cli(["put", `/tokens/${name}-secret`, `v-${name}`])).code).toBe(0)
    }
    const refused = await cli(["seal-migrate"])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain("no sealed_prefixes are configured")

    // Read through the sealed configuration before the migration: the clear key is still found.
    const before = await cli(["get", "/tokens/beta-secret"], sealedEnv)
    expect(before.code).toBe(0)
    expect(before.stdout).toContain("v-beta")

    const run = await cli(["seal-migrate"], sealedEnv)
    expect(run.code).toBe(0)
    expect(run.stderr).toContain("/tokens/: 3/3 keys sealed")
    expect(run.stdout.trim()).toBe("/tokens/: sealed 3 of 3 keys found in clear; nothing left in clear")
    const after = await cli(["get", "/tokens/gamma-secret"], sealedEnv)
    expect(after.stdout).toContain("v-gamma")

    const again = await cli(["seal-migrate", "-o", "json"], sealedEnv)
    expect(again.code).toBe(0)
    expect(JSON.parse(again.stdout)).toEqual({
      prefixes: [{ prefix: "/tokens/", found: 0, moved: 0, failed: 0, done: true }],
      done: true
    })
    const unknown = await cli(["seal-migrate", "--prefix", "/users/"], sealedEnv)
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain("/users/ is not a configured sealed prefix")
  }, 120_000)
})
