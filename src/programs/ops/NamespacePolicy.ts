/**
 * A least-privilege IAM policy for the principal of one namespace of a shared table (`dynastate policy`). The
 * partition key of every item a namespace's store and worker touch is the namespace or derived from it
 * (`NamespacePartitions`), so `dynamodb:LeadingKeys` confines the principal's item requests to them; the lease
 * table is confined to the worker's lease group the same way, and KMS to data keys whose encryption context names
 * the table and the namespace. What IAM cannot confine (the stream, a Scan) is left out or said in {@link notes}.
 */
import { Result, Schema } from "effect"
import type { Layout } from "../../domain/Partitioning.ts"
import * as NamespacePartitions from "../../infra/NamespacePartitions.ts"
import * as ProjectionLeases from "../../infra/ProjectionLeases.ts"
import { actions } from "./Permissions.ts"
import type { Target } from "./Target.ts"
import { locationOf } from "./Target.ts"

/**
 * Who the policy is for: the application (reads and writes; `watch` adds the stream), the projection worker
 * (reads and writes, stream, leases, views), or a read-only principal (reads, backups, `kms:Decrypt` only).
 */
export type Role = "app" | "worker" | "readonly"

/** Every role, in the order `--help` lists them. */
export const roles: ReadonlyArray<Role> = ["app", "worker", "readonly"]

/**
 * How the namespace's derived partitions (`<namespace>\0graves`, …) are named in the condition: `exact` lists
 * them with NUL written as the JSON escape `\u0000` (IAM's character rule applies to the document's text, where
 * the escape is six printable characters); `wildcard` writes NUL as StringLike's `?` for an IAM that refuses the
 * escape, which also admits the live partition of any namespace named `<namespace>`, one character, and a suffix
 * (`app/graves` for `app`): see {@link notes}.
 */
export type Match = "exact" | "wildcard"

/** What the policy is for. */
export interface PolicyOptions {
  readonly target: Target
  readonly role: Role
  /** KMS key ARNs; the first makes data keys, the others wrap copies. Empty: local raw AES keys, no KMS statement. */
  readonly kmsKeys: ReadonlyArray<string>
  /** The region and account of the tables' ARNs; `*` when not given. */
  readonly region?: string | undefined
  readonly account?: string | undefined
  /** The AWS partition of the ARNs (`aws`, `aws-cn`, `aws-us-gov`). */
  readonly awsPartition?: string | undefined
  readonly match?: Match | undefined
  /** The application also watches (`store.watch`, `dynastate watch`): adds the stream statement. */
  readonly watch?: boolean | undefined
  /** The principal may create missing tables and turn their TTL on (otherwise they must be provisioned). */
  readonly createTables?: boolean | undefined
  /**
   * The layout a partition migration moves the namespace from (see `LayoutTransition`): its partitions are granted
   * beside the target's, since stores serving the migration read and move keys there until it settles.
   */
  readonly migratingFrom?: Layout | undefined
}

/** A condition block: operator, then condition key, then the value or values. */
export type Condition = Readonly<Record<string, Readonly<Record<string, string | ReadonlyArray<string>>>>>

/** One statement of an IAM policy document (only the elements dynastate writes). */
export interface Statement {
  readonly Sid: string
  readonly Effect: "Allow"
  readonly Action: ReadonlyArray<string>
  readonly Resource: ReadonlyArray<string>
  readonly Condition?: Condition
}

/** An IAM identity policy document. */
export interface PolicyDocument {
  readonly Version: "2012-10-17"
  readonly Statement: ReadonlyArray<Statement>
}

