/**
 * The DynamoDB client as an Effect service: one configured SDK client, and
 * `call`, which runs a request with interruption and turns SDK exceptions into
 * the store's typed failures.
 *
 * Transient failures (throttling, 5xx, network) are retried by the SDK's own
 * retry strategy first; what reaches `call`'s error channel is final.
 */
import { DynamoDBClient, QueryCommand } from "@aws-sdk/client-dynamodb"
import type {
  AttributeValue,
  CancellationReason,
  DynamoDBClientConfig,
  QueryCommandInput,
  QueryCommandOutput
} from "@aws-sdk/client-dynamodb"
import { Context, Data, Effect, Layer, Option, Schedule, Stream } from "effect"
import { StorageFailure, Throttled } from "../domain/Errors.ts"
import { quietly } from "./crypto/QuietCrypto.ts"

/** A DynamoDB item as the SDK represents it. */
export type AttributeMap = Record<string, AttributeValue>

/**
 * The base64 decoder of the SDK clients the store's layers make (`base64Decoder` of the client options): the binary
 * attributes of every item read (an event's sort key and value) come as base64. The SDK's own decoder checks its
 * input with a regular expression before decoding, the largest single cost of a range read's unmarshalling; this
 * one decodes natively and checks that the bytes encode back to the input, so it refuses what the SDK's refuses (any
 * character outside the alphabet, bad padding) with the same `TypeError`.
 */
export const base64Decoder = (input: string): Uint8Array => {
  const decoded = Buffer.from(input, "base64")
  if (decoded.toString("base64") !== input) throw new TypeError("Invalid base64 string.")
  return new Uint8Array(decoded.buffer, decoded.byteOffset, decoded.byteLength)
}

/** A conditional write lost; `item` is the item that made it lose, when DynamoDB returned it. */
export class ConditionalCheckFailed extends Data.TaggedError("ConditionalCheckFailed")<{
  readonly item: AttributeMap | undefined
}> {}

/** A transaction was cancelled; one reason per request item, in order. */
export class TransactionCanceled extends Data.TaggedError("TransactionCanceled")<{
  readonly reasons: ReadonlyArray<CancellationReason>
}> {}

/** Every failure `call` can produce. */
export type CallError = Throttled | StorageFailure | ConditionalCheckFailed | TransactionCanceled

const throttlingNames = new Set([
  "ProvisionedThroughputExceededException",
  "ThrottlingException",
  "RequestLimitExceeded",
  "LimitExceededException"
])

/** Maps an SDK exception to the store's failures; the message never carries request contents. */
export const classify = (operation: string, error: unknown): CallError => {
  const name = (error as { name?: unknown })?.name
  const message = String((error as { message?: unknown })?.message ?? error)
  if (name === "ConditionalCheckFailedException") {
    return new ConditionalCheckFailed({ item: (error as { Item?: AttributeMap }).Item })
  }
  if (name === "TransactionCanceledException") {
    return new TransactionCanceled({
      reasons: (error as { CancellationReasons?: Array<CancellationReason> }).CancellationReasons ?? []
    })
  }
  if (typeof name === "string" && throttlingNames.has(name)) {
    return new Throttled({ operation, reason: `${name}: ${message}` })
  }
  return new StorageFailure({ operation, reason: typeof name === "string" ? `${name}: ${message}` : message })
}

const isTransactionConflict = (error: unknown): boolean =>
  (error as { name?: unknown })?.name === "TransactionConflictException"

const transactionConflictBackoff = Schedule.exponential("10 millis").pipe(
  Schedule.jittered,
  Schedule.upTo({ times: 6 })
)

/** The DynamoDB client the store talks through. */
export class Dynamo extends Context.Service<Dynamo, {
  readonly client: DynamoDBClient
  /** Runs one unconditional SDK request; aborts it when the fiber is interrupted. */
  readonly call: <A>(
    operation: string,
    request: (client: DynamoDBClient, abortSignal: AbortSignal) => Promise<A>
  ) => Effect.Effect<A, Throttled | StorageFailure>
  /** Runs a conditional write, whose condition failure is an outcome, not a fault. */
  readonly callConditional: <A>(
    operation: string,
    request: (client: DynamoDBClient, abortSignal: AbortSignal) => Promise<A>
  ) => Effect.Effect<A, Throttled | StorageFailure | ConditionalCheckFailed>
  /** Runs a transaction, whose cancellation (with a reason per item) is an outcome, not a fault. */
  readonly callTransaction: <A>(
    operation: string,
    request: (client: DynamoDBClient, abortSignal: AbortSignal) => Promise<A>
  ) => Effect.Effect<A, Throttled | StorageFailure | TransactionCanceled>
}>()("dynastate/Dynamo") {
  /** A service over an existing client (the caller owns its lifetime). */
  static readonly fromClient = (client: DynamoDBClient): Dynamo["Service"] => {
    const send = <A>(
      operation: string,
      request: (client: DynamoDBClient, abortSignal: AbortSignal) => Promise<A>
    ): Effect.Effect<A, CallError> =>
      // The SDK signs in the synchronous part of `send`, where Node's key brand checks throw (see QuietCrypto).
      Effect.tryPromise({ try: (signal) => quietly(() => request(client, signal)), catch: (error) => error }).pipe(
        // A single-item write that meets a transaction in flight on the same item is refused with
        // TransactionConflictException, which the SDK does not retry; the transaction ends within milliseconds.
        Effect.retry({ while: isTransactionConflict, schedule: transactionConflictBackoff }),
        Effect.mapError((error) => classify(operation, error))
      )
    // An outcome the caller did not ask for can only be a fault.
    const unexpected = (operation: string) => (error: ConditionalCheckFailed | TransactionCanceled) =>
      Effect.fail(new StorageFailure({ operation, reason: `unexpected ${error._tag}` }))
    return Dynamo.of({
      client,
      call: (operation, request) =>
        send(operation, request).pipe(
          Effect.catchTag(["ConditionalCheckFailed", "TransactionCanceled"], unexpected(operation))
        ),
      callConditional: (operation, request) =>
        send(operation, request).pipe(Effect.catchTag("TransactionCanceled", unexpected(operation))),
      callTransaction: (operation, request) =>
        send(operation, request).pipe(Effect.catchTag("ConditionalCheckFailed", unexpected(operation)))
    })
  }

  /** A service with a client built from SDK options, destroyed when the layer is released. */
  static readonly layer = (config: DynamoDBClientConfig): Layer.Layer<Dynamo> =>
    Layer.effect(
      Dynamo,
      Effect.acquireRelease(
        Effect.sync(() => new DynamoDBClient(config)),
        (client) => Effect.sync(() => client.destroy())
      ).pipe(Effect.map(Dynamo.fromClient))
    )
}

/**
 * Every page of a Query, lazily: the input's `ExclusiveStartKey` starts it, each page's `LastEvaluatedKey` the
 * next. One place for the paging that the adapters reading a whole partition share.
 */
export const queryPages = (
  input: QueryCommandInput
): Stream.Stream<QueryCommandOutput, Throttled | StorageFailure, Dynamo> =>
  Stream.unwrap(
    Dynamo.useSync((dynamo) =>
      Stream.paginate(input.ExclusiveStartKey, (start) =>
        dynamo.call("Query", (client, abortSignal) =>
          client.send(new QueryCommand({ ...input, ExclusiveStartKey: start }), { abortSignal })).pipe(
            Effect.map((page) =>
              [[page], Option.fromNullishOr(page.LastEvaluatedKey)] as const
            )
          ))
    )
  )
