/**
 * The pure half of typed keyspaces: how typed keys become store keys and back,
 * how typed values become bytes and back, and the typed errors of both. No I/O;
 * `Keyspace.ts` puts these in front of the store.
 *
 * A value goes through two steps. Its schema first turns it into its JSON form
 * (`Schema.toCodecJson`, so dates, bigints, `Uint8Array`s, branded and
 * transformed fields all have one), then a {@link Codec} turns that JSON form
 * into bytes: UTF-8 JSON text by default. Reading runs the same steps backwards,
 * and the schema checks whatever the codec produced, so a decode failure names
 * the field whatever the codec.
 */
import { Effect, Result, Schema, SchemaIssue } from "effect"
import { BadParameter } from "../../domain/Errors.ts"
import * as Key from "../../domain/Key.ts"

/** A codec could not turn a JSON value into bytes, or bytes back into a JSON value. */
export class CodecFailure extends Schema.TaggedError<CodecFailure>()("CodecFailure", {
  reason: Schema.String
}) {
  override get message() {
    return this.reason
  }
}

/**
 * Turns a value's JSON form (what `Schema.toCodecJson` of the value schema
 * encodes to) into stored bytes and back. `decode` may return anything: the
 * value schema checks it afterwards. For `compareAndSwap`, which compares
 * stored bytes, `encode` must be deterministic: the same JSON value always
 * gives the same bytes.
 */
export interface Codec {
  readonly encode: (json: Schema.Json) => Effect.Effect<Uint8Array, CodecFailure>
  readonly decode: (bytes: Uint8Array) => Effect.Effect<unknown, CodecFailure>
}

const failed = (error: unknown) => new CodecFailure({ reason: error instanceof Error ? error.message : String(error) })

/**
 * A codec from two plain functions, which may throw: a thrown error becomes a
 * {@link CodecFailure} with its message (and so a typed keyspace error, never a
 * defect). For wrapping a compression or binary-format library. The message
 * ends up in error messages and logs: it must not quote the value.
 */
export const makeCodec = (functions: {
  readonly encode: (json: Schema.Json) => Uint8Array
  readonly decode: (bytes: Uint8Array) => unknown
}): Codec => ({
  encode: (json) => Effect.try({ try: () => functions.encode(json), catch: failed }),
  decode: (bytes) => Effect.try({ try: () => functions.decode(bytes), catch: failed })
})

const encoder = new TextEncoder()
// Fatal: bytes that are not UTF-8 are a decode failure, not text full of U+FFFD.
const decoder = new TextDecoder("utf-8", { fatal: true })

/**
 * The default codec: the JSON form as UTF-8 JSON text, without whitespace.
 * Deterministic: struct fields come out in schema order whatever order the
 * value was built in (a `Schema.Record` keeps its entries' insertion order).
 */
export const jsonCodec: Codec = {
  encode: (json) => Effect.try({ try: () => encoder.encode(JSON.stringify(json)), catch: failed }),
  // JSON.parse's own message quotes the input; values are secrets (the store encrypts them), so it is not passed on.
  decode: (bytes) =>
    Effect.try({
      try: () => JSON.parse(decoder.decode(bytes)) as unknown,
      catch: () => new CodecFailure({ reason: "the bytes are not UTF-8 JSON" })
    })
}

/**
 * Stores a string value as its bare UTF-8 text (no JSON quotes), for values whose
 * JSON form is a string (`Schema.String`, a branded or patterned string, a
 * date as ISO text): the stored bytes stay readable by plain store clients.
 */
export const textCodec: Codec = {
  encode: (json) =>
    typeof json === "string"
      ? Effect.succeed(encoder.encode(json))
      : Effect.fail(
        new CodecFailure({ reason: `the text codec stores strings, not ${json === null ? "null" : typeof json}` })
      ),
  decode: (bytes) =>
    Effect.try({
      try: () => decoder.decode(bytes),
      catch: () => new CodecFailure({ reason: "the bytes are not UTF-8 text" })
    })
}

/** Where in a key or value a problem is: property names and array indexes, outermost first. */
export type Path = ReadonlyArray<string | number>

