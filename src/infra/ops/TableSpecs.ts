/**
 * The shapes of the store's tables as `CreateTable` requests: the event table (binary sort key, a stream of new
 * images) and the side tables beside it (worker leases, index views: string keys, no stream). Kept beside the item
 * codecs, which own the attribute names.
 */
import type { CreateTableCommandInput, SSESpecification, Tag } from "@aws-sdk/client-dynamodb"
import { Attr } from "../EventRecord.ts"

/** Billing of a table: on demand, or provisioned with these capacities. */
export type Billing =
  | { readonly _tag: "PayPerRequest" }
  | { readonly _tag: "Provisioned"; readonly readCapacityUnits: number; readonly writeCapacityUnits: number }

/**
 * Table-level encryption at rest: DynamoDB's own key (`AwsOwned`, the default), the account's AWS-managed key
 * (`aws/dynamodb`), or a customer managed KMS key.
 */
export type Encryption =
  | { readonly _tag: "AwsOwned" }
  | { readonly _tag: "AwsManaged" }
  | { readonly _tag: "Kms"; readonly keyId: string }

/** What a table is created with beyond its keys. */
export interface CreateOptions {
  readonly billing: Billing
  readonly deletionProtection: boolean
  readonly encryption: Encryption
  readonly tags: Readonly<Record<string, string>>
}

/** The kind of a store table, for its key schema. */
export type TableKind = "events" | "leases" | "view"

/** The key schema of each kind as `DescribeTable` shows it (`name type role`). */
export const keySchemaOf: Record<TableKind, string> = {
  events: `${Attr.partition} S HASH, ${Attr.sort} B RANGE`,
  leases: "pk S HASH, sk S RANGE",
  view: "ix S HASH, key S RANGE"
}

/** The TTL attribute of each kind (views have none). */
export const ttlAttributeOf: Record<TableKind, string | undefined> = {
  events: Attr.ttl,
  leases: "ttl",
  view: undefined
}

/** The `SSESpecification` of an encryption choice. */
export const sseSpecification = (encryption: Encryption): SSESpecification =>
  encryption._tag === "AwsOwned"
    ? { Enabled: false }
    : encryption._tag === "AwsManaged"
    ? { Enabled: true, SSEType: "KMS" }
    : { Enabled: true, SSEType: "KMS", KMSMasterKeyId: encryption.keyId }

const keys = (kind: TableKind) => {
  const [hash, range] = keySchemaOf[kind].split(", ").map((part) => part.split(" "))
  return {
    KeySchema: [
      { AttributeName: hash![0]!, KeyType: "HASH" as const },
      { AttributeName: range![0]!, KeyType: "RANGE" as const }
    ],
    AttributeDefinitions: [
      { AttributeName: hash![0]!, AttributeType: hash![1] as "S" | "B" },
      { AttributeName: range![0]!, AttributeType: range![1] as "S" | "B" }
    ]
  }
}

/** The `CreateTable` request for a table of this kind. */
export const createRequest = (table: string, kind: TableKind, options: CreateOptions): CreateTableCommandInput => {
  const tags: Array<Tag> = Object.entries(options.tags).map(([Key, Value]) => ({ Key, Value }))
  return {
    TableName: table,
    ...keys(kind),
    ...(kind === "events" ? { StreamSpecification: { StreamEnabled: true, StreamViewType: "NEW_IMAGE" } } : {}),
    ...(options.billing._tag === "Provisioned"
      ? {
        BillingMode: "PROVISIONED",
        ProvisionedThroughput: {
          ReadCapacityUnits: options.billing.readCapacityUnits,
          WriteCapacityUnits: options.billing.writeCapacityUnits
        }
      }
      : { BillingMode: "PAY_PER_REQUEST" }),
    DeletionProtectionEnabled: options.deletionProtection,
    ...(options.encryption._tag === "AwsOwned" ? {} : { SSESpecification: sseSpecification(options.encryption) }),
    ...(tags.length === 0 ? {} : { Tags: tags })
  }
}
