/**
 * The typed failures of the store: every failure a caller can act on has its
 * own tag, so callers can `Effect.catchTag` exactly what they handle.
 */
import { Schema } from "effect"

/** `create` found a live item under the key. */
export class AlreadyExists extends Schema.TaggedError<AlreadyExists>()("AlreadyExists", {
  key: Schema.String
}) {
  override get message() {
    return `key already exists: ${this.key}`
  }
}

/** The key is absent, deleted or expired. */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {
  key: Schema.String
}) {
  override get message() {
    return `key not found: ${this.key}`
  }
}

/** `compareAndSwap` found no live item, or one whose value differs from the expected one. */
export class CompareFailed extends Schema.TaggedError<CompareFailed>()("CompareFailed", {
  key: Schema.String,
  reason: Schema.Literals(["absent", "value-mismatch"])
}) {
  override get message() {
    return `compare failed for ${this.key}: ${this.reason}`
  }
}

/**
 * A revision-guarded write found another live revision (or none). Teleport
 * treats this as a kind of compare failure; see {@link isCompareFailure}.
 */
export class IncorrectRevision extends Schema.TaggedError<IncorrectRevision>()("IncorrectRevision", {
  key: Schema.String,
  expected: Schema.String
}) {
  override get message() {
    return `incorrect revision for ${this.key}: expected ${this.expected || "<empty>"}`
  }
}

/** Either compare failure, for callers that treat them alike. */
export type CompareFailure = CompareFailed | IncorrectRevision

/** True for both kinds of compare failure. */
export const isCompareFailure = (error: { readonly _tag: string }): error is CompareFailure =>
  error._tag === "CompareFailed" || error._tag === "IncorrectRevision"

/** Input that can never succeed; nothing was read or written. */
export class BadParameter extends Schema.TaggedError<BadParameter>()("BadParameter", {
  field: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `bad parameter ${this.field}: ${this.reason}`
  }
}

/**
 * A value above the store's bound (16 MiB: values above what one DynamoDB item holds are stored in chunks), or an
 * item that would not fit in DynamoDB (a view's copy of an event); nothing was written.
 */
export class ValueTooLarge extends Schema.TaggedError<ValueTooLarge>()("ValueTooLarge", {
  key: Schema.String,
  /** The bytes the value (or the item) would take. */
  itemBytes: Schema.Number,
  /** The most it may take. */
  limitBytes: Schema.Number
}) {
  override get message() {
    return `value for ${this.key} is too large: the item would be ${this.itemBytes} bytes, the limit is ${this.limitBytes}`
  }
}

/** An `atomicWrite` condition did not hold; nothing was written. */
export class ConditionFailed extends Schema.TaggedError<ConditionFailed>()("ConditionFailed", {
  key: Schema.String,
  condition: Schema.String
}) {
  override get message() {
    return `condition ${this.condition} failed for ${this.key}`
  }
}

/** A stored value could not be decrypted or authenticated (tampered, moved, or wrong key). */
export class DecryptionFailed extends Schema.TaggedError<DecryptionFailed>()("DecryptionFailed", {
  key: Schema.String,
  seq: Schema.Number,
  reason: Schema.String
}) {
  override get message() {
    return `cannot decrypt ${this.key} at seq ${this.seq}: ${this.reason}`
  }
}

/** The value was encrypted under a data key that was shredded (erased on purpose); it can never be read again. */
export class Shredded extends Schema.TaggedError<Shredded>()("Shredded", {
  key: Schema.String,
  seq: Schema.Number,
  scope: Schema.String
}) {
  override get message() {
    return `the value of ${this.key} at seq ${this.seq} was shredded (scope "${this.scope}")`
  }
}

/**
 * A key's stored events skip seqs: an event between two that are stored was removed from the table outside
 * compaction (which only ever removes a key's oldest events), so its past cannot be told truthfully.
 */
export class HistoryGap extends Schema.TaggedError<HistoryGap>()("HistoryGap", {
  key: Schema.String,
  /** The stored seq just before the hole. */
  after: Schema.Number,
  /** The stored seq just after it. */
  before: Schema.Number
}) {
  override get message() {
    return `the stored events of ${this.key} skip from seq ${this.after} to ${this.before}: ` +
      "events were removed from the table outside compaction"
  }
}