/** An option of the policy is not something IAM can name (a key that is not an ARN, an account that is not one). */
export class PolicyInputInvalid extends Schema.TaggedError<PolicyInputInvalid>()("PolicyInputInvalid", {
  input: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.input}: ${this.reason}`
  }
}

/** The condition key that names the partition keys of an item request. */
export const leadingKeys = "dynamodb:LeadingKeys"

/** The encryption-context keys a data key carries (`DataKeys.contextOf`) that a KMS condition pins. */
export const contextKeys = {
  table: "kms:EncryptionContext:dynastate:table",
  namespace: "kms:EncryptionContext:dynastate:namespace",
  purpose: "kms:EncryptionContext:dynastate:purpose"
} as const

// IAM reads `${...}` in condition values as a policy variable; `${$}`, `${*}` and `${?}` are the literal characters.
const variable = (char: string): string => `\${${char}}`
const literal = (text: string): string => text.replaceAll("$", variable("$"))
const likeLiteral = (text: string): string =>
  [...text].map((char) => (char === "$" || char === "*" || char === "?" ? variable(char) : char)).join("")

/**
 * The values the LeadingKeys condition lists for the namespace's partitions of the event table: the target layout's,
 * and those of the layout a migration moves from when given.
 */
export const eventTableKeys = (target: Target, match: Match, migratingFrom?: Layout): ReadonlyArray<string> => {
  const namespace = target.namespace
  const location = locationOf(target)
  const keys = new Set(NamespacePartitions.partitionsOf(location).map(({ key }) => key))
  if (migratingFrom !== undefined) {
    for (const { key } of NamespacePartitions.partitionsOf({ ...location, partitions: migratingFrom })) keys.add(key)
  }
  return [...keys].map((key) => {
    if (match === "exact") return literal(key)
    if (key === namespace) return likeLiteral(key)
    // A derived partition is the namespace and a suffix whose separators (NUL) each become `?`.
    return `${likeLiteral(namespace)}${
      [...key.slice(namespace.length)].map((char) => char === "\u0000" ? "?" : likeLiteral(char)).join("")
    }`
  })
}

/** The lease-table partitions of the target's worker group, as exact LeadingKeys values. */
export const leaseTableKeys = (target: Target): ReadonlyArray<string> =>
  ProjectionLeases.partitionsOf({ table: target.leaseTable, group: target.leaseGroup }).map(literal)

const keyArn = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/
const accountPattern = /^(\d{12}|\*)$/
const regionPattern = /^([a-z]{2}(-[a-z]+)+-\d|\*)$/
const partitionPattern = /^aws(-[a-z]+)*$/

const validate = (options: PolicyOptions): PolicyInputInvalid | undefined => {
  for (const key of options.kmsKeys) {
    if (!keyArn.test(key)) {
      return new PolicyInputInvalid({
        input: key,
        reason: "not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID): an IAM policy names a key by its ARN, " +
          "not by an alias or a bare id; pass --kms-key with the key's ARN"
      })
    }
  }
  if (options.account !== undefined && !accountPattern.test(options.account)) {
    return new PolicyInputInvalid({ input: options.account, reason: "an AWS account id is 12 digits" })
  }
  if (options.region !== undefined && !regionPattern.test(options.region)) {
    return new PolicyInputInvalid({ input: options.region, reason: "not an AWS region name (such as eu-west-1)" })
  }
  if (options.awsPartition !== undefined && !partitionPattern.test(options.awsPartition)) {
    return new PolicyInputInvalid({ input: options.awsPartition, reason: "not an AWS partition (aws, aws-cn, …)" })
  }
  if (options.target.leaseGroup === "" && options.role === "worker") {
    return new PolicyInputInvalid({ input: "--group", reason: "a worker's lease group cannot be empty" })
  }
  return undefined
}

const withCreate = (options: PolicyOptions, setup: ReadonlyArray<string>) =>
  options.createTables === true ? [...setup, ...actions.tableCreate] : [...setup]

/**
 * The policy for one role of one namespace, or why it cannot be written. Item actions on the event table carry
 * `ForAllValues` over LeadingKeys and a `Null` check that the key is present: `ForAllValues` alone is true of a
 * request naming no partition at all (a Scan, a PartiQL statement), so neither is ever granted.
 */
export const make = (options: PolicyOptions): Result.Result<PolicyDocument, PolicyInputInvalid> => {
  const invalid = validate(options)
  if (invalid !== undefined) return Result.fail(invalid)
  const { role, target } = options
  const match = options.match ?? "exact"
  const arn = (resource: string) =>
    `arn:${options.awsPartition ?? "aws"}:dynamodb:${options.region ?? "*"}:${options.account ?? "*"}:table/${resource}`
  const confined = (keys: ReadonlyArray<string>, like: boolean): Condition => ({
    [like ? "ForAllValues:StringLike" : "ForAllValues:StringEquals"]: { [leadingKeys]: keys },
    Null: { [leadingKeys]: "false" }
  })
  const itemActions = role === "readonly" ? [...actions.read] : [...actions.read, ...actions.write]
  const statements: Array<Statement> = [
    {
      Sid: "NamespaceItems",
      Effect: "Allow",
      Action: itemActions,
      Resource: [arn(target.table)],
      Condition: confined(eventTableKeys(target, match, options.migratingFrom), match === "wildcard")
    },
    {
      Sid: "EventTable",
      Effect: "Allow",
      // A store opened by the library checks the table and its TTL at start, whatever it then does.
      Action: role === "readonly" ? [...actions.tableSetup] : withCreate(options, actions.tableSetup),
      Resource: [arn(target.table)]
    }
  ]
  if (role === "worker" || options.watch === true) {
    statements.push({
      Sid: "Stream",
      Effect: "Allow",
      Action: [...actions.stream],
      Resource: [arn(`${target.table}/stream/*`)]
    })
  }
  if (role === "worker") {
    statements.push(
      {
        Sid: "LeaseItems",
        Effect: "Allow",
        Action: [...actions.leases],
        Resource: [arn(target.leaseTable)],
        Condition: confined(leaseTableKeys(target), false)
      },
      {
        Sid: "LeaseTable",
        Effect: "Allow",
        Action: withCreate(options, actions.tableSetup),
        Resource: [arn(target.leaseTable)]
      }
    )
  }
  if (target.viewTables.length > 0) {
    // The worker maintains the views; the application (and a reader) only queries them.
    statements.push({
      Sid: "Views",
      Effect: "Allow",
      Action: [
        ...(role === "worker" ? actions.views : actions.read),
        actions.tableSetup[0],
        ...(options.createTables === true ? [actions.tableCreate[0]] : [])
      ],
      Resource: target.viewTables.map(arn)
    })
  }
  const [generator, ...extra] = options.kmsKeys
  if (generator !== undefined) {
    const context: Condition = {
      StringEquals: {
        [contextKeys.table]: literal(target.storeId),
        [contextKeys.namespace]: literal(target.namespace),
        [contextKeys.purpose]: "data-key"
      }
    }
    const use = role === "readonly" ? ["kms:Decrypt"] : [...actions.kmsDataKeys]
    statements.push({ Sid: "DataKeys", Effect: "Allow", Action: use, Resource: [generator], Condition: context })
    if (extra.length > 0) {
      // The further keys only unwrap (a fallback) and, for writers, wrap copies of what the first key made.
      statements.push({
        Sid: "DataKeyCopies",
        Effect: "Allow",
        Action: role === "readonly" ? ["kms:Decrypt"] : ["kms:Decrypt", ...actions.kmsWrap],
        Resource: extra,
        Condition: context
      })
    }
    statements.push({
      Sid: "ResolveKeys",
      Effect: "Allow",
      Action: [...actions.kmsResolve],
      Resource: [...options.kmsKeys]
    })
  }
  return Result.succeed({ Version: "2012-10-17", Statement: statements })
}

/**
 * The policy as IAM takes it: JSON whose text holds only the characters IAM accepts (tab, newline, carriage return
 * and U+0020–U+00FF); anything else, NUL included, is written as a `\uXXXX` escape.
 */
export const toJson = (policy: PolicyDocument, indent = 2): string =>
  JSON.stringify(policy, null, indent).replace(
    /[^\t\n\r\u0020-\u00ff]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`
  )

/** What the policy does not confine, and what the deployment must do besides, for the person applying it. */
export const notes = (options: PolicyOptions): ReadonlyArray<string> => {
  const { role, target } = options
  const said: Array<string> = [
    `Item requests on ${target.table} are confined to namespace ${JSON.stringify(target.namespace)} by ` +
    "dynamodb:LeadingKeys; Scan, PartiQL and BatchGetItem are not granted (a Scan names no partition and cannot be " +
    "confined). Provisioning, restore and import-teleport need an administrator's principal."
  ]
  if (role === "worker" || options.watch === true) {
    said.push(
      "DynamoDB Streams cannot be confined by LeadingKeys: this principal can read every namespace's stream records " +
        "of the table. Values stay encrypted (decrypting needs the namespace's data keys, which KMS grants by " +
        "encryption context), but keys, sequence numbers, operations, timestamps and expiries are in clear. Use a " +
        "table per tenant where that matters."
    )
  }
  if (role === "worker") {
    said.push(
      target.leaseGroup === "default"
        ? `The worker's lease group is "default": give each namespace's workers a group of their own (lease_group; ` +
          "two namespaces' workers sharing a group would share the shards, and each skip the other's records), " +
          "and name it here with --group."
        : `Leases are confined to lease group ${JSON.stringify(target.leaseGroup)}: run the worker with ` +
          `lease_group: ${target.leaseGroup}.`
    )
  }
  if (target.viewTables.length > 0) {
    said.push(
      "View tables are not partitioned by namespace: the policy names each view's table, so give each namespace's " +
        "views names of their own (two namespaces sharing TABLE.view.<name> would share one index)."
    )
  }
  if (options.kmsKeys.length === 0) {
    said.push(
      "No KMS key: values are encrypted under local raw AES keys, so the isolation of values rests on each " +
        "namespace's application holding its own key file. Pass --kms-key ARN to confine data keys through KMS."
    )
  } else {
    said.push(
      "KMS use is confined to data keys whose encryption context names this table (store id) and namespace; the " +
        "key policy must also allow the principal (or delegate to IAM). `dynastate rewrap` also needs kms:Encrypt " +
        "on the key it wraps under: grant it to whoever rewraps, for that run."
    )
  }
  if ((options.match ?? "exact") === "wildcard") {
    said.push(
      "--match wildcard writes the NUL before graves/history/data-keys as `?`: the policy also admits the live " +
        `events of any namespace named ${JSON.stringify(target.namespace)} + one character + graves, history or ` +
        "data-keys" +
        ((target.partitions ?? []).length === 0
          ? ""
          : " (or, for the partitioned prefixes, + one character + @ and a partition name, with the same suffixes)") +
        ". Use no such namespace on this table, or use --match exact."
    )
  }
  if (options.region === undefined || options.account === undefined) {
    said.push("Region or account not given: the ARNs say `*` there; pass --region and --account to pin them.")
  }
  return said
}
