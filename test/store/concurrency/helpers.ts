/**
 * Shared helpers of the concurrency tests: byte values, raw table scans (the
 * ground truth, read around the store), clients with fault-injecting SDK
 * middleware, and a bare actor system for tests that need `KeyActors.size()`.
 */
import { DynamoDBClient, ScanCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue } from "@aws-sdk/client-dynamodb"
import { Cause, Context, Effect, Exit, Layer } from "effect"
import type { Scope } from "effect"
import * as SortKey from "../../../src/domain/SortKey.ts"
import { Attr } from "../../../src/infra/EventRecord.ts"
import { localCredentials } from "../../../src/programs/app/StoreLive.ts"
import { KeyActors } from "../../../src/programs/store/KeyActors.ts"
import type { ActorOptions } from "../../../src/programs/store/KeyActors.ts"
import { WriteAcks } from "../../../src/programs/store/WriteAcks.ts"
import { endpoint, eventTableLayer } from "../../support/TestStore.ts"
import type { TestTable } from "../../support/TestStore.ts"

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** The UTF-8 bytes of a string, as a store value. */
export const bytes = (text: string): Uint8Array => encoder.encode(text)

/** A store value back as a string. */
export const text = (value: Uint8Array): string => decoder.decode(value)

/** One event item as it is in the table, not decrypted. */
export interface RawEvent {
  readonly key: string
  readonly seq: number
  readonly revision: string
  readonly op: string
  readonly valueRevision: string | undefined
}

/**
 * Every event item of the test namespace, by a plain paginated Scan (no store code involved but the sort
 * key codec). Data keys live in another partition of the same table and are left out.
 */
export const rawEvents = (client: DynamoDBClient, location: TestTable): Effect.Effect<ReadonlyArray<RawEvent>> =>
  Effect.promise(async () => {
    const out: Array<RawEvent> = []
    let start: Record<string, AttributeValue> | undefined
    do {
      const page = await client.send(
        new ScanCommand({ TableName: location.table, ConsistentRead: true, ExclusiveStartKey: start })
      )
      for (const item of page.Items ?? []) {
        if (item[Attr.partition]?.S !== location.namespace) continue
        const { key, seq } = SortKey.decode(item[Attr.sort]!.B!)
        out.push({
          key,
          seq,
          revision: item[Attr.revision]!.S!,
          op: item[Attr.op]!.S!,
          valueRevision: item[Attr.valueRevision]?.S
        })
      }
      start = page.LastEvaluatedKey
    } while (start !== undefined)
    return out
  })

/** The raw events of one key, oldest first. */
export const rawEventsOf = (client: DynamoDBClient, location: TestTable, key: string) =>
  Effect.map(
    rawEvents(client, location),
    (events) => events.filter((event) => event.key === key).sort((a, b) => a.seq - b.seq)
  )

/** Whether an exit failed with exactly one typed failure with this tag (not a defect, not an interruption). */
export const failedWith = (exit: Exit.Exit<unknown, unknown>, tag: string): boolean =>
  Exit.isFailure(exit) &&
  exit.cause.reasons.length === 1 &&
  Cause.isFailReason(exit.cause.reasons[0]!) &&
  (exit.cause.reasons[0].error as { _tag?: string })._tag === tag

/** The tag of an exit: `Success`, the failure's `_tag`, or `Defect`/`Interrupt`. */
export const outcomeTag = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "Success"
  const reason = exit.cause.reasons[0]
  if (reason === undefined) return "Empty"
  if (Cause.isFailReason(reason)) return (reason.error as { _tag?: string })._tag ?? "Fail"
  return Cause.isDieReason(reason) ? "Defect" : "Interrupt"
}

/** SDK client options for DynamoDB Local. */
export const clientOptions = (maxAttempts: number) => ({
  endpoint: endpoint(),
  region: "us-east-1",
  credentials: localCredentials,
  maxAttempts
})

/** What a middleware does with one request: pass it on, or fail it (after or instead of sending it). */
export type Interception =
  | "pass"
  | "drop-response" // send it, then lose whatever came back (success or service error)
  | "throttle" // never send it; answer with a throttling error
  | "cancel-throttled" // never send it; answer as DynamoDB answers a throttled transaction
  | "deny" // never send it; answer as DynamoDB answers a principal without the permission (not retried)
  | "conflict" // never send it; answer that its condition failed, with no item (as if a competitor won)

/** Counts of what a fault-injecting client saw, by command name (e.g. `PutItemCommand`). */
export interface FaultLog {
  readonly sent: Map<string, number>
  readonly dropped: Map<string, number>
  readonly throttled: Map<string, number>
  readonly denied: Map<string, number>
  readonly conflicted: Map<string, number>
  /** Service errors DynamoDB answered with, by error name (e.g. `ConditionalCheckFailedException`). */
  readonly serviceErrors: Map<string, number>
}

const bump = (counts: Map<string, number>, name: string) => counts.set(name, (counts.get(name) ?? 0) + 1)

/** Whether a request input is a PutItem of an event (not of a data key) in the test namespace. */
export const isEventPut = (location: TestTable, input: unknown): boolean =>
  (input as { Item?: Record<string, AttributeValue> }).Item?.[Attr.partition]?.S === location.namespace

/** Whether a request input is a TransactWriteItems (an append in strict mode, or an atomic write). */
export const isTransaction = (input: unknown): boolean =>
  (input as { TransactItems?: unknown }).TransactItems !== undefined

