/**
 * `dynastate audit` as a process against DynamoDB Local: a clean store exits 0 and writes a signed checkpoint; once
 * a key's newest event is deleted by hand (the seqs stay dense, so only the checkpoint shows it) the audit names
 * the key and seq and exits 7, in text and in JSON; an edited checkpoint is refused with exit 7 before any read.
 */
import { DeleteItemCommand } from "@aws-sdk/client-dynamodb"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as SortKey from "../../src/domain/SortKey.ts"
import { Attr } from "../../src/infra/EventRecord.ts"
import { endpoint, freshTableName, makeClient } from "../support/TestStore.ts"
import { runCli } from "./cliProcess.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-cli-audit-"))
const client = makeClient()
afterAll(() => {
  client.destroy()
  fs.rmSync(dir, { recursive: true, force: true })
})

const env = { DYNASTATE_KEYRING_FILE: path.join(dir, "keyring.key"), XDG_DATA_HOME: path.join(dir, "data") }
const table = freshTableName("cli-audit")
const cli = (args: ReadonlyArray<string>) => runCli(["--endpoint", endpoint(), "--table", table, ...args], { env })

describe("dynastate audit", () => {
  beforeAll(async () => {
    expect((await cli(["provision"])).code).toBe(0)
    expect((await cli(["init"])).code).toBe(0)
    for (const value of ["one", "two", "three"]) expect((await cli(["put", "/app/a", value])).code).toBe(0)
    expect((await cli(["put", "/app/b", "bee"])).code).toBe(0)
  }, 120_000)

  it("audits clean, then finds the deleted newest event against its checkpoint and exits 7", async () => {
    const checkpoint = path.join(dir, "store.checkpoint")
    const clean = await cli(["audit", "--checkpoint-out", checkpoint])
    expect(clean.code).toBe(0)
    expect(clean.stdout).toContain("2 keys, 4 live events, 0 history copies, 0 graves")
    expect(clean.stdout).toContain(`wrote signed checkpoint ${checkpoint} (2 keys)`)
    expect(clean.stdout).toContain("no tampering found")
    expect((fs.statSync(checkpoint).mode & 0o777).toString(8)).toBe("600")

    await client.send(
      new DeleteItemCommand({
        TableName: table,
        Key: { [Attr.partition]: { S: "default" }, [Attr.sort]: { B: SortKey.encode("/app/a", 3) } }
      })
    )
    // The table alone cannot tell: seqs 1 and 2 are dense.
    expect((await cli(["audit"])).code).toBe(0)

    const caught = await cli(["audit", "--checkpoint", checkpoint])
    expect(caught.code).toBe(7)
    expect(caught.stdout).toContain("signature verified")
    expect(caught.stdout).toMatch(
      /FAIL rolled-back +"\/app\/a" @3: the checkpoint has seq 3; the key now reads as its older event 2/
    )
    expect(caught.stderr).toContain("AuditFailed")
    expect(caught.stderr).toContain("rolled-back")

    const asJson = await cli(["audit", "--checkpoint", checkpoint, "-o", "json"])
    expect(asJson.code).toBe(7)
    const report = JSON.parse(asJson.stdout) as Record<string, unknown>
    expect(report).toMatchObject({
      ok: false,
      tampering: 1,
      keys: 2,
      counts: { "rolled-back": 1 },
      findings: [{ kind: "rolled-back", key: "/app/a", seq: 3 }]
    })
    expect(JSON.parse(asJson.stderr.trim())).toMatchObject({ error: "AuditFailed", exitCode: 7 })
  }, 120_000)

  it("refuses an edited checkpoint with exit 7, and a file that is no checkpoint with exit 2", async () => {
    const checkpoint = path.join(dir, "edited.checkpoint")
    expect((await cli(["audit", "--checkpoint-out", checkpoint])).code).toBe(0)
    const file = JSON.parse(fs.readFileSync(checkpoint, "utf8")) as { keys: Array<[string, number, string]> }
    fs.writeFileSync(checkpoint, JSON.stringify({ ...file, keys: file.keys.map(([key, , rev]) => [key, 1, rev]) }))
    const forged = await cli(["audit", "--checkpoint", checkpoint])
    expect(forged.code).toBe(7)
    expect(forged.stdout).toBe("")
    expect(forged.stderr).toContain("CheckpointInvalid")
    expect(forged.stderr).toContain("(forged)")

    const notOne = path.join(dir, "not-a.checkpoint")
    fs.writeFileSync(notOne, "{}")
    const malformed = await cli(["audit", "--checkpoint", notOne])
    expect(malformed.code).toBe(2)
    expect(malformed.stderr).toContain("(malformed)")
  }, 120_000)
})