const PathSchema = Schema.Array(Schema.Union([Schema.String, Schema.Number]))

/**
 * A key or value read from the store does not decode: the codec refused its
 * bytes, or its schema refused what they hold. `key` is the full store key,
 * `path` the first failing field (empty: the whole key or value), `reason` every
 * problem found. In a watch, `position` is the position of the failing event:
 * watch again from it to go on past it.
 */
export class KeyspaceDecodeError extends Schema.TaggedError<KeyspaceDecodeError>()("KeyspaceDecodeError", {
  key: Schema.String,
  part: Schema.Literals(["key", "value"]),
  path: PathSchema,
  reason: Schema.String,
  position: Schema.optional(
    Schema.Struct({
      arn: Schema.String,
      shards: Schema.Record(Schema.String, Schema.String),
      // Own writes delivered ahead of the stream (see WatchPosition.keys): without them a resumed watch meets this one again.
      keys: Schema.optional(Schema.UndefinedOr(Schema.Record(Schema.String, Schema.Number)))
    })
  )
}) {
  override get message() {
    return `cannot decode the ${this.part} of ${this.key}: ${this.reason}`
  }
}

/**
 * A typed key or value does not satisfy its schema (or the codec refused it);
 * nothing was read or written. `keyspace` is the prefix, `key` the store key
 * when the key itself encoded, `path` the first failing field, `reason` every
 * problem found.
 */
export class KeyspaceEncodeError extends Schema.TaggedError<KeyspaceEncodeError>()("KeyspaceEncodeError", {
  keyspace: Schema.String,
  key: Schema.optional(Schema.String),
  part: Schema.Literals(["key", "value"]),
  path: PathSchema,
  reason: Schema.String
}) {
  override get message() {
    return this.key === undefined
      ? `cannot encode a key of keyspace ${this.keyspace}: ${this.reason}`
      : `cannot encode the ${this.part} of ${this.key}: ${this.reason}`
  }
}

const formatPath = (path: Path) => path.map((segment) => `[${JSON.stringify(segment)}]`).join("")

type IssuePath = ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined

const toPath = (path: IssuePath): Path =>
  (path ?? []).map((segment) => {
    const key = typeof segment === "object" ? segment.key : segment
    return typeof key === "symbol" ? String(key) : key
  })

const standard = SchemaIssue.makeFormatterStandardSchemaV1()

/**
 * The first failing path and a one-line description of every issue. Schema messages do not quote the input
 * (values are secrets the store encrypts; errors get logged), only what was expected where.
 */
const describeIssue = (error: Schema.SchemaError | CodecFailure): { readonly path: Path; readonly reason: string } => {
  if (error._tag === "CodecFailure") return { path: [], reason: error.reason }
  const issues = standard(error.issue).issues
  const reason = issues
    .map((issue) => {
      const path = toPath(issue.path)
      return path.length > 0 ? `${issue.message} at ${formatPath(path)}` : issue.message
    })
    .join("; ")
  return { path: toPath(issues[0]?.path), reason: reason || error.message }
}

const parseOptions = { errors: "all" } as const

/**
 * The conversions of one keyspace, built once by `Keyspace.make`: its schemas
 * checked and compiled, its prefix validated.
 */
export interface Conversions<K, V> {
  readonly prefix: string
  /**
   * The store key of a typed key: the prefix plus the key's encoding, which must be a non-empty valid key
   * (`field` names the argument in a `BadParameter`).
   */
  readonly storeKey: (key: K, field?: string) => Effect.Effect<string, KeyspaceEncodeError | BadParameter>
  /** The typed key of a store key under the prefix. */
  readonly decodeKey: (storeKey: string) => Effect.Effect<K, KeyspaceDecodeError>
  /** The stored bytes of a value for a store key. */
  readonly encodeValue: (storeKey: string, value: V) => Effect.Effect<Uint8Array, KeyspaceEncodeError>
  /** The typed value of the stored bytes of a store key. */
  readonly decodeValue: (storeKey: string, bytes: Uint8Array) => Effect.Effect<V, KeyspaceDecodeError>
  /** The smallest and largest store keys a typed key can have: `[prefix + U+0001, prefix + the largest suffix]`. */
  readonly bounds: Result.Result<{ readonly first: string; readonly last: string }, BadParameter>
}

