/**
 * The operational commands of the `dynastate` CLI as processes against DynamoDB Local: `status`, `doctor`,
 * `provision`, `backup`/`restore` and `import-teleport`, each with its exit code, what it prints on stdout and on
 * stderr, and `-o json` output that parses. One process run per step where one is enough: table updates on
 * DynamoDB Local are slow.
 */
import { PutItemCommand } from "@aws-sdk/client-dynamodb"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createBareEventTable, createTeleportTable } from "../ops/support.ts"
import { endpoint, freshTableName, makeClient } from "../support/TestStore.ts"
import { runCli } from "./cliProcess.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-cli-ops-"))
const client = makeClient()
afterAll(() => {
  client.destroy()
  fs.rmSync(dir, { recursive: true, force: true })
})

const keyFile = path.join(dir, "keyring.key")
const env = { DYNASTATE_KEYRING_FILE: keyFile, XDG_DATA_HOME: path.join(dir, "data") }
const table = freshTableName("cli-ops")
const cliOn = (tableName: string, args: ReadonlyArray<string>, stdin?: string | Uint8Array) =>
  runCli(["--endpoint", endpoint(), "--table", tableName, ...args], { env, ...(stdin === undefined ? {} : { stdin }) })
const cli = (args: ReadonlyArray<string>, stdin?: string | Uint8Array) => cliOn(table, args, stdin)
const json = (stdout: string) => JSON.parse(stdout) as Record<string, unknown>

describe("dynastate provision and status", () => {
  it(
    "status of a missing table names provision and exits 6; provision plans, creates, then plans nothing",
    async () => {
      const missing = await cli(["status"])
      expect(missing.code).toBe(6)
      expect(missing.stdout).toContain(`${table}: missing (create it with \`dynastate provision\`)`)
      expect(missing.stderr).toContain("TableMissing")

      const plan = await cli(["provision", "--dry-run", "-o", "json"])
      expect(plan.code).toBe(0)
      const planned = json(plan.stdout)
      expect(planned).toMatchObject({ dryRun: true, applied: 0 })
      expect(planned["changes"]).toContainEqual(expect.objectContaining({ table, kind: "create-table" }))
      expect((await cli(["status", "-o", "json"])).code).toBe(6) // the dry run created nothing

      const applied = await cli(["provision", "--deletion-protection"])
      expect(applied.code).toBe(0)
      expect(applied.stdout).toContain(`+ ${table}: create ${table}`)
      expect(applied.stdout).toMatch(/applied \d+ changes/)

      const again = await cli(["provision", "--deletion-protection", "-o", "json"])
      expect(again.code).toBe(0)
      expect(json(again.stdout)).toMatchObject({ dryRun: false, changes: [], applied: 0 })

      const status = await cli(["status", "-o", "json"])
      expect(status.code).toBe(0)
      expect(status.stderr).toBe("")
      expect(json(status.stdout)).toMatchObject({
        table: { name: table, exists: true, deletionProtection: true },
        stream: { enabled: true, viewType: "NEW_IMAGE" },
        ttl: { ok: true }
      })
    },
    120_000
  )
})

describe("dynastate doctor", () => {
  it("catches a table without a stream and without TTL, with the fixes on stdout, and exits 7", async () => {
    const bare = freshTableName("cli-ops-bare")
    await createBareEventTable(client, bare)
    const run = await cliOn(bare, ["doctor"])
    expect(run.code).toBe(7)
    expect(run.stdout).toMatch(/FAIL +stream +table .* has no stream/)
    expect(run.stdout).toContain(`--table-name ${bare} --stream-specification StreamEnabled=true`)
    expect(run.stdout).toMatch(/FAIL +ttl +TTL is disabled/)
    expect(run.stdout).toContain("--time-to-live-specification Enabled=true,AttributeName=ttl")
    expect(run.stdout).toContain("fix: run `dynastate provision`")
    expect(run.stderr).toContain("DoctorFailed")
    expect(run.stderr).toContain("stream, ttl")
    // Doctor never creates a key file: a missing one is a failed check.
    expect(fs.existsSync(keyFile)).toBe(false)

    const asJson = await cliOn(bare, ["doctor", "-o", "json"])
    expect(asJson.code).toBe(7)
    const report = json(asJson.stdout)
    expect(report["ok"]).toBe(false)
    const verdicts = Object.fromEntries(
      (report["checks"] as Array<{ id: string; verdict: string }>).map((check) => [check.id, check.verdict])
    )
    expect(verdicts).toMatchObject({ credentials: "pass", table: "pass", stream: "fail", ttl: "fail" })
    expect(JSON.parse(asJson.stderr.trim())).toMatchObject({ error: "DoctorFailed", exitCode: 7 })
  }, 60_000)
})

