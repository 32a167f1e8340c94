/**
 * The store with a KMS keyring under KMS faults: the real `@aws-sdk/client-kms`
 * client talks to FakeKms, which answers chosen requests with
 * ThrottlingException, AccessDeniedException or KMSInternalException (500),
 * or has its key disabled for a step, at points fast-check picks. Each value
 * gets its own data key (GenerateDataKey per write) and the instances keep no
 * unwrapped keys (Decrypt per read of a value), so faults land on real calls.
 *
 * Replay a failure: FC_SEED=<seed> FC_PATH=<path>; FC_RUNS=<n> for more runs.
 */
import { KMSClient } from "@aws-sdk/client-kms"
import type { KMSClientConfig } from "@aws-sdk/client-kms"
import { Cause, Effect, Exit, Layer } from "effect"
import fc from "fast-check"
import { randomBytes, randomUUID } from "node:crypto"
import * as util from "node:util"
import { afterAll, describe, expect, it } from "vitest"
import type { Item, Lease } from "../../../src/domain/Item.ts"
import { partitionOf } from "../../../src/infra/crypto/DataKeyStore.ts"
import { Keyring } from "../../../src/infra/crypto/Keyring.ts"
import * as KmsKeyring from "../../../src/infra/crypto/KmsKeyring.ts"
import * as FakeKms from "../../support/FakeKms.ts"
import type { RecordedRequest } from "../../support/FakeKms.ts"
import { freshTableName, makeClient, openStore, provisionTable } from "../../support/TestStore.ts"
import { fcParameters, outcomeOf, quickRetries, rawPartition, showOutcome } from "./support.ts"
import type { Outcome } from "./support.ts"

const credentials = {
  accessKeyId: "AKIAFAKEKMSFAULTS001",
  secretAccessKey: "fault/Secret+NeverPrintThis0123456789abcd"
}
const admin = makeClient()
const tableOnce = Effect.runPromise(provisionTable(admin, freshTableName("faults-kms")))
const kmsOnce = FakeKms.start()
afterAll(async () => {
  admin.destroy()
  await (await kmsOnce).close()
})

/** The KMS client's attempts per call (the SDK retries throttling and 500s, not refusals). */
const maxAttempts = 3

type KmsError = "ThrottlingException" | "AccessDeniedException" | "KMSInternalException"
type Fault =
  | { readonly _tag: "none" }
  | { readonly _tag: "inject"; readonly error: KmsError; readonly on: "main" | "other"; readonly times: number }
  | { readonly _tag: "disabled" }
interface Step {
  readonly _tag: "put" | "delete" | "get"
  readonly key: string
  readonly fault: Fault
}

const fault: fc.Arbitrary<Fault> = fc.oneof(
  { arbitrary: fc.constant({ _tag: "none" as const }), weight: 2 },
  {
    arbitrary: fc.record({
      _tag: fc.constant("inject" as const),
      error: fc.constantFrom<KmsError>("ThrottlingException", "AccessDeniedException", "KMSInternalException"),
      on: fc.constantFrom("main" as const, "main" as const, "main" as const, "other" as const),
      times: fc.constantFrom(1, maxAttempts - 1, maxAttempts, maxAttempts, maxAttempts + 1)
    }),
    weight: 5
  },
  { arbitrary: fc.constant({ _tag: "disabled" as const }), weight: 2 }
)
/** The KMS operation a fault hits: the one the call needs most (a write makes a data key, the others unwrap one), or the other. */
const operationOf = (
  s: Step,
  on: "main" | "other"
) => ((s._tag === "put") === (on === "main") ? "GenerateDataKey" : "Decrypt")
const step: fc.Arbitrary<Step> = fc.record({
  _tag: fc.constantFrom("put", "put", "put", "delete", "get", "get", "get"),
  key: fc.constantFrom("/k/a", "/k/b"),
  fault
})
const workload = fc.array(step, { minLength: 1, maxLength: 12 })

