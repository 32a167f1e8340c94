/**
 * Shared plumbing of the fault-injection properties: fast-check settings, the
 * faults SDK middleware injects (inside the SDK's retry loop, so every retry
 * meets the schedule again), a quick retry strategy, raw reads of a key's
 * event history, and readable outcomes.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import type { AttributeValue, DynamoDBClientConfig } from "@aws-sdk/client-dynamodb"
import { Cause, Effect, Exit } from "effect"
import fc from "fast-check"
import * as SortKey from "../../../src/domain/SortKey.ts"
import { Attr } from "../../../src/infra/EventRecord.ts"
import { localCredentials } from "../../../src/programs/app/StoreLive.ts"
import * as RawTable from "../../support/RawTable.ts"
import { endpoint } from "../../support/TestStore.ts"
import type { TestTable } from "../../support/TestStore.ts"

/** fast-check settings from the environment: FC_SEED, FC_RUNS, FC_PATH (replay of a failure). */
export const fcParameters = (defaultRuns = 15) => {
  const path = process.env["FC_PATH"]
  return {
    seed: Number(process.env["FC_SEED"] ?? 20261125),
    numRuns: Number(process.env["FC_RUNS"] ?? defaultRuns),
    ...(path !== undefined && path !== "" ? { path } : {})
  }
}

/** What happens to one request attempt. */
export type Fault = "pass" | "throttle" | "server" | "timeout" | "lost"

/** Mostly passes, so that retries often succeed and sometimes run out. */
export const faultArb: fc.Arbitrary<Fault> = fc.oneof(
  { arbitrary: fc.constant<Fault>("pass"), weight: 5 },
  { arbitrary: fc.constantFrom<Fault>("throttle", "server", "timeout", "lost"), weight: 3 }
)

/** The error a fault answers with, shaped like what the SDK itself throws. */
export const faultError = (fault: Exclude<Fault, "pass">): Error => {
  switch (fault) {
    case "throttle":
      return Object.assign(
        new Error("The level of configured provisioned throughput for the table was exceeded (injected)"),
        {
          name: "ProvisionedThroughputExceededException",
          $fault: "client",
          $metadata: { httpStatusCode: 400 }
        }
      )
    case "server":
      return Object.assign(new Error("Internal server error (injected)"), {
        name: "InternalServerError",
        $fault: "server",
        $metadata: { httpStatusCode: 500 }
      })
    case "timeout":
      return Object.assign(new Error("connection timed out before sending (injected)"), {
        name: "TimeoutError",
        $metadata: {}
      })
    case "lost":
      return Object.assign(new Error("socket hang up after the request was sent (injected)"), {
        code: "ECONNRESET",
        $metadata: {}
      })
  }
}

/**
 * The SDK's standard retry decision (throttling and transient errors are
 * retried, up to `maxAttempts` attempts) with millisecond backoff instead of
 * the 1 s throttling base, so property runs stay fast.
 */
export const quickRetries = (maxAttempts: number): NonNullable<DynamoDBClientConfig["retryStrategy"]> => {
  const token = (count: number) => ({ getRetryCount: () => count, getRetryDelay: () => 1 + count })
  return {
    mode: "standard",
    acquireInitialRetryToken: async () => token(0),
    refreshRetryTokenForRetry: async (previous: ReturnType<typeof token>, info: { readonly errorType: string }) => {
      const count = previous.getRetryCount() + 1
      if ((info.errorType === "THROTTLING" || info.errorType === "TRANSIENT") && count < maxAttempts) {
        return token(count)
      }
      throw new Error("No retry token available")
    },
    recordSuccess: () => {}
  } as unknown as NonNullable<DynamoDBClientConfig["retryStrategy"]>
}

/** One request attempt a fault-injecting client saw. */
export interface Attempt {
  readonly command: string
  readonly input: unknown
  readonly fault: Fault
  /** Which attempt of its request this was (from the SDK's `amz-sdk-request` header), from 1. */
  readonly attempt: number
  /** Whether the SDK gives up on the request if this attempt fails. */
  readonly last: boolean
}

/** A middleware that asks `next` for each attempt's fault and records the attempt. */
export const injectFaults = (
  client: DynamoDBClient,
  decide: (command: string, input: unknown) => Fault,
  record: (attempt: Attempt) => void
): DynamoDBClient => {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = String(context.commandName).replace(/Command$/, "")
      const fault = decide(command, args.input)
      const header = (args.request as { headers?: Record<string, string> }).headers?.["amz-sdk-request"] ?? ""
      const [, attempt = "1", max = "1"] = /attempt=(\d+); max=(\d+)/.exec(header) ?? []
      record({ command, input: args.input, fault, attempt: Number(attempt), last: attempt === max })
      if (fault === "pass") return next(args)
      if (fault === "lost") {
        await next(args).catch(() => undefined)
      }
      throw faultError(fault)
    },
    // Low priority in finalizeRequest: inside the SDK's retry middleware, so every retry passes here again.
    { step: "finalizeRequest", priority: "low", name: "propertyFaultInjection" }
  )
  return client
}

