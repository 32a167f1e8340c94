/**
 * The DynamoDB client as an Effect service: one configured SDK client, and
 * `call`, which runs a request with interruption and turns SDK exceptions into
 * the store's typed failures.
 *
 * Transient failures (throttling, 5xx, network) are retried by the SDK's own
 * retry strategy first; what reaches `call`'s error channel is final.
 */
import { DynamoDBClient, PutItemCommand, QueryCommand } from "@aws-sdk/client-dynamodb"
import type {
  AttributeValue,
  CancellationReason,
  DynamoDBClientConfig,
  PutItemCommandInput,
  PutItemCommandOutput,
  QueryCommandInput,
  QueryCommandOutput
} from "@aws-sdk/client-dynamodb"
import { Clock, Context, Data, Effect, Layer, Option, Schedule, Stream } from "effect"
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

/**
 * When a request must be answered by, in epoch milliseconds of the calling fiber's `Clock`, and what the call fails
 * with if it is not: the request is aborted then (it may still have been applied; the caller says so in `failure`).
 */
export interface Deadline {
  readonly at: number
  readonly failure: () => StorageFailure
}

// The clock a fiber has when nobody provided one: its timers are the event loop's own.
const defaultClock = Context.get(Context.empty(), Clock.Clock)

type Request<A> = (client: DynamoDBClient, abortSignal: AbortSignal) => Promise<A>

/** One request, aborted when the fiber is interrupted; `quietly`, as the SDK signs in the synchronous part of `send`. */
const attempt = <A>(client: DynamoDBClient, request: Request<A>): Effect.Effect<A, unknown> =>
  Effect.tryPromise({ try: (signal) => quietly(() => request(client, signal)), catch: (error) => error })

/**
 * One request aborted at `deadline` too. On the default clock a timer of the event loop aborts it, with no fiber
 * forked (a race with a sleeping fiber cost more than the rest of a cached write's own work); on any other clock
 * (a test's) the deadline sleeps on that clock, as `Effect.timeout` would.
 */
const attemptBy = <A>(client: DynamoDBClient, request: Request<A>, deadline: Deadline): Effect.Effect<A, unknown> =>
  Effect.withFiber((fiber) => {
    const clock = fiber.getRef(Clock.Clock)
    const remaining = deadline.at - clock.currentTimeMillisUnsafe()
    if (remaining <= 0) return Effect.fail(deadline.failure())
    if (clock !== defaultClock) {
      return Effect.timeoutOrElse(attempt(client, request), {
        duration: remaining,
        orElse: () => Effect.fail(deadline.failure())
      })
    }
    return Effect.callback<A, unknown>((resume) => {
      const controller = new AbortController()
      let settled = false
      const settle = (outcome: Effect.Effect<A, unknown>) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resume(outcome)
      }
      // Answered at the deadline whether or not the request heeds the abort (aborted first: resuming may run on).
      const timer = setTimeout(() => {
        controller.abort()
        settle(Effect.fail(deadline.failure()))
      }, remaining)
      try {
        quietly(() => request(client, controller.signal)).then(
          (value) => settle(Effect.succeed(value)),
          (error) => settle(Effect.fail(error))
        )
      } catch (error) {
        settle(Effect.fail(error))
      }
      return Effect.sync(() => {
        clearTimeout(timer)
        controller.abort()
      })
    })
  })

const isTransactionConflict = (error: unknown): boolean =>
  (error as { name?: unknown })?.name === "TransactionConflictException"

const noOutcomes: ReadonlySet<string> = new Set()
const conditionalOutcomes: ReadonlySet<string> = new Set(["ConditionalCheckFailed"])
const transactionOutcomes: ReadonlySet<string> = new Set(["TransactionCanceled"])

/** The pause before a write that met a transaction is sent again (and before each retry after). */
const transactionConflictPause = "10 millis"

