/**
 * The `dynastate` CLI as a process against DynamoDB Local (`--endpoint`): every command's exit code, stdout and
 * stderr, `-o json` output that parses, values from arguments, files and stdin, and a store that reads never set up.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { endpoint, freshTableName } from "../support/TestStore.ts"
import { cliCwd, cliEntry, cliEnv, jsonLines, nodeBinary, runCli, runCliBytes } from "./cliProcess.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-cli-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const table = freshTableName("cli")
const env = { DYNASTATE_KEYRING_FILE: path.join(dir, "keyring.key"), XDG_DATA_HOME: path.join(dir, "data") }
const on = (...args: ReadonlyArray<string>) => ["--endpoint", endpoint(), "--table", table, ...args]
const cli = (args: ReadonlyArray<string>, stdin?: string | Uint8Array) =>
  runCli(on(...args), { env, ...(stdin === undefined ? {} : { stdin }) })

describe("dynastate CLI: usage", () => {
  it("--help lists the commands, the global flags and the exit codes on stdout", async () => {
    const run = await runCli(["--help"])
    expect(run.code).toBe(0)
    for (const word of ["get", "cas", "txn", "watch", "init", "local", "--endpoint", "--output", "exit codes"]) {
      expect(run.stdout).toContain(word)
    }
    for (const word of ["status", "doctor", "provision", "backup", "restore", "import-teleport", "7 a doctor check"]) {
      expect(run.stdout).toContain(word)
    }
  })

  it("provision --help shows its flags", async () => {
    const run = await runCli(["provision", "--help"])
    expect(run.code).toBe(0)
    for (const flag of ["--dry-run", "--point-in-time-recovery", "--deletion-protection", "--sse", "--tag", "--view"]) {
      expect(run.stdout).toContain(flag)
    }
  })

  it("an unknown command or a missing argument is exit 2, with the help and the error on stderr only", async () => {
    const unknown = await runCli(["bogus"])
    expect(unknown.code).toBe(2)
    expect(unknown.stdout).toBe("")
    expect(unknown.stderr).toContain("Unknown subcommand \"bogus\"")
    const missing = await runCli(["get"])
    expect(missing.code).toBe(2)
    expect(missing.stdout).toBe("")
    expect(missing.stderr).toContain("Missing required argument: key")
  })

  it("prints shell completions as effect/cli makes them", async () => {
    const run = await runCli(["--completions", "bash"])
    expect(run.code).toBe(0)
    expect(run.stdout).toContain("dynastate")
    expect(run.stdout).toContain("complete")
  })
})

describe("dynastate CLI: a store that is not set up", () => {
  it("a read says the table is missing, names provision, exits 6 and creates nothing", async () => {
    const run = await cli(["get", "/k"])
    expect(run.code).toBe(6)
    expect(run.stdout).toBe("")
    expect(run.stderr).toContain(`table ${table} does not exist`)
    expect(run.stderr).toContain("dynastate provision")
    expect((await cli(["ls"])).code).toBe(6) // still missing: the first read created nothing
    expect(fs.existsSync(env.DYNASTATE_KEYRING_FILE)).toBe(false)
  })

  it("-o json reports the failure as a JSON line on stderr", async () => {
    const run = await cli(["get", "/k", "-o", "json"])
    expect(run.code).toBe(6)
    expect(JSON.parse(run.stderr.trim())).toMatchObject({ error: "TableMissing", exitCode: 6 })
  })
})

describe("dynastate CLI: the contract", () => {
  beforeAll(async () => {
    const run = await cli(["init", "-o", "json"])
    expect(run.code).toBe(0)
    expect(JSON.parse(run.stdout)).toMatchObject({ table, keyCreated: true })
  }, 60_000)

  it("init again changes nothing and says so", async () => {
    const run = await cli(["init", "-o", "json"])
    expect(run.code).toBe(0)
    expect(JSON.parse(run.stdout)).toMatchObject({ table, keyCreated: false })
  })

  it("another key file is not created by a read: exit 6 naming init", async () => {
    const run = await runCli(on("get", "/k"), { env: { ...env, DYNASTATE_KEYRING_FILE: path.join(dir, "x.key") } })
    expect(run.code).toBe(6)
    expect(run.stderr).toContain("dynastate init")
    expect(fs.existsSync(path.join(dir, "x.key"))).toBe(false)
  })

  it("put, get in three formats, create (4), update (3), get of a missing key (3), a bad key (2)", async () => {
    const put = await cli(["put", "/c/a", "hello world", "-o", "json"])
    expect(put.code).toBe(0)
    const lease = JSON.parse(put.stdout) as { key: string; revision: string }
    expect(lease.key).toBe("/c/a")
    const text = await cli(["get", "/c/a"])
    expect(text).toMatchObject({ code: 0, stdout: `/c/a = "hello world" @ ${lease.revision}\n`, stderr: "" })
    expect(JSON.parse((await cli(["get", "/c/a", "-o", "json"])).stdout)).toEqual({
      key: "/c/a",
      value: "hello world",
      revision: lease.revision
    })
    expect((await cli(["get", "/c/a", "-o", "value"])).stdout).toBe("hello world")
    const create = await cli(["create", "/c/a", "x"])
    expect(create.code).toBe(4)
    expect(create.stderr).toContain("AlreadyExists")
    expect((await cli(["update", "/c/missing", "x"])).code).toBe(3)
    const missing = await cli(["get", "/c/missing"])
    expect(missing).toMatchObject({ code: 3, stdout: "" })
    expect(missing.stderr).toContain("NotFound")
    expect((await cli(["get", `/${"x".repeat(2000)}`])).code).toBe(2) // longer than a key may be
  })

  it("values from a file (@path) and stdin (-) are stored byte for byte; @@ is a literal @", async () => {
    const bytes = new Uint8Array(200_000).map((_, i) => (i * 7) % 256)
    fs.writeFileSync(path.join(dir, "big.bin"), bytes)
    expect((await cli(["put", "/c/file", `@${path.join(dir, "big.bin")}`])).code).toBe(0)
    const back = await runCliBytes(on("get", "/c/file", "-o", "value"), env)
    expect(back.code).toBe(0)
    expect(Buffer.compare(back.stdout, Buffer.from(bytes))).toBe(0)
    const binary = JSON.parse((await cli(["get", "/c/file", "-o", "json"])).stdout) as Record<string, string>
    expect(binary.valueEncoding).toBe("base64")
    expect(Buffer.from(binary.value!, "base64").equals(Buffer.from(bytes))).toBe(true)

    expect((await cli(["put", "/c/stdin", "-"], "from stdin\n")).code).toBe(0)
    expect((await cli(["get", "/c/stdin", "-o", "value"])).stdout).toBe("from stdin\n")
    expect((await cli(["put", "/c/at", "@@home"])).code).toBe(0)
    expect((await cli(["get", "/c/at", "-o", "value"])).stdout).toBe("@home")
    const unreadable = await cli(["put", "/c/nofile", "@/nonexistent/file"])
    expect(unreadable.code).toBe(2)
    expect(unreadable.stderr).toContain("ENOENT")
  })

  it("--ttl sets an expiry; a bad one is exit 2 and writes nothing", async () => {
    const put = await cli(["put", "/c/ttl", "v", "--ttl", "1h", "-o", "json"])
    expect(put.code).toBe(0)
    const item = JSON.parse((await cli(["get", "/c/ttl", "-o", "json"])).stdout) as { expires: string }
    const left = Date.parse(item.expires) - Date.now()
    expect(left).toBeGreaterThan(3_500_000)
    expect(left).toBeLessThanOrEqual(3_600_000)
    const bad = await cli(["put", "/c/ttl2", "v", "--ttl", "soon"])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain("--ttl")
    expect((await cli(["get", "/c/ttl2"])).code).toBe(3)
  })

  it("cas by expected value or revision: 0 when it matches, 4 when not, 2 without exactly one condition", async () => {
    const first = JSON.parse((await cli(["put", "/c/cas", "one", "-o", "json"])).stdout) as { revision: string }
    expect((await cli(["cas", "/c/cas", "two", "--expect", "nope"])).code).toBe(4)
    expect((await cli(["cas", "/c/cas", "two", "--expect", "one"])).code).toBe(0)
    expect((await cli(["cas", "/c/cas", "three", "--revision", first.revision])).code).toBe(4)
    const now = JSON.parse((await cli(["get", "/c/cas", "-o", "json"])).stdout) as { revision: string; value: string }
    expect(now.value).toBe("two")
    expect((await cli(["cas", "/c/cas", "three", "--revision", now.revision, "-o", "json"])).code).toBe(0)
    expect((await cli(["get", "/c/cas", "-o", "value"])).stdout).toBe("three")
    expect((await cli(["cas", "/c/cas", "x"])).code).toBe(2)
    expect((await cli(["cas", "/c/cas", "x", "--expect", "three", "--revision", now.revision])).code).toBe(2)
  })

  it("get --at a revision or a moment gives the past item", async () => {
    const first = JSON.parse((await cli(["put", "/c/past", "old", "-o", "json"])).stdout) as { revision: string }
    const between = new Date().toISOString()
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect((await cli(["put", "/c/past", "new"])).code).toBe(0)
    expect((await cli(["get", "/c/past", "--at", first.revision, "-o", "value"])).stdout).toBe("old")
    expect((await cli(["get", "/c/past", "--at", between, "-o", "value"])).stdout).toBe("old")
    expect((await cli(["get", "/c/past", "--at", "2001-01-01T00:00:00Z"])).code).toBe(3)
  })

  it("delete: by key (3 when missing), by --revision (4 when stale), by --prefix (only that prefix)", async () => {
    for (const key of ["/p/a", "/p/b", "/p0"]) expect((await cli(["put", key, "v"])).code).toBe(0)
    const byPrefix = await cli(["delete", "/p/", "--prefix", "-o", "json"])
    expect(byPrefix.code).toBe(0)
    expect(JSON.parse(byPrefix.stdout)).toEqual({ prefix: "/p/", deleted: 2 })
    expect((await cli(["get", "/p0"])).code).toBe(0) // Teleport's RangeEnd("/p/") is "/p0": not deleted here
    expect((await cli(["delete", "/p0", "--revision", "01a00000-0000-7000-8000-000000000000"])).code).toBe(4)
    expect((await cli(["delete", "/p0"])).stdout).toBe("deleted /p0\n")
    expect((await cli(["delete", "/p0"])).code).toBe(3)
  })

  it("range/ls: items or keys, --limit, --desc, JSON lines", async () => {
    for (const key of ["/r/1", "/r/2", "/r/3"]) await cli(["put", key, `value ${key}`])
    const keys = await cli(["ls", "/r/", "--keys-only"])
    expect(keys).toMatchObject({ code: 0, stdout: "/r/1\n/r/2\n/r/3\n" })
    expect((await cli(["range", "/r/", "--keys-only", "--desc", "--limit", "2"])).stdout).toBe("/r/3\n/r/2\n")
    const lines = jsonLines((await cli(["range", "/r/", "-o", "json"])).stdout)
    expect(lines.map((line) => [line.key, line.value])).toEqual([
      ["/r/1", "value /r/1"],
      ["/r/2", "value /r/2"],
      ["/r/3", "value /r/3"]
    ])
    expect((await cli(["ls", "/r/", "--limit", "0"])).code).toBe(2)
  })

  it("keepalive gives a new expiry and keeps the revision", async () => {
    const lease = JSON.parse((await cli(["put", "/c/keep", "v", "--ttl", "1m", "-o", "json"])).stdout) as {
      revision: string
    }
    const kept = await cli(["keepalive", "/c/keep", "--ttl", "2h", "--revision", lease.revision, "-o", "json"])
    expect(kept.code).toBe(0)
    expect(JSON.parse(kept.stdout)).toEqual({ key: "/c/keep", revision: lease.revision })
    const item = JSON.parse((await cli(["get", "/c/keep", "-o", "json"])).stdout) as { expires: string }
    expect(Date.parse(item.expires) - Date.now()).toBeGreaterThan(7_000_000)
    expect((await cli(["keepalive", "/c/none", "--ttl", "1m"])).code).toBe(3)
  })

  it("txn applies a YAML file atomically; a failed condition (4) or a bad file (2) writes nothing", async () => {
    const file = path.join(dir, "txn.yaml")
    fs.writeFileSync(file, "- key: /t/a\n  if: not-exists\n  put: A\n  ttl: 1h\n- key: /t/b\n  put: { base64: Qg== }\n")
    const run = await cli(["txn", file, "-o", "json"])
    expect(run.code).toBe(0)
    const { revision, keys } = JSON.parse(run.stdout) as { revision: string; keys: Array<string> }
    expect(keys).toEqual(["/t/a", "/t/b"])
    const items = jsonLines((await cli(["ls", "/t/", "-o", "json"])).stdout)
    expect(items.map((item) => [item.value, item.revision])).toEqual([["A", revision], ["B", revision]])

    const failing = JSON.stringify([{ key: "/t/a", if: "not-exists", put: "again" }, { key: "/t/c", put: "C" }])
    const failed = await cli(["txn", "-"], failing)
    expect(failed.code).toBe(4)
    expect(failed.stderr).toContain("ConditionFailed")
    expect((await cli(["get", "/t/c"])).code).toBe(3)

    const bad = await cli(["txn", "-"], "[{\"key\":\"/t/d\",\"put\":\"x\",\"delete\":true}]")
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain("entry 1")
  })

  it("history prints every event as JSON lines", async () => {
    await cli(["put", "/h/k", "1"])
    await cli(["put", "/h/k", "2"])
    await cli(["delete", "/h/k"])
    const events = jsonLines((await cli(["history", "/h/k", "-o", "json"])).stdout)
    expect(events.map((event) => [event.seq, event.op, event.value])).toEqual([
      [1, "put", "1"],
      [2, "put", "2"],
      [3, "delete", undefined]
    ])
  })

  it("--namespace keeps stores apart, and --config reads a YAML file", async () => {
    expect((await cli(["--namespace", "other", "put", "/ns/k", "v"])).code).toBe(0)
    expect((await cli(["get", "/ns/k"])).code).toBe(3)
    expect((await cli(["get", "/ns/k", "--namespace", "other", "-o", "value"])).stdout).toBe("v")
    const config = path.join(dir, "dynastate.yaml")
    fs.writeFileSync(config, `storage:\n  endpoint: ${endpoint()}\n  table_name: ${table}\n  namespace: other\n`)
    const run = await runCli(["--config", config, "get", "/ns/k", "-o", "value"], { env })
    expect(run).toMatchObject({ code: 0, stdout: "v" })
  })

  it("watch prints changes as JSON lines from Init on, and --from resumes after a position", async () => {
    const { spawn } = await import("node:child_process")
    const child = spawn(nodeBinary, [cliEntry, ...on("watch", "--prefix", "/w/", "-o", "json", "--count", "2")], {
      env: cliEnv(env),
      cwd: cliCwd
    })
    let out = ""
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString("utf8")))
    const closed = new Promise<number | null>((resolve) => child.once("close", resolve))
    const deadline = Date.now() + 30_000
    while (!out.includes("\"Init\"") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    expect(out).toContain("{\"event\":\"Init\"}")
    await cli(["put", "/w/1", "a"])
    await cli(["put", "/elsewhere", "b"])
    await cli(["delete", "/w/1"])
    expect(await closed).toBe(0)
    const [init, put, removed] = jsonLines(out)
    expect(init).toEqual({ event: "Init" })
    expect(put).toMatchObject({ event: "Put", key: "/w/1", value: "a" })
    expect(removed).toMatchObject({ event: "Delete", key: "/w/1" })

    const resumed = await cli([
      "watch",
      "--prefix",
      "/w/",
      "--from",
      String(put!.position),
      "-o",
      "json",
      "--count",
      "1"
    ])
    expect(resumed.code).toBe(0)
    expect(jsonLines(resumed.stdout).filter((line) => line.event !== "Init")[0]).toMatchObject({
      event: "Delete",
      key: "/w/1"
    })
    expect((await cli(["watch", "--from", "not-a-position"])).code).toBe(2)
  }, 60_000)
})