/**
 * A range touches a sealed prefix holding more live keys than a sealed range read sorts in memory (see
 * `SealedKeys`): its stored keys are in MAC order, so the prefix is read whole and sorted by real key. Narrow the
 * range to one sealed segment, or raise the store's `sealedRangeLimit`.
 */
export class SealedRangeTooLarge extends Schema.TaggedError<SealedRangeTooLarge>()("SealedRangeTooLarge", {
  prefix: Schema.String,
  limit: Schema.Number
}) {
  override get message() {
    return `the range reaches into sealed prefix ${this.prefix}, which holds more than ${this.limit} live keys ` +
      "(a sealed prefix is read whole and sorted by real key)"
  }
}

/** DynamoDB kept throttling after the client's retries were spent. */
export class Throttled extends Schema.TaggedError<Throttled>()("Throttled", {
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.operation} throttled by DynamoDB: ${this.reason}`
  }
}

/** Other writers kept winning the race for a key, past the retry bound. */
export class WriteContention extends Schema.TaggedError<WriteContention>()("WriteContention", {
  key: Schema.String,
  attempts: Schema.Number
}) {
  override get message() {
    return `gave up writing ${this.key} after ${this.attempts} conflicting attempts`
  }
}

/** DynamoDB failed in a way the store cannot classify further (network, 5xx after retries, access denied). */
export class StorageFailure extends Schema.TaggedError<StorageFailure>()("StorageFailure", {
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.operation} failed: ${this.reason}`
  }
}

/** The configured table exists with a schema the store cannot use; nothing was changed. */
export class TableSchemaMismatch extends Schema.TaggedError<TableSchemaMismatch>()("TableSchemaMismatch", {
  table: Schema.String,
  differences: Schema.Array(Schema.String)
}) {
  override get message() {
    return `table ${this.table} has an incompatible schema: ${this.differences.join("; ")}`
  }
}

/**
 * This process serves a partition layout (`storage.partitioned_prefixes`) that the namespace's layout record no
 * longer allows: a migration away from it began, or the namespace settled on another layout while the process ran
 * (see `LayoutLease`). Reading or writing through the old layout would see moved keys as missing and fork them, so
 * every operation fails from then on: restart the process configured with the recorded layout.
 */
export class LayoutSuperseded extends Schema.TaggedError<LayoutSuperseded>()("LayoutSuperseded", {
  namespace: Schema.String,
  /** The layout this process serves, described (see `Partitioning.describe`). */
  configured: Schema.String,
  /** What the record says now, described. */
  recorded: Schema.String,
  /**
   * Set when what the record no longer allows is this process's sealed prefixes, not its layout: the sealed prefix
   * a sealing migration recorded (see `SealMigration`) that this process is configured without.
   */
  sealedPrefix: Schema.optional(Schema.String)
}) {
  override get message() {
    if (this.sealedPrefix !== undefined) {
      return `namespace ${this.namespace} seals the sealed prefix ${this.sealedPrefix} now (recorded by ` +
        "seal-migrate), but this process is configured without it: it stopped reading and writing the namespace. " +
        "Restart it configured with the recorded sealed prefixes (storage.sealed_prefixes)"
    }
    return `namespace ${this.namespace} is ${this.recorded} now, but this process serves the layout ` +
      `[${this.configured}]: it stopped reading and writing the namespace. Restart it configured with the recorded ` +
      "layout (storage.partitioned_prefixes)"
  }
}

/**
 * Failures of reaching the table at all: DynamoDB's, or this process's partition layout no longer allowed
 * (`LayoutSuperseded`).
 */
export type TableError = Throttled | StorageFailure | LayoutSuperseded

/** Failures of the storage layer itself, shared by every operation. */
export type StorageError = Throttled | StorageFailure | DecryptionFailed | Shredded | LayoutSuperseded

/**
 * A key could not be relocated (see `Relocation`): its target already holds events that did not come from its source,
 * or its source holds events the move cannot carry (a shredded value cannot be re-encrypted). Nothing was removed
 * from the source. `key` is the target's stored key, never a clear key that may be the secret being sealed.
 */
export class RelocationConflict extends Schema.TaggedError<RelocationConflict>()("RelocationConflict", {
  key: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `cannot relocate events to ${this.key}: ${this.reason}`
  }
}
