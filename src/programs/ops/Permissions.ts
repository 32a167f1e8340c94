/**
 * The IAM permissions each feature of the store needs, per resource, as `doctor` lists them: the same actions as
 * the README's IAM policy, grouped by what uses them, each marked by how doctor knows it (proved by a request,
 * refused, or inferred because no request could prove it without a change).
 */
import type { Target } from "./Target.ts"

/** How an IAM permission is known: a request proved or disproved it, or nothing checked it. */
export type Evidence = "verified" | "denied" | "inferred"

/** One IAM action on one resource a feature needs. */
export interface Permission {
  readonly action: string
  readonly resource: string
  readonly evidence: Evidence
}

/** The permissions of one feature of the store. */
export interface FeaturePermissions {
  readonly feature: string
  readonly permissions: ReadonlyArray<Permission>
}

/** The resources of a target as the list names them (the ARN's part after `table/`). */
export const resources = (target: Target) => ({
  table: `table/${target.table}`,
  leases: `table/${target.leaseTable}`,
  stream: `table/${target.table}/stream/*`
})

/** Every feature's permissions on the target's resources (and `kmsKeys`), with the evidence `evidenceOf` gives. */
export const catalogue = (
  target: Target,
  kms: ReadonlyArray<string>,
  evidenceOf: (action: string, resource: string) => Evidence
): ReadonlyArray<FeaturePermissions> => {
  const { leases, stream, table } = resources(target)
  const permission = (action: string, resource: string): Permission => ({
    action,
    resource,
    evidence: evidenceOf(action, resource)
  })
  const each = (actions: ReadonlyArray<string>, resource: string) =>
    actions.map((action) => permission(action, resource))
  const kmsResources = kms.length === 0 ? [] : kms.map((key) => `key ${key}`)
  return [
    {
      feature: "reads (get, range, history, watch's initial read)",
      permissions: each(["dynamodb:Query", "dynamodb:GetItem"], table)
    },
    {
      feature: "writes (put, create, update, delete, atomic writes; TransactWriteItems is authorised per item action)",
      permissions: each(
        ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"],
        table
      )
    },
    {
      feature: "creating the table at start (only if the store may create it)",
      permissions: each(
        ["dynamodb:DescribeTable", "dynamodb:CreateTable", "dynamodb:DescribeTimeToLive", "dynamodb:UpdateTimeToLive"],
        table
      )
    },
    {
      feature: "watches and the projection worker (stream)",
      permissions: each(["dynamodb:DescribeStream", "dynamodb:GetShardIterator", "dynamodb:GetRecords"], stream)
    },
    {
      feature: "projection worker (leases and checkpoints)",
      permissions: [
        ...each(
          ["dynamodb:Query", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
          leases
        ),
        ...each(
          [
            "dynamodb:DescribeTable",
            "dynamodb:CreateTable",
            "dynamodb:DescribeTimeToLive",
            "dynamodb:UpdateTimeToLive"
          ],
          leases
        )
      ]
    },
    {
      feature: "index views",
      permissions: each(
        [
          "dynamodb:Query",
          "dynamodb:GetItem",
          "dynamodb:PutItem",
          "dynamodb:DeleteItem",
          "dynamodb:ConditionCheckItem",
          "dynamodb:CreateTable",
          "dynamodb:DescribeTable"
        ],
        `table/${target.table}.view.*`
      )
    },
    {
      feature: kms.length === 0 ? "encryption (local raw AES keys: no IAM permission)" : "encryption (KMS data keys)",
      permissions: kmsResources.flatMap((resource) =>
        each(["kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey"], resource)
      )
    },
    {
      feature: "multi-region keys and rewrap",
      permissions: kmsResources.flatMap((resource) => each(["kms:Encrypt"], resource))
    },
    {
      feature: "provision",
      permissions: [
        ...each(
          [
            "dynamodb:CreateTable",
            "dynamodb:UpdateTable",
            "dynamodb:UpdateTimeToLive",
            "dynamodb:DescribeContinuousBackups",
            "dynamodb:UpdateContinuousBackups",
            "dynamodb:ListTagsOfResource",
            "dynamodb:TagResource"
          ],
          table
        ),
        permission("kms:DescribeKey, kms:CreateGrant (DynamoDB's, for table encryption under your key)", "the SSE key")
      ]
    },
    { feature: "backup", permissions: each(["dynamodb:Query"], table) },
    {
      feature: "restore and import-teleport (into this table)",
      permissions: [
        ...each(["dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:DescribeTable"], table),
        permission("dynamodb:Query", "the Teleport table (import-teleport)")
      ]
    }
  ]
}