/** The KeyringError failure each fault must surface as. */
const kindOf: Record<KmsError | "disabled", string> = {
  ThrottlingException: "throttled",
  AccessDeniedException: "access-denied",
  KMSInternalException: "unavailable",
  disabled: "key-disabled"
}
const dataKeyCalls = (requests: ReadonlyArray<RecordedRequest>) =>
  requests.filter((r) => r.operation === "GenerateDataKey" || r.operation === "Decrypt")

/**
 * Given which KMS requests a call made, whether the fault must fail it (and as what), and how many
 * requests the faulted operation must have seen: a refusal is not retried, a passing failure is, up to
 * `maxAttempts`; fewer injected failures than that are retried away.
 */
const expectation = (s: Step, requests: ReadonlyArray<RecordedRequest>): { kind?: string; requests?: number } => {
  const f = s.fault
  if (f._tag === "none") return {}
  if (f._tag === "disabled") return dataKeyCalls(requests).length > 0 ? { kind: kindOf.disabled, requests: 1 } : {}
  const seen = requests.filter((r) => r.operation === operationOf(s, f.on)).length
  if (seen === 0) return {}
  if (f.error === "AccessDeniedException") return { kind: kindOf[f.error], requests: 1 }
  return f.times >= maxAttempts ? { kind: kindOf[f.error], requests: maxAttempts } : { requests: f.times + 1 }
}

const showFault = (s: Step) =>
  s.fault._tag === "none"
    ? "no fault"
    : s.fault._tag === "disabled"
    ? "key disabled"
    : `${s.fault.error}×${s.fault.times} on ${operationOf(s, s.fault.on)}`
const showItem = (value: unknown) => {
  const item = value as Partial<Item & Lease> | undefined
  return item?.value ? new TextDecoder().decode(item.value) : item?.revision ? `rev …${item.revision.slice(-6)}` : ""
}

/** Every way an error might be shown in a log. */
const renderings = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return ""
  const errors = exit.cause.reasons.map((
    reason
  ) => (Cause.isFailReason(reason) ? reason.error : Cause.isDieReason(reason) ? reason.defect : undefined))
  return [
    Cause.pretty(exit.cause),
    ...errors.flatMap((e) => [String(e), JSON.stringify(e), util.inspect(e, { depth: 10, showHidden: true })])
  ].join("\n")
}

