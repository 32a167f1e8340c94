/**
 * Signed high-water checkpoints: every key's newest seq and revision as an audit found them, in a JSON file signed
 * with an HMAC key that only holders of the store's key material can derive. A later audit verifies the signature
 * and reports every key that now reads older than the checkpoint says (rolled back) or not at all (disappeared).
 *
 * The signing key is a named data key of the store's own (`DataKeys.named`), wrapped by the keyring like every
 * other data key, so it works the same under a local key file and under KMS; HKDF derives the HMAC key from it
 * for this one purpose, bound to the store id and namespace. Someone who can write the table but holds no key
 * material can neither unwrap it nor replace it with one of their own that the keyring would unwrap.
 */
import { Effect, Redacted, Schema } from "effect"
import { createHmac, hkdfSync, timingSafeEqual } from "node:crypto"
import * as fs from "node:fs"
import type { DataKeys } from "../../infra/crypto/DataKeys.ts"
import type { KeyringError } from "../../infra/crypto/Keyring.ts"
import type { Location } from "../../infra/EventRecord.ts"

/** The `format` every checkpoint names. */
export const formatName = "dynastate-checkpoint"

/** The version of the format this code writes and reads. */
export const formatVersion = 1

/** The id of the named data key checkpoints are signed with (its scope is `named:<id>`). */
export const signingKeyId = "audit-checkpoint"

/** A key's newest event as a checkpoint records it: key, seq, revision (null when it could not be read). */
export const Entry = Schema.Tuple([Schema.String, Schema.Int, Schema.NullOr(Schema.String)])

/** One key's high-water mark. */
export type Entry = typeof Entry.Type

/** A checkpoint file. */
export const CheckpointFile = Schema.Struct({
  format: Schema.Literal(formatName),
  version: Schema.Literal(formatVersion),
  storeId: Schema.String,
  namespace: Schema.String,
  takenAt: Schema.String,
  /** In key order, each key once. */
  keys: Schema.Array(Entry),
  /** HMAC-SHA256 (hex) of the fields above, see {@link signedBytes}. */
  signature: Schema.String
})

/** A checkpoint as read from or written to its file. */
export type CheckpointFile = typeof CheckpointFile.Type

/** Why a checkpoint was refused. */
export const CheckpointProblem = Schema.Literals(["unreadable", "malformed", "other-store", "no-signing-key", "forged"])

/** A checkpoint file cannot be trusted or read: nothing is compared against it. */
export class CheckpointInvalid extends Schema.TaggedError<CheckpointInvalid>()("CheckpointInvalid", {
  path: Schema.String,
  kind: CheckpointProblem,
  reason: Schema.String
}) {
  override get message() {
    return `checkpoint ${this.path} refused (${this.kind}): ${this.reason}`
  }
}

/** The checkpoint could not be written. */
export class CheckpointWriteFailed extends Schema.TaggedError<CheckpointWriteFailed>()("CheckpointWriteFailed", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `cannot write checkpoint ${this.path}: ${this.reason}`
  }
}

/** Keyring failures that mean the signing key item was not wrapped by this store's keyring. */
const plantedKey: ReadonlySet<string> = new Set(["no-matching-key", "wrong-key", "invalid-ciphertext"])

/** The store a checkpoint belongs to: the id values are bound to and the namespace. */
const storeOf = (location: Location) => ({ storeId: location.storeId ?? location.table, namespace: location.namespace })

/**
 * The bytes the signature covers: every field but the signature, in a fixed order, so a file reformatted or with
 * fields reordered still verifies and one with any value changed does not.
 */
export const signedBytes = (checkpoint: Omit<CheckpointFile, "signature">): Buffer =>
  Buffer.from(
    JSON.stringify([
      checkpoint.format,
      checkpoint.version,
      checkpoint.storeId,
      checkpoint.namespace,
      checkpoint.takenAt,
      checkpoint.keys
    ]),
    "utf8"
  )

/** The HMAC key of checkpoints for a store: HKDF of the named data key, for this purpose and store only. */
const macKey = (material: Redacted.Redacted<Uint8Array>, location: Location): Redacted.Redacted<Buffer> => {
  const { namespace, storeId } = storeOf(location)
  const info = Buffer.from(JSON.stringify(["dynastate/v1/checkpoint-signing", storeId, namespace]), "utf8")
  return Redacted.make(
    Buffer.from(hkdfSync("sha256", Buffer.from(Redacted.value(material)), Buffer.alloc(0), info, 32))
  )
}