/** The retries after the first (seven attempts in all), backing off. */
const transactionConflictBackoff = Schedule.exponential("10 millis").pipe(
  Schedule.jittered,
  Schedule.upTo({ times: 5 })
)

/** The DynamoDB client the store talks through. */
export class Dynamo extends Context.Service<Dynamo, {
  readonly client: DynamoDBClient
  /** Runs one unconditional SDK request; aborts it when the fiber is interrupted, or at `deadline`. */
  readonly call: <A>(
    operation: string,
    request: (client: DynamoDBClient, abortSignal: AbortSignal) => Promise<A>,
    deadline?: Deadline
  ) => Effect.Effect<A, Throttled | StorageFailure>
  /** Runs a conditional write, whose condition failure is an outcome, not a fault. */
  readonly callConditional: <A>(
    operation: string,
    request: (client: DynamoDBClient, abortSignal: AbortSignal) => Promise<A>,
    deadline?: Deadline
  ) => Effect.Effect<A, Throttled | StorageFailure | ConditionalCheckFailed>
  /** Runs a transaction, whose cancellation (with a reason per item) is an outcome, not a fault. */
  readonly callTransaction: <A>(
    operation: string,
    request: (client: DynamoDBClient, abortSignal: AbortSignal) => Promise<A>,
    deadline?: Deadline
  ) => Effect.Effect<A, Throttled | StorageFailure | TransactionCanceled>
}>()("dynastate/Dynamo") {
  /** A service over an existing client (the caller owns its lifetime). */
  static readonly fromClient = (client: DynamoDBClient): Dynamo["Service"] => {
    /**
     * One request and its failures as the store's, those of the outcomes in `outcomes` kept as they are: any other
     * outcome can only be a fault. One handler, entered only on failure: layered combinators cost a cached write
     * more than its own work.
     */
    const sending = <E extends CallError>(outcomes: ReadonlySet<string>) =>
    <A>(
      operation: string,
      request: Request<A>,
      deadline?: Deadline
    ): Effect.Effect<A, E | Throttled | StorageFailure> => {
      const once = deadline === undefined ? attempt(client, request) : attemptBy(client, request, deadline)
      const failWith = (error: unknown): Effect.Effect<never, E | Throttled | StorageFailure> => {
        if (error instanceof StorageFailure) return Effect.fail(error)
        const failure = classify(operation, error)
        if (failure._tag !== "ConditionalCheckFailed" && failure._tag !== "TransactionCanceled") {
          return Effect.fail(failure)
        }
        return outcomes.has(failure._tag)
          ? Effect.fail(failure as E)
          : Effect.fail(new StorageFailure({ operation, reason: `unexpected ${failure._tag}` }))
      }
      return Effect.catch(once, (error) =>
        // A single-item write that meets a transaction in flight on the same item is refused with
        // TransactionConflictException, which the SDK does not retry; the transaction ends within milliseconds.
        isTransactionConflict(error)
          ? Effect.catch(
            Effect.retry(Effect.delay(once, transactionConflictPause), {
              while: isTransactionConflict,
              schedule: transactionConflictBackoff
            }),
            failWith
          )
          : failWith(error))
    }
    return Dynamo.of({
      client,
      call: sending<never>(noOutcomes),
      callConditional: sending<ConditionalCheckFailed>(conditionalOutcomes),
      callTransaction: sending<TransactionCanceled>(transactionOutcomes)
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
 * One conditional `PutItem`: the condition failing is an outcome (`ConditionalCheckFailed`, carrying the item that
 * made it fail when the input asks for it), not a fault. The one shape every conditional put of the adapters shares.
 */
export const conditionalPut = (
  dynamo: Dynamo["Service"],
  input: PutItemCommandInput,
  deadline?: Deadline
): Effect.Effect<PutItemCommandOutput, Throttled | StorageFailure | ConditionalCheckFailed> =>
  dynamo.callConditional(
    "PutItem",
    (client, abortSignal) => client.send(new PutItemCommand(input), { abortSignal }),
    deadline
  )

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