const runWorkload = (steps: ReadonlyArray<Step>) =>
  Effect.gen(function*() {
    const kms = yield* Effect.promise(() => kmsOnce)
    const table = (yield* Effect.promise(() => tableOnce)).table
    const location = { table, namespace: `run-${randomUUID()}` }
    const kmsKey = kms.createKey()
    // Every plaintext data key KMS handed out, to look for in error messages.
    const dataKeys: Array<Buffer> = []
    const client = new KMSClient({
      endpoint: kms.endpoint,
      region: kms.region,
      credentials,
      maxAttempts,
      retryStrategy: quickRetries(maxAttempts) as NonNullable<KMSClientConfig["retryStrategy"]>
    })
    client.middlewareStack.add((next) => async (args) => {
      const result = await next(args)
      const plaintext = (result.output as { Plaintext?: Uint8Array }).Plaintext
      if (plaintext) dataKeys.push(Buffer.from(plaintext))
      return result
    }, { step: "initialize", name: "capturePlaintextDataKeys" })
    yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
    const keyring = Layer.succeed(Keyring, yield* KmsKeyring.make(client, { keyId: kmsKey.arn }))
    const writer = yield* openStore(location, {
      client: admin,
      keyring,
      dataKeyPolicy: { maxValues: 1, readCacheSize: 0 }
    })
    const reader = yield* openStore(location, {
      client: admin,
      keyring,
      dataKeyPolicy: { maxValues: 1, readCacheSize: 0 }
    })
    const snapshot = Effect.all({
      events: rawPartition(admin, table, location.namespace),
      dataKeys: rawPartition(admin, table, partitionOf(location.namespace))
    })

    const model = new Map<string, string>()
    const values: Array<string> = []
    const problems: Array<string> = []
    const lines: Array<string> = []
    const failures: Array<string> = []
    let acknowledgedPuts = 0
    /** Which fault kinds failed which kind of call (`write:throttled`, `read:key-disabled`…). */
    const covered = new Set<string>()
    /** The call's outcome when no fault decides it: what the model says. */
    const normal = (s: Step, outcome: Outcome): string | undefined => {
      const live = model.get(s.key)
      if (s._tag === "put") return outcome._tag === "Success" ? undefined : "should have succeeded"
      if (live === undefined) {
        return outcome._tag === "Failure" && outcome.tag === "NotFound"
          ? undefined
          : "should have been NotFound"
      }
      if (outcome._tag !== "Success") return `should have ${s._tag === "get" ? `read ${live}` : "succeeded"}`
      if (s._tag === "get" && showItem(outcome.value) !== live) return `read ${showItem(outcome.value)}, not ${live}`
      return undefined
    }
    const apply = (s: Step, value: string, outcome: Outcome) => {
      if (outcome._tag !== "Success") return
      if (s._tag === "put") model.set(s.key, value)
      if (s._tag === "delete") model.delete(s.key)
    }

    // Both keys start with a value, so reads and deletes have a data key to unwrap.
    const seeded: ReadonlyArray<Step> = [
      ...["/k/a", "/k/b"].map((key): Step => ({ _tag: "put", key, fault: { _tag: "none" } })),
      ...steps
    ]
    let latest = yield* snapshot
    for (const [index, s] of seeded.entries()) {
      const value = `value-${index}-${randomBytes(8).toString("hex")}`
      values.push(value)
      const call = () =>
        s._tag === "put" ?
          writer.put({ key: s.key, value: new TextEncoder().encode(value) })
          : s._tag === "delete" ?
          writer.delete(s.key)
          : reader.get(s.key)
      kms.reset()
      if (s.fault._tag === "inject") {
        kms.injectFailures({ operation: operationOf(s, s.fault.on), error: s.fault.error, times: s.fault.times })
      }
      if (s.fault._tag === "disabled") {
        kms.disableKey(kmsKey.keyId)
      }
      const before = latest
      const exit = yield* Effect.exit(call() as Effect.Effect<unknown, unknown>)
      const requests = kms.requests
      kms.enableKey(kmsKey.keyId)
      kms.reset()
      latest = yield* snapshot
      const after = latest
      const outcome = outcomeOf(exit)
      const expected = expectation(s, requests)
      const label = `#${index} ${s._tag} ${s.key}`
      lines.push(
        `  #${index} ${s._tag} ${s.key}${s._tag === "put" ? `=${value}` : ""}  [${showFault(s)}]  kms: ${
          requests.map((r) => r.operation).join(" ") || "-"
        }\n      → ${showOutcome(outcome, showItem)}`
      )
      failures.push(renderings(exit))
      if (expected.kind !== undefined) covered.add(`${s._tag === "get" ? "read" : "write"}:${expected.kind}`)
      if (outcome._tag === "Success" && s._tag === "put") acknowledgedPuts++

      if (outcome._tag === "Untyped") problems.push(`${label}: failed with something untyped`)
      if (expected.kind !== undefined) {
        const error = outcome._tag === "Failure" ? (outcome.error as { failure?: string }) : undefined
        if (outcome._tag !== "Failure" || outcome.tag !== "KeyringError" || error?.failure !== expected.kind) {
          problems.push(`${label}: ${showFault(s)} should fail it with KeyringError (${expected.kind})`)
        }
      } else {
        const wrong = normal(s, outcome)
        if (wrong !== undefined) problems.push(`${label}: ${wrong}`)
      }
      const hit = s.fault._tag === "inject" ? operationOf(s, s.fault.on) : undefined
      const faulted = hit === undefined
        ? dataKeyCalls(requests).length
        : requests.filter((r) => r.operation === hit).length
      if (expected.requests !== undefined && faulted !== expected.requests) {
        problems.push(`${label}: KMS saw ${faulted} faulted requests, expected ${expected.requests}`)
      }
      // A failed call and a read write nothing: no event, no data key.
      const added = after.events.filter((id) => !before.events.includes(id))
      if (
        (outcome._tag !== "Success" || s._tag === "get") &&
        (added.length > 0 || after.dataKeys.length !== before.dataKeys.length)
      ) {
        problems.push(
          `${label}: wrote ${added.length} events and ${
            after.dataKeys.length - before.dataKeys.length
          } data keys though it ${s._tag === "get" ? "only read" : "failed"}`
        )
      }
      if (outcome._tag === "Success" && s._tag !== "get") {
        const revision = (outcome.value as Partial<Lease> | undefined)?.revision
        if (added.length !== 1 || (revision !== undefined && added[0] !== revision)) {
          problems.push(`${label}: acknowledged, but added events ${JSON.stringify(added)}`)
        }
      }
      apply(s, value, outcome)
      // Once the fault is gone, the same call works again.
      if (outcome._tag === "Failure" && outcome.tag === "KeyringError") {
        const again = outcomeOf(yield* Effect.exit(call() as Effect.Effect<unknown, unknown>))
        lines.push(`      again without the fault → ${showOutcome(again, showItem)}`)
        const wrong = normal(s, again)
        if (wrong !== undefined) problems.push(`${label} again without the fault: ${wrong}`)
        apply(s, value, again)
        latest = yield* snapshot
      }
    }

    // A fresh instance reads every key as the acknowledged writes left it.
    const fresh = yield* openStore(location, { client: admin, keyring })
    for (const key of ["/k/a", "/k/b"]) {
      const read = outcomeOf(yield* Effect.exit(fresh.get(key)))
      const wrong = normal({ _tag: "get", key, fault: { _tag: "none" } }, read)
      if (wrong !== undefined) problems.push(`fresh read of ${key}: ${wrong}`)
    }

    // No plaintext data key, value or secret credential in any error.
    const text = failures.join("\n")
    const secrets = [
      ...dataKeys.flatMap((k) => [k.toString("base64"), k.toString("base64url"), k.toString("hex")]),
      ...values.map((v) => v.slice(-16)),
      credentials.secretAccessKey
    ]
    for (const secret of secrets) if (text.includes(secret)) problems.push(`an error message shows a secret: ${secret}`)
    if (acknowledgedPuts > 0 && dataKeys.length === 0) {
      problems.push("no plaintext data key was captured: the leak check would prove nothing")
    }
    return { problems, log: lines.join("\n"), covered }
  }).pipe(Effect.scoped)

describe("the store with a KMS keyring under KMS faults", () => {
  it(
    "fails writes and reads with the injected fault's KeyringError, writes nothing then, recovers after, and leaks no secret",
    async () => {
      const covered = new Set<string>()
      const property = fc.asyncProperty(workload, async (steps) => {
        const { log, problems, covered: run } = await Effect.runPromise(runWorkload(steps))
        for (const entry of run) covered.add(entry)
        if (process.env["FC_DEBUG"]) console.log(log)
        if (problems.length > 0) {
          throw new Error(
            `${problems.length} violation(s):\n${problems.map((p) => `  ✗ ${p}`).join("\n")}\nSteps:\n${log}`
          )
        }
      })
      await fc.assert(property, fcParameters(15))
      // The faults really failed calls, reads and writes, with every kind (not only ones that retries absorbed).
      if (process.env["FC_DEBUG"]) console.log(`covered: ${[...covered].sort().join(" ")}`)
      if (fcParameters(15).numRuns >= 15) expect(covered.size).toBeGreaterThanOrEqual(6)
    },
    Math.max(120_000, fcParameters(15).numRuns * 5_000)
  )
})
