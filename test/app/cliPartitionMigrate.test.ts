/**
 * `dynastate partition-migrate` as a process against DynamoDB Local: keys written in one partition are refused to a
 * store configured with a bucketed prefix until the change is recorded (`--begin`), read through the new layout at
 * once after that, moved by the command with progress on stderr and a final line on stdout; a second run finds
 * nothing left, and the old layout is refused from the moment the change was recorded.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { endpoint, freshTableName } from "../support/TestStore.ts"
import { runCli } from "./cliProcess.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-cli-pmig-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const base = { DYNASTATE_KEYRING_FILE: path.join(dir, "keyring.key"), XDG_DATA_HOME: path.join(dir, "data") }
// A short layout lease: on DynamoDB Local on this machine, keys move 1 s + 1 s (write timeout) after the record.
const bucketed = {
  ...base,
  DYNASTATE_PARTITIONED_PREFIXES: "/nodes/:nodes:4",
  DYNASTATE_LAYOUT_LEASE: "1s",
  DYNASTATE_WRITE_TIMEOUT: "1s"
}
const table = freshTableName("cli-pmig")
const cli = (args: ReadonlyArray<string>, env: Record<string, string> = base) =>
  runCli(["--endpoint", endpoint(), "--table", table, ...args], { env })

describe("dynastate partition-migrate", () => {
  it("records the change, moves the keys with progress, settles the layout and refuses the old one", async () => {
    expect((await cli(["init"])).code).toBe(0)
    for (const name of ["alpha", "beta", "gamma"]) {
      expect((await cli(["put", `/nodes/${name}`, `v-${name}`])).code).toBe(0)
    }
    const early = await cli(["get", "/nodes/beta"], bucketed)
    expect(early.code).not.toBe(0)
    expect(early.stderr).toContain("already holds keys under /nodes/")

    const begun = await cli(["partition-migrate", "--begin"], bucketed)
    expect(begun.code).toBe(0)
    expect(begun.stdout).toContain("recorded a migration from [none (one partition)] to [/nodes/ → nodes (4 buckets)]")
    expect(begun.stderr).toMatch(
      /waiting \d+ms for processes with the old layout to lose their layout lease \(layout_lease 1s\) before keys move/
    )
    const old = await cli(["get", "/nodes/beta"])
    expect(old.code).not.toBe(0)
    expect(old.stderr).toContain("only stores with the new layout")
    const during = await cli(["get", "/nodes/beta"], bucketed)
    expect(during.code).toBe(0)
    expect(during.stdout).toContain("v-beta")

    const run = await cli(["partition-migrate"], bucketed)
    expect(run.stderr).toContain("[/nodes/ → nodes (4 buckets)]: 3/3 keys moved")
    expect(run.code).toBe(0)
    expect(run.stdout.trim()).toBe(
      "[/nodes/ → nodes (4 buckets)]: moved 3 of 3 keys found in old partitions; nothing left in old partitions, " +
        "the layout is settled"
    )
    expect((await cli(["get", "/nodes/gamma"], bucketed)).stdout).toContain("v-gamma")
    const again = await cli(["partition-migrate", "-o", "json"], bucketed)
    expect(again.code).toBe(0)
    expect(JSON.parse(again.stdout)).toMatchObject({ found: 0, moved: 0, failed: 0, done: true })
    expect((await cli(["get", "/nodes/gamma"])).code).not.toBe(0)
  }, 120_000)
})
