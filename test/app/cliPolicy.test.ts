/**
 * `dynastate policy` as a process: the namespace and table from the global flags, the policy on stdout as JSON IAM
 * accepts, the notes on stderr, `-o json` as one line, and bad input refused with exit 2. It needs no DynamoDB.
 */
import { describe, expect, it } from "vitest"
import { areaPartition, keyPartition } from "../../src/infra/PartitionKeys.ts"
import { allows } from "../ops/policyEvaluator.ts"
import { runCli } from "./cliProcess.ts"

const key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
const base = ["--table", "shared", "--namespace", "/tenant-a", "--region", "eu-west-1"]
const tableArn = "arn:aws:dynamodb:eu-west-1:123456789012:table/shared"

describe("dynastate policy", () => {
  it("prints the worker's policy on stdout and what it cannot confine on stderr", async () => {
    const run = await runCli([
      ...base,
      "policy",
      "--role",
      "worker",
      "--group",
      "tenant-a",
      "--kms-key",
      key,
      "--account",
      "123456789012"
    ])
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/^[\t\n\r\u0020-\u00ff]+$/)
    const policy = JSON.parse(run.stdout) as { Statement: ReadonlyArray<{ Sid: string }> }
    expect(policy.Statement.map((statement) => statement.Sid)).toEqual([
      "NamespaceItems",
      "EventTable",
      "Stream",
      "LeaseItems",
      "LeaseTable",
      "DataKeys",
      "ResolveKeys"
    ])
    const get = (partition: string) => ({
      action: "dynamodb:GetItem",
      resource: tableArn,
      context: { "dynamodb:LeadingKeys": [partition] }
    })
    expect(allows(run.stdout, get("/tenant-a"))).toBe(true)
    expect(allows(run.stdout, get("/tenant-a\u0000history"))).toBe(true)
    expect(allows(run.stdout, get("/tenant-b"))).toBe(false)
    expect(run.stderr).toContain("DynamoDB Streams cannot be confined by LeadingKeys")
    expect(run.stderr).toContain(`lease group "tenant-a"`)
  })

  it("-o json is one line with the policy and the notes; an app without --watch gets no stream", async () => {
    const run = await runCli([...base, "-o", "json", "policy", "--kms-key", key])
    expect(run.code).toBe(0)
    expect(run.stdout.trim().split("\n")).toHaveLength(1)
    const parsed = JSON.parse(run.stdout) as {
      policy: { Statement: ReadonlyArray<{ Sid: string; Action: ReadonlyArray<string> }> }
      notes: ReadonlyArray<string>
    }
    const granted = parsed.policy.Statement.flatMap((statement) => statement.Action)
    expect(granted).not.toContain("dynamodb:GetRecords")
    expect(granted).not.toContain("dynamodb:Scan")
    expect(parsed.notes.join(" ")).toContain("ARNs say `*`")
  })

  it("--migrating-from grants the partitions of the layout a migration moves from, beside the configured one's", async () => {
    const former = { table: "shared", namespace: "/tenant-a", partitions: [{ prefix: "/nodes/", name: "nodes" }] }
    const nodes = keyPartition(former, "/nodes/n1")
    const get = (partition: string) => ({
      action: "dynamodb:GetItem",
      resource: tableArn,
      context: { "dynamodb:LeadingKeys": [partition] }
    })
    const plain = await runCli([...base, "policy", "--account", "123456789012"])
    expect(plain.code).toBe(0)
    expect(allows(plain.stdout, get(nodes))).toBe(false)
    const migrating = await runCli([
      ...base,
      "policy",
      "--account",
      "123456789012",
      "--migrating-from",
      "/nodes/:nodes"
    ])
    expect(migrating.code).toBe(0)
    for (const partition of [nodes, areaPartition(nodes, "history"), areaPartition(nodes, "graves"), "/tenant-a"]) {
      expect([partition, allows(migrating.stdout, get(partition))]).toEqual([partition, true])
    }
    expect(allows(migrating.stdout, get("/tenant-b"))).toBe(false)
    const bad = await runCli([...base, "policy", "--migrating-from", "/nodes/"])
    expect(bad.code).toBe(2)
    expect(bad.stdout).toBe("")
    expect(bad.stderr).toContain("--migrating-from")
  })

  it("refuses a KMS alias with exit 2 and a reason, printing no policy", async () => {
    const run = await runCli([...base, "policy", "--kms-key", "alias/dynastate"])
    expect(run.code).toBe(2)
    expect(run.stdout).toBe("")
    expect(run.stderr).toContain("not a KMS key ARN")
  })
})