/** A DynamoDB client on the test endpoint with quick retries and injected faults. */
export const faultyDynamo = (
  maxAttempts: number,
  decide: (command: string, input: unknown) => Fault,
  record: (attempt: Attempt) => void
): DynamoDBClient =>
  injectFaults(
    new DynamoDBClient({
      endpoint: endpoint(),
      region: "us-east-1",
      credentials: localCredentials,
      maxAttempts,
      retryStrategy: quickRetries(maxAttempts)
    }),
    decide,
    record
  )

/** One event item as it is in the table, not decrypted. */
export interface RawEvent {
  readonly key: string
  readonly seq: number
  readonly revision: string
  readonly op: string
  readonly valueRevision: string | undefined
  readonly expires: number | undefined
  readonly timestamp: number
}

/** The events of a key in its live range (pk = namespace, sk between the key's bounds), oldest first. */
export const rawHistory = (
  client: DynamoDBClient,
  location: TestTable,
  key: string
): Effect.Effect<ReadonlyArray<RawEvent>> =>
  Effect.promise(async () =>
    (await RawTable.rawKeyItems(client, location, key)).map((item): RawEvent => {
      const { seq } = SortKey.decode(item[Attr.sort]!.B!)
      const expires = item[Attr.expires]?.N
      return {
        key,
        seq,
        revision: item[Attr.revision]!.S!,
        op: item[Attr.op]!.S!,
        valueRevision: item[Attr.valueRevision]?.S,
        expires: expires === undefined ? undefined : Number(expires),
        timestamp: Number(item[Attr.timestamp]!.N)
      }
    }).sort((a, b) => a.seq - b.seq)
  )

/** The event writes in a request: `[key, revision]` of every PutItem or transaction Put in the namespace's partition. */
export const eventWrites = (
  location: TestTable,
  command: string,
  input: unknown
): ReadonlyArray<readonly [string, string]> => {
  type Item = Record<string, AttributeValue>
  const items: Array<Item | undefined> = command === "PutItem"
    ? [(input as { Item?: Item }).Item]
    : command === "TransactWriteItems"
    ? ((input as { TransactItems?: ReadonlyArray<{ Put?: { Item?: Item } }> }).TransactItems ?? []).map((entry) =>
      entry.Put?.Item
    )
    : []
  return items.flatMap((item) => {
    const sortKey = item?.[Attr.sort]?.B
    const revision = item?.[Attr.revision]?.S
    return item?.[Attr.partition]?.S === location.namespace && sortKey && revision
      ? [[SortKey.decode(sortKey).key, revision] as const]
      : []
  })
}

/** How a call ended: its value, a typed failure (tag and message), or something untyped (defect, interruption). */
export type Outcome =
  | { readonly _tag: "Success"; readonly value: unknown }
  | { readonly _tag: "Failure"; readonly tag: string; readonly message: string; readonly error: unknown }
  | { readonly _tag: "Untyped"; readonly pretty: string }

/** The outcome of an exit; a cause with anything but exactly one typed failure is `Untyped`. */
export const outcomeOf = (exit: Exit.Exit<unknown, unknown>): Outcome => {
  if (Exit.isSuccess(exit)) return { _tag: "Success", value: exit.value }
  const reasons = exit.cause.reasons
  const only = reasons[0]
  if (reasons.length === 1 && only !== undefined && Cause.isFailReason(only)) {
    const error = only.error as { _tag?: unknown; message?: unknown }
    if (typeof error?._tag === "string") {
      return { _tag: "Failure", tag: error._tag, message: String(error.message), error }
    }
  }
  return { _tag: "Untyped", pretty: Cause.pretty(exit.cause) }
}

/** Short form of a revision for logs. */
export const short = (
  revision: string | undefined
): string => (revision === undefined || revision === "" ? "-" : `…${revision.slice(-6)}`)

/** An outcome for a log line. */
export const showOutcome = (outcome: Outcome | undefined, showValue: (value: unknown) => string = String): string =>
  outcome === undefined
    ? "(not run)"
    : outcome._tag === "Success"
    ? `ok ${showValue(outcome.value)}`
    : outcome._tag === "Failure"
    ? `FAIL ${outcome.tag}: ${outcome.message}`
    : `UNTYPED ${outcome.pretty.split("\n").slice(0, 3).join(" / ")}`

/** Every item of one partition, each as its event id or else its sort key in hex (a snapshot to compare before and after a call). */
export const rawPartition = (
  client: DynamoDBClient,
  table: string,
  partition: string
): Effect.Effect<ReadonlyArray<string>> =>
  Effect.promise(async () =>
    (await RawTable.rawPartition(client, table, partition)).map((item) =>
      item[Attr.revision]?.S ?? Buffer.from(item[Attr.sort]?.B ?? new Uint8Array()).toString("hex")
    )
  )