const mac = (key: Redacted.Redacted<Buffer>, bytes: Buffer): Buffer =>
  createHmac("sha256", Redacted.value(key)).update(bytes).digest()

/** Signs and writes a checkpoint of `keys` (in key order); makes the store's signing key on first use. */
export const write = Effect.fn("Checkpoint.write")(function*(options: {
  readonly path: string
  readonly location: Location
  readonly dataKeys: DataKeys["Service"]
  readonly keys: ReadonlyArray<Entry>
  readonly takenAt: string
}) {
  const signing = yield* options.dataKeys.named(signingKeyId).pipe(
    Effect.catchTag(["DataKeyNotFound", "DataKeyShredded"], (error) =>
      Effect.fail(
        new CheckpointWriteFailed({
          path: options.path,
          reason: `the store's checkpoint signing key cannot be used (${error._tag})`
        })
      ))
  )
  const body = {
    format: formatName,
    version: formatVersion,
    ...storeOf(options.location),
    takenAt: options.takenAt,
    keys: options.keys
  } as const
  const signature = mac(macKey(signing.material, options.location), signedBytes(body)).toString("hex")
  const file: CheckpointFile = { ...body, signature }
  yield* Effect.try({
    // Written aside and renamed: a reader never sees half a checkpoint under its name.
    try: () => {
      const staged = `${options.path}.partial`
      fs.writeFileSync(staged, JSON.stringify(file) + "\n", { mode: 0o600 })
      fs.renameSync(staged, options.path)
    },
    catch: (cause) =>
      new CheckpointWriteFailed({ path: options.path, reason: (cause as { message?: string })?.message ?? "" })
  })
  return file
})

/**
 * Reads a checkpoint and verifies it was signed for this store with its signing key; `CheckpointInvalid` for a
 * file that cannot be read, is not a checkpoint, belongs to another store or namespace, or does not verify.
 */
export const read = Effect.fn("Checkpoint.read")(function*(options: {
  readonly path: string
  readonly location: Location
  readonly dataKeys: DataKeys["Service"]
}) {
  const { path } = options
  const refuse = (kind: typeof CheckpointProblem.Type, reason: string) => new CheckpointInvalid({ path, kind, reason })
  const text = yield* Effect.try({
    try: () => fs.readFileSync(path, "utf8"),
    catch: (cause) => refuse("unreadable", (cause as { message?: string })?.message ?? String(cause))
  })
  const json = yield* Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: () => refuse("malformed", "not JSON")
  })
  const file = yield* Schema.decodeUnknownEffect(CheckpointFile)(json).pipe(
    Effect.mapError((error) => refuse("malformed", `not a ${formatName} version ${formatVersion}: ${error.message}`))
  )
  const store = storeOf(options.location)
  if (file.storeId !== store.storeId || file.namespace !== store.namespace) {
    return yield* refuse(
      "other-store",
      `taken of store ${file.storeId} namespace ${file.namespace}, not ${store.storeId} namespace ${store.namespace}`
    )
  }
  // Never made here: a missing signing key means no checkpoint of this store can be genuine.
  const signing = yield* options.dataKeys.forDecryption(signingKeyId).pipe(
    Effect.catchTag(
      ["DataKeyNotFound", "DataKeyShredded"],
      (error) => Effect.fail(refuse("no-signing-key", `the store's checkpoint signing key is gone (${error._tag})`))
    ),
    // A signing key item that this keyring cannot have wrapped was planted; an unreachable KMS stays what it is.
    Effect.catchTag(
      "KeyringError",
      (error): Effect.Effect<never, CheckpointInvalid | KeyringError> =>
        plantedKey.has(error.failure)
          ? Effect.fail(
            refuse("forged", `the signing key is not wrapped under this store's keyring (${error.failure})`)
          )
          : Effect.fail(error)
    )
  )
  const expected = mac(macKey(signing.material, options.location), signedBytes(file))
  const given = /^[0-9a-f]{64}$/.test(file.signature) ? Buffer.from(file.signature, "hex") : Buffer.alloc(0)
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return yield* refuse("forged", "the signature does not match its contents under this store's signing key")
  }
  const seen = new Set<string>()
  for (const [key] of file.keys) {
    if (seen.has(key)) return yield* refuse("malformed", `key ${JSON.stringify(key)} is listed twice`)
    seen.add(key)
  }
  return file
})