describe("dynastate backup, restore and import-teleport", () => {
  beforeAll(async () => {
    // The table exists (provision above, or here when this block runs alone); init makes the first key.
    expect((await cli(["provision"])).code).toBe(0)
    expect((await cli(["init"])).code).toBe(0)
    expect((await cli(["put", "/app/a", "alpha"])).code).toBe(0)
    expect((await cli(["put", "/app/b", "-"], "beta from stdin")).code).toBe(0)
  }, 120_000)

  it("doctor passes on the provisioned store with its key", async () => {
    const run = await cli(["doctor", "--permissions"])
    expect(run.code).toBe(0)
    expect(run.stdout).toContain("no problem found")
    expect(run.stdout).toContain("IAM permissions by feature")
  }, 60_000)

  it(
    "backs up to a file and to stdout, restores into a fresh table (from a file and from stdin) with equal values",
    async () => {
      const file = path.join(dir, "store.backup")
      const backup = await cli(["backup", file, "-o", "json"])
      expect(backup.code).toBe(0)
      const report = json(backup.stdout) as { header: { counts: Record<string, number> }; path: string }
      expect(report.path).toBe(file)
      const counts = report.header.counts
      expect(counts).toMatchObject({ event: 2, history: 0, grave: 0 })
      expect(counts["data-key"]).toBeGreaterThanOrEqual(1)
      expect((fs.statSync(file).mode & 0o777).toString(8)).toBe("600")

      // `-`: the backup itself on stdout, the report on stderr.
      const piped = await cli(["backup", "-"])
      expect(piped.code).toBe(0)
      const [header, ...lines] = piped.stdout.trimEnd().split("\n")
      expect(JSON.parse(header!)).toMatchObject({ format: "dynastate-backup", table, counts: { event: 2 } })
      expect(lines).toHaveLength(Object.values(counts).reduce((sum, count) => sum + count, 0))
      expect(piped.stderr).toContain(`backed up ${table}`)

      const fresh = freshTableName("cli-ops-restored")
      expect((await cliOn(fresh, ["restore", file])).code).toBe(6) // no table yet: provision first
      expect((await cliOn(fresh, ["provision"])).code).toBe(0)
      const restored = await cliOn(fresh, ["restore", file, "-o", "json"])
      expect(restored.code).toBe(0)
      expect(json(restored.stdout)).toMatchObject({ mode: "re-encrypt", to: { table: fresh }, written: { event: 2 } })
      for (const [key, value] of [["/app/a", "alpha"], ["/app/b", "beta from stdin"]] as const) {
        const get = await cliOn(fresh, ["get", key, "-o", "value"])
        expect([get.code, get.stdout]).toEqual([0, value])
      }

      // A namespace that holds data is refused (exit 4); --resume from stdin writes the same items again.
      const refused = await cliOn(fresh, ["restore", "-"], piped.stdout)
      expect(refused.code).toBe(4)
      expect(refused.stderr).toContain(`cannot restore into ${fresh}`)
      const resumed = await cliOn(fresh, ["restore", "-", "--resume"], piped.stdout)
      expect(resumed.code).toBe(0)
      expect(resumed.stdout).toContain(`restored - into ${fresh}`)

      const damaged = path.join(dir, "damaged.backup")
      fs.writeFileSync(damaged, piped.stdout.replace("\"event\"", "\"grave\""))
      const invalid = await cliOn(fresh, ["restore", damaged, "--resume"])
      expect(invalid.code).toBe(2)
      expect(invalid.stderr).toContain("is not a valid backup")
    },
    120_000
  )

  it("imports a Teleport-shaped table, with progress on stderr, and a second run writes nothing", async () => {
    const source = freshTableName("cli-ops-teleport")
    await createTeleportTable(client, source)
    const inAnHour = Math.floor(Date.now() / 1000) + 3600
    const items = [
      { FullPath: { S: "teleport/nodes/n1" }, Value: { B: new TextEncoder().encode("node one") } },
      {
        FullPath: { S: "teleport/roles/admin" },
        Value: { B: new TextEncoder().encode("admin role") },
        Expires: { N: String(inAnHour) }
      },
      { FullPath: { S: "teleport/tokens/old" }, Value: { B: new TextEncoder().encode("x") }, Expires: { N: "1000" } },
      { FullPath: { S: "teleport/zz/novalue" } }
    ]
    for (const item of items) {
      await client.send(
        new PutItemCommand({ TableName: source, Item: { HashKey: { S: "teleport" }, Revision: { S: "r1" }, ...item } })
      )
    }

    const run = await cli(["import-teleport", "--source-table", source, "--page-size", "2", "-o", "json"])
    expect(run.code).toBe(0)
    expect(json(run.stdout)).toMatchObject({
      source,
      scanned: 4,
      imported: 2,
      expired: 1,
      skipped: 1,
      skippedItems: [{ fullPath: "teleport/zz/novalue", reason: "no binary Value" }]
    })
    expect(run.stderr).toContain("at teleport/roles/admin") // the progress line of the first page
    const admin = await cli(["get", "/roles/admin", "-o", "json"])
    expect(json(admin.stdout)).toMatchObject({
      value: "admin role",
      expires: new Date(inAnHour * 1000).toISOString()
    })

    const missing = await cli(["import-teleport", "--source-table", `${source}-missing`])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain(`source table ${source}-missing does not exist`)

    const again = await cli(["import-teleport", "--source-table", source, "--after", "teleport/nodes/n1"])
    expect(again.code).toBe(0)
    expect(again.stdout).toContain(`imported 0 of 3 items from ${source}: 1 already there, 1 expired, 1 skipped`)
  }, 120_000)
})
