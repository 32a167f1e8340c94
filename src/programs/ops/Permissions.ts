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

/**
 * The IAM actions of each use of the store: the one list `doctor --permissions` and the per-namespace policy
 * generator (`NamespacePolicy`) both draw from, so the two cannot disagree.
 */
export const actions = {
  /** Reading events, history, graves and data keys (get, range, history, watch's initial read). */
  read: ["dynamodb:GetItem", "dynamodb:Query"],
  /** Appending events, recording expiries, moving history, storing data keys; transactions authorise per item. */
  write: ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"],
  /** Looking at a table at start, and creating it (and its TTL) when missing. */
  tableSetup: ["dynamodb:DescribeTable", "dynamodb:DescribeTimeToLive"],
  tableCreate: ["dynamodb:CreateTable", "dynamodb:UpdateTimeToLive"],
  /** Following the table's stream (watches, the projection worker). */
  stream: ["dynamodb:DescribeStream", "dynamodb:GetShardIterator", "dynamodb:GetRecords"],
  /** Shard leases, checkpoints and worker announcements in the lease table. */
  leases: ["dynamodb:Query", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
  /** Index view tables. */
  views: [
    "dynamodb:Query",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem"
  ],
  /** Making and unwrapping data keys. */
  kmsDataKeys: ["kms:GenerateDataKey", "kms:Decrypt"],
  /** Resolving the configured key to its ARN at start. */
  kmsResolve: ["kms:DescribeKey"],
  /** Wrapping a copy under a further key (multi-keyrings, rewrap). */
  kmsWrap: ["kms:Encrypt"]
} as const

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
      permissions: each([...actions.read].reverse(), table)
    },
    {
      feature: "writes (put, create, update, delete, atomic writes; TransactWriteItems is authorised per item action)",
      permissions: each(actions.write, table)
    },
    {
      feature: "creating the table at start (only if the store may create it)",
      permissions: each(
        [actions.tableSetup[0], actions.tableCreate[0], actions.tableSetup[1], actions.tableCreate[1]],
        table
      )
    },
    {
      feature: "watches and the projection worker (stream)",
      permissions: each(actions.stream, stream)
    },
    {
      feature: "projection worker (leases and checkpoints)",
      permissions: [
        ...each(actions.leases, leases),
        ...each(
          [actions.tableSetup[0], actions.tableCreate[0], actions.tableSetup[1], actions.tableCreate[1]],
          leases
        )
      ]
    },
    {
      feature: "index views",
      permissions: each(
        [...actions.views, "dynamodb:CreateTable", "dynamodb:DescribeTable"],
        `table/${target.table}.view.*`
      )
    },
    {
      feature: kms.length === 0 ? "encryption (local raw AES keys: no IAM permission)" : "encryption (KMS data keys)",
      permissions: kmsResources.flatMap((resource) => each([...actions.kmsDataKeys, ...actions.kmsResolve], resource))
    },
    {
      feature: "multi-region keys and rewrap",
      permissions: kmsResources.flatMap((resource) => each(actions.kmsWrap, resource))
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
    // The layout record too (GetItem), which says which partitions hold the keys.
    { feature: "backup", permissions: each(["dynamodb:Query", "dynamodb:GetItem"], table) },
    {
      feature: "restore and import-teleport (into this table)",
      permissions: [
        ...each(["dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:DescribeTable"], table),
        permission("dynamodb:Query", "the Teleport table (import-teleport)")
      ]
    }
  ]
}