/**
 * The largest key starting with `prefix`: the prefix followed by U+10FFFF as
 * often as fits, then the largest character that fits (as `Key.maxKey`).
 */
const lastKeyUnder = (prefix: string, room: number) =>
  prefix + "\u{10FFFF}".repeat(Math.floor(room / 4)) + ["", "\u007F", "\u07FF", "\uFFFF"][room % 4]

const checkPrefix = (
  prefix: string
): Result.Result<{ readonly first: string; readonly last: string }, BadParameter> => {
  const valid = Key.validate(prefix, "prefix")
  if (Result.isFailure(valid)) return Result.fail(valid.failure)
  const room = Key.maxKeyBytes - Key.toBytes(prefix).length
  if (room < 1) return Result.fail(new BadParameter({ field: "prefix", reason: "the prefix leaves no room for a key" }))
  // U+0001: NUL is refused in keys, so this is the smallest key strictly under the prefix.
  return Result.succeed({ first: prefix + "\u0001", last: lastKeyUnder(prefix, room) })
}

/** Builds the conversions of a keyspace. */
export const conversions = <K, V>(options: {
  readonly prefix: string
  readonly key: Schema.Codec<K, string>
  readonly value: Schema.Codec<V, unknown>
  readonly codec?: Codec | undefined
}): Conversions<K, V> => {
  const { prefix } = options
  const codec = options.codec ?? jsonCodec
  const bounds = checkPrefix(prefix)
  const encodeKeyString = Schema.encodeUnknownEffect(options.key, parseOptions)
  const decodeKeyString = Schema.decodeUnknownEffect(options.key, parseOptions)
  const valueJson = Schema.toCodecJson(options.value)
  const encodeJson = Schema.encodeUnknownEffect(valueJson, parseOptions)
  const decodeJson = Schema.decodeUnknownEffect(valueJson, parseOptions)

  const storeKey = (key: K, field = "key"): Effect.Effect<string, KeyspaceEncodeError | BadParameter> =>
    Effect.gen(function*() {
      if (Result.isFailure(bounds)) return yield* bounds.failure
      const encoded = yield* encodeKeyString(key).pipe(
        Effect.mapError((error) => new KeyspaceEncodeError({ keyspace: prefix, part: "key", ...describeIssue(error) }))
      )
      if (typeof encoded !== "string" || encoded.length === 0) {
        return yield* new BadParameter({
          field,
          reason: `a key of keyspace ${prefix} must encode to a non-empty string`
        })
      }
      const full = prefix + encoded
      const valid = Key.validate(full, field)
      return Result.isFailure(valid) ? yield* valid.failure : full
    })

  const decodeKey = (key: string): Effect.Effect<K, KeyspaceDecodeError> =>
    key.length <= prefix.length || !key.startsWith(prefix)
      ? Effect.fail(
        new KeyspaceDecodeError({ key, part: "key", path: [], reason: `not a key under the prefix ${prefix}` })
      )
      : decodeKeyString(key.slice(prefix.length)).pipe(
        Effect.mapError((error) => new KeyspaceDecodeError({ key, part: "key", ...describeIssue(error) }))
      )

  const encodeValue = (key: string, value: V): Effect.Effect<Uint8Array, KeyspaceEncodeError> =>
    encodeJson(value).pipe(
      Effect.flatMap(codec.encode),
      Effect.mapError((error) =>
        new KeyspaceEncodeError({ keyspace: prefix, key, part: "value", ...describeIssue(error) })
      )
    )

  const decodeValue = (key: string, bytes: Uint8Array): Effect.Effect<V, KeyspaceDecodeError> =>
    codec.decode(bytes).pipe(
      Effect.flatMap((json) => decodeJson(json)),
      Effect.mapError((error) => new KeyspaceDecodeError({ key, part: "value", ...describeIssue(error) }))
    )

  return { prefix, storeKey, decodeKey, encodeValue, decodeValue, bounds }
}
