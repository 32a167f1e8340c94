/**
 * A plain, obviously-correct in-memory model of the store's contract, written
 * from README.md and the API docs only (it does not use src/domain/Decide.ts,
 * Event.ts or the actors). Keys compare by UTF-8 bytes; an item whose expiry is
 * at or before the clock is absent for every operation.
 *
 * The model cannot predict revisions (UUIDs), so every write is split in two:
 * the model *predicts* the outcome (an expected error, or success), the test
 * runs the real call, checks that the outcomes agree, and only then *commits*
 * the success to the model with the revision the real store returned.
 */

/** A stored item of the model. `expires` is epoch milliseconds. */
export interface ModelItem {
  readonly value: Uint8Array
  readonly expires: number | undefined
  readonly revision: string
}

/** A live item as a read returns it. */
export interface ModelRead extends ModelItem {
  readonly key: string
}

/** An expected typed failure: its tag and the fields the contract names. */
export type ExpectedError =
  | { readonly _tag: "AlreadyExists"; readonly key: string }
  | { readonly _tag: "NotFound"; readonly key: string }
  | { readonly _tag: "CompareFailed"; readonly key: string; readonly reason: "absent" | "value-mismatch" }
  | { readonly _tag: "IncorrectRevision"; readonly key: string; readonly expected: string }
  | { readonly _tag: "ConditionFailed"; readonly key: string; readonly condition: string }
  | { readonly _tag: "BadParameter"; readonly field: string }

/** What a write will do: fail with an error, or succeed and then be committed with the real revision. */
export type Prediction<A = undefined> =
  | { readonly _tag: "Fail"; readonly error: ExpectedError }
  | { readonly _tag: "Ok"; readonly expect: A; readonly commit: (revision: string) => void }

/** Entry of an atomic write, in the model's own terms. */
export interface ModelEntry {
  readonly key: string
  readonly condition:
    | { readonly _tag: "Whatever" }
    | { readonly _tag: "Exists" }
    | { readonly _tag: "NotExists" }
    | { readonly _tag: "Revision"; readonly revision: string }
  readonly action:
    | { readonly _tag: "Put"; readonly value: Uint8Array; readonly expires?: number | undefined }
    | { readonly _tag: "Delete" }
    | { readonly _tag: "Nop" }
}

/** Range options of `items`; both ends inclusive. */
export interface ModelRange {
  readonly start: string
  readonly end: string
  readonly descending?: boolean | undefined
  readonly limit?: number | undefined
}

/** Compares strings by their UTF-8 bytes. */
export const compareUtf8 = (a: string, b: string): number =>
  Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"))

/** Byte equality. */
export const equalBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b))

/** The end (inclusive) of the range of keys starting with `prefix`: its last code point plus one. */
export const prefixEnd = (prefix: string): string => {
  const points = [...prefix]
  const last = points.pop()!.codePointAt(0)!
  return points.join("") + String.fromCodePoint(last + 1)
}

const fail = (error: ExpectedError): Prediction<never> => ({ _tag: "Fail", error })
const ok = <A>(expect: A, commit: (revision: string) => void): Prediction<A> => ({ _tag: "Ok", expect, commit })

export class ReferenceModel {
  /** The clock, epoch milliseconds. */
  now: number
  private readonly items = new Map<string, ModelItem>()
  /** The last item each key ever had (live or not), to draw stale revisions and values from. */
  readonly lastKnown = new Map<string, ModelItem>()
  /** Every revision the real store ever returned, oldest first. */
  readonly revisions: Array<string> = []

  constructor(now: number) {
    this.now = now
  }

  advance(millis: number): void {
    this.now += millis
  }

  /** The live item of a key, if any: stored and not expired. */
  live(key: string): ModelItem | undefined {
    const item = this.items.get(key)
    if (item === undefined) return undefined
    if (item.expires !== undefined && item.expires <= this.now) return undefined
    return item
  }

  /** Every live key in UTF-8 order. */
  liveKeys(): Array<string> {
    return [...this.items.keys()].filter((key) => this.live(key) !== undefined).sort(compareUtf8)
  }

  /** Records a revision the real store returned. */
  learn(revision: string): void {
    this.revisions.push(revision)
  }

  private store(key: string, value: Uint8Array, expires: number | undefined, revision: string): void {
    const item = { value, expires, revision }
    this.items.set(key, item)
    this.lastKnown.set(key, item)
  }

  private write(key: string, value: Uint8Array, expires: number | undefined): Prediction {
    return ok(undefined, (revision) => this.store(key, value, expires, revision))
  }

  create(key: string, value: Uint8Array, expires: number | undefined): Prediction {
    return this.live(key) ? fail({ _tag: "AlreadyExists", key }) : this.write(key, value, expires)
  }

  put(key: string, value: Uint8Array, expires: number | undefined): Prediction {
    return this.write(key, value, expires)
  }