/** A count of a `FaultLog` map, 0 when absent. */
export const countOf = (counts: Map<string, number>, name: string): number => counts.get(name) ?? 0

/**
 * A client whose every request attempt goes through `decide`. The middleware sits
 * in the finalizeRequest step with low priority, i.e. *inside* the SDK's retry
 * middleware (finalizeRequest, high priority): every SDK retry passes it again,
 * and the errors it throws are classified by the SDK's retry strategy.
 * A `TimeoutError` is transient, a `ProvisionedThroughputExceededException` is throttling: both are retried.
 */
export const faultyClient = (
  maxAttempts: number,
  decide: (command: string, input: unknown, log: FaultLog) => Interception
): { readonly client: DynamoDBClient; readonly log: FaultLog } => {
  const client = new DynamoDBClient(clientOptions(maxAttempts))
  const log: FaultLog = {
    sent: new Map(),
    dropped: new Map(),
    throttled: new Map(),
    denied: new Map(),
    conflicted: new Map(),
    serviceErrors: new Map()
  }
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = String(context.commandName)
      const interception = decide(command, args.input, log)
      if (interception === "throttle") {
        bump(log.throttled, command)
        throw Object.assign(new Error("Rate exceeded"), {
          name: "ProvisionedThroughputExceededException",
          $metadata: { httpStatusCode: 400 },
          $fault: "client"
        })
      }
      if (interception === "cancel-throttled") {
        bump(log.throttled, command)
        const items = (args.input as { TransactItems?: ReadonlyArray<unknown> }).TransactItems ?? []
        throw Object.assign(
          new Error("Transaction cancelled, please refer cancellation reasons for specific reasons"),
          {
            name: "TransactionCanceledException",
            $metadata: { httpStatusCode: 400 },
            $fault: "client",
            CancellationReasons: items.map((_, i) =>
              i === 0
                ? {
                  Code: "ThrottlingError",
                  Message: "Throughput exceeds the current capacity of your table or index."
                }
                : { Code: "None" }
            )
          }
        )
      }
      if (interception === "deny") {
        bump(log.denied, command)
        throw Object.assign(
          new Error(
            `User: arn:aws:sts::123456789012:assumed-role/reader is not authorized to perform: dynamodb:${
              command.replace(/Command$/, "")
            }`
          ),
          { name: "AccessDeniedException", $metadata: { httpStatusCode: 400 }, $fault: "client" }
        )
      }
      if (interception === "conflict") {
        bump(log.conflicted, command)
        throw Object.assign(new Error("The conditional request failed"), {
          name: "ConditionalCheckFailedException",
          $metadata: { httpStatusCode: 400 },
          $fault: "client"
        })
      }
      bump(log.sent, command)
      let result: Awaited<ReturnType<typeof next>>
      try {
        result = await next(args)
      } catch (error) {
        bump(log.serviceErrors, String((error as { name?: unknown }).name))
        if (interception !== "drop-response") throw error
      }
      if (interception === "drop-response") {
        bump(log.dropped, command)
        throw Object.assign(new Error("socket hang up"), { name: "TimeoutError", $metadata: {} })
      }
      return result!
    },
    { step: "finalizeRequest", priority: "low", name: "testFaultInjection" }
  )
  return { client, log }
}

/** A request held back by {@link holdFirst}. */
export interface HeldRequest {
  /** From now on, the next request the predicate picks is held. */
  readonly arm: Effect.Effect<void>
  /** Waits until a request has been caught (its writer has decided it); dies if none is within 20 s. */
  readonly arrived: Effect.Effect<void>
  /** Lets the caught request go on to DynamoDB (it is also let go when the scope closes). */
  readonly release: Effect.Effect<void>
  /** How many requests were caught: 0 or 1. */
  readonly count: () => number
}

/**
 * Holds back the first request `picks` chooses once armed, before the SDK sends it, until the test releases it: a
 * writer frozen after deciding. Tests order other writes after `arrived` and land the request with `release`,
 * where a sleep and a fixed hold would each guess how fast the machine is.
 */
export const holdFirst = (
  client: DynamoDBClient,
  picks: (input: unknown) => boolean,
  options: { readonly armed: boolean } = { armed: true }
): Effect.Effect<HeldRequest, never, Scope.Scope> =>
  Effect.gen(function*() {
    let armed = options.armed
    let caught = 0
    const arrived = Promise.withResolvers<void>()
    const released = Promise.withResolvers<void>()
    client.middlewareStack.add(
      (next) => async (args) => {
        if (armed && picks(args.input)) {
          armed = false
          caught++
          arrived.resolve()
          await released.promise
        }
        return next(args)
      },
      { step: "initialize", name: "holdFirst" }
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => released.resolve()))
    return {
      arm: Effect.sync(() => {
        armed = true
      }),
      arrived: Effect.promise(() => arrived.promise).pipe(
        Effect.timeoutOrElse({
          duration: "20 seconds",
          orElse: () => Effect.die(new Error("no request was caught to hold within 20 s"))
        })
      ),
      release: Effect.sync(() => released.resolve()),
      count: () => caught
    }
  })

/** A bare actor system (what `Store.layer` builds privately) on a table, to read `size()` and run commands. */
export const openActors = (
  location: TestTable,
  client: DynamoDBClient,
  options: ActorOptions
): Effect.Effect<KeyActors["Service"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const layer = KeyActors.layer(options).pipe(
      Layer.provide(eventTableLayer(location, { client })),
      Layer.provide(WriteAcks.layer)
    )
    return Context.get(yield* Layer.build(layer), KeyActors)
  })
