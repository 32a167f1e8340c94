/**
 * `dynastate policy`: prints the least-privilege IAM policy of one namespace's principal (`NamespacePolicy`), for
 * the namespace and table the configuration (or `--namespace`, `--table`) names. Text output is the policy alone,
 * pretty JSON ready for `aws iam put-role-policy --policy-document`, with what it cannot confine said on stderr;
 * `-o json` is one line holding the policy and those notes. Nothing is read from AWS or DynamoDB.
 */
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { ConfigInvalid } from "../../../infra/config/ConfigInvalid.ts"
import { fields } from "../../../infra/config/Fields.ts"
import * as NamespacePolicy from "../../ops/NamespacePolicy.ts"
import * as Target from "../../ops/Target.ts"
import { loadConfig } from "./Globals.ts"
import { OutputFormat } from "./Output.ts"

const flags = {
  role: Flag.Literals("role", ["app", "worker", "readonly"]).pipe(
    Flag.withDefault("app" as const),
    Flag.withDescription("app: reads and writes; worker: the projection worker; readonly: reads and backups")
  ),
  kmsKeys: Flag.String("kms-key").pipe(
    Flag.atLeast(0),
    Flag.withDescription(
      "a KMS key ARN (the first makes data keys, others wrap copies); repeatable; default: kms_key and " +
        "kms_extra_keys of the configuration"
    )
  ),
  account: Flag.String("account").pipe(
    Flag.optional,
    Flag.withDescription("the AWS account id of the ARNs (default: *)")
  ),
  group: Flag.String("group").pipe(
    Flag.optional,
    Flag.withDescription("the worker's lease group (role worker; default: lease_group of the configuration)")
  ),
  views: Flag.String("view").pipe(
    Flag.atLeast(0),
    Flag.withDescription("an index view the namespace uses (its table TABLE.view.<name>); repeatable")
  ),
  watch: Flag.Boolean("watch").pipe(
    Flag.withDefault(false),
    Flag.withDescription("role app also watches: grant the stream (which no policy confines to a namespace)")
  ),
  allowCreate: Flag.Boolean("allow-create").pipe(
    Flag.withDefault(false),
    Flag.withDescription("the principal may create missing tables and turn their TTL on")
  ),
  migratingFrom: Flag.String("migrating-from").pipe(
    Flag.optional,
    Flag.withDescription(
      "the layout a partition migration moves the namespace from (as partitioned_prefixes: PREFIX:NAME[:BUCKETS], " +
        "comma-separated): its partitions are granted too until the migration settles"
    )
  ),
  match: Flag.Literals("match", ["exact", "wildcard"]).pipe(
    Flag.withDefault("exact" as const),
    Flag.withDescription(
      "exact: derived partitions listed with NUL as \\u0000; wildcard: NUL as `?` (see the notes it prints)"
    )
  )
}

const policy = Command.make("policy", flags, (options) =>
  Effect.gen(function*() {
    const { config } = yield* loadConfig
    const configured = [...Option.toArray(config.kmsKey), ...config.kmsExtraKeys]
    const migratingFrom = yield* Option.match(options.migratingFrom, {
      onNone: () => Effect.succeed(undefined),
      onSome: (text) =>
        Effect.mapError(
          Effect.fromResult(fields.partitionedPrefixes.parse(text)),
          (reason) => new ConfigInvalid({ field: "--migrating-from", reason: `${JSON.stringify(text)} ${reason}` })
        )
    })
    const policyOptions: NamespacePolicy.PolicyOptions = {
      target: Target.fromConfig(config, { leaseGroup: Option.getOrUndefined(options.group), views: options.views }),
      role: options.role,
      kmsKeys: options.kmsKeys.length > 0 ? options.kmsKeys : configured,
      region: Option.getOrUndefined(config.region),
      account: Option.getOrUndefined(options.account),
      match: options.match,
      watch: options.watch,
      createTables: options.allowCreate,
      migratingFrom
    }
    const document = yield* Effect.fromResult(NamespacePolicy.make(policyOptions))
    const notes = NamespacePolicy.notes(policyOptions)
    if ((yield* OutputFormat) === "json") {
      return yield* Console.log(`{"policy":${NamespacePolicy.toJson(document, 0)},"notes":${JSON.stringify(notes)}}`)
    }
    yield* Console.log(NamespacePolicy.toJson(document))
    for (const note of notes) yield* Console.error(`note: ${note}`)
  })).pipe(
    Command.withDescription(
      "Print the least-privilege IAM policy of one namespace's principal (--namespace): item access confined by " +
        "dynamodb:LeadingKeys, KMS by encryption context; what IAM cannot confine is noted on stderr"
    )
  )

/** The `policy` command. */
export const policyCommands = [policy] as const