  update(key: string, value: Uint8Array, expires: number | undefined): Prediction {
    return this.live(key) ? this.write(key, value, expires) : fail({ _tag: "NotFound", key })
  }

  compareAndSwap(
    expectedKey: string,
    expected: Uint8Array,
    key: string,
    value: Uint8Array,
    expires: number | undefined
  ): Prediction {
    if (expectedKey !== key) return fail({ _tag: "BadParameter", field: "replaceWith.key" })
    const live = this.live(key)
    if (!live) return fail({ _tag: "CompareFailed", key, reason: "absent" })
    if (!equalBytes(live.value, expected)) return fail({ _tag: "CompareFailed", key, reason: "value-mismatch" })
    return this.write(key, value, expires)
  }

  private revisionHolds(key: string, revision: string): boolean {
    const live = this.live(key)
    return live !== undefined && revision !== "" && live.revision === revision
  }

  conditionalUpdate(key: string, value: Uint8Array, expires: number | undefined, revision: string): Prediction {
    return this.revisionHolds(key, revision)
      ? this.write(key, value, expires)
      : fail({ _tag: "IncorrectRevision", key, expected: revision })
  }

  conditionalDelete(key: string, revision: string): Prediction {
    return this.revisionHolds(key, revision)
      ? ok(undefined, () => this.items.delete(key))
      : fail({ _tag: "IncorrectRevision", key, expected: revision })
  }

  delete(key: string): Prediction {
    return this.live(key) ? ok(undefined, () => this.items.delete(key)) : fail({ _tag: "NotFound", key })
  }

  /** Succeeds with the item's own revision, which a keep-alive keeps. */
  keepAlive(key: string, leaseRevision: string, expires: number | undefined): Prediction<string> {
    const live = this.live(key)
    if (!live) return fail({ _tag: "NotFound", key })
    if (leaseRevision !== "" && leaseRevision !== live.revision) {
      return fail({ _tag: "IncorrectRevision", key, expected: leaseRevision })
    }
    return ok(live.revision, () => this.store(key, live.value, expires, live.revision))
  }

  get(
    key: string
  ): { readonly _tag: "Ok"; readonly item: ModelRead } | { readonly _tag: "Fail"; readonly error: ExpectedError } {
    const live = this.live(key)
    return live ? { _tag: "Ok", item: { key, ...live } } : { _tag: "Fail", error: { _tag: "NotFound", key } }
  }

  /** The live items of an inclusive range in either direction, at most `limit` (0: no limit); a reversed range holds nothing. */
  range(range: ModelRange): Array<ModelRead> {
    if (compareUtf8(range.start, range.end) > 0) return []
    const keys = this.liveKeys().filter((key) => compareUtf8(range.start, key) <= 0 && compareUtf8(key, range.end) <= 0)
    if (range.descending) keys.reverse()
    // 0 is Teleport's NoLimit.
    const limited = range.limit === undefined || range.limit === 0 ? keys : keys.slice(0, range.limit)
    return limited.map((key) => ({ key, ...this.live(key)! }))
  }

  /** Deletes every live item of the range; succeeds with how many. */
  deleteRange(start: string, end: string): Prediction<number> {
    const keys = this.range({ start, end }).map((item) => item.key)
    return ok(keys.length, () => {
      for (const key of keys) this.items.delete(key)
    })
  }

  /** All-or-nothing over distinct keys, one shared revision for every Put. */
  atomicWrite(entries: ReadonlyArray<ModelEntry>): Prediction {
    if (entries.length === 0 || entries.length > 64) return fail({ _tag: "BadParameter", field: "actions" })
    const seen = new Set<string>()
    for (const [index, entry] of entries.entries()) {
      if (seen.has(entry.key)) return fail({ _tag: "BadParameter", field: `actions[${index}].key` })
      seen.add(entry.key)
      if (entry.condition._tag === "Revision" && entry.condition.revision === "") {
        return fail({ _tag: "BadParameter", field: `actions[${index}].condition` })
      }
    }
    if (entries.every((entry) => entry.action._tag === "Nop")) return fail({ _tag: "BadParameter", field: "actions" })
    for (const entry of entries) {
      const live = this.live(entry.key)
      const c = entry.condition
      const holds = c._tag === "Whatever" ||
        (c._tag === "Exists" && live !== undefined) ||
        (c._tag === "NotExists" && live === undefined) ||
        (c._tag === "Revision" && live !== undefined && live.revision === c.revision)
      if (!holds) {
        const condition = c._tag === "Revision" ? `Revision(${c.revision})` : c._tag
        return fail({ _tag: "ConditionFailed", key: entry.key, condition })
      }
    }
    return ok(undefined, (revision) => {
      for (const entry of entries) {
        if (entry.action._tag === "Put") this.store(entry.key, entry.action.value, entry.action.expires, revision)
        else if (entry.action._tag === "Delete") this.items.delete(entry.key)
      }
    })
  }
}
