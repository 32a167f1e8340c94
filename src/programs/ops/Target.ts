/**
 * What the operational commands work on: one store's event table and namespace, the id its values are bound to,
 * and the side tables the worker and views keep beside it. Derived from the store's configuration, so every
 * command names the same tables the store and the worker use.
 */
import { Option } from "effect"
import type { Layout } from "../../domain/Partitioning.ts"
import type { StoreConfig } from "../../infra/StoreConfig.ts"

/** One store's tables, as the operational commands see them. */
export interface Target {
  readonly table: string
  readonly namespace: string
  /** What values are bound to; the table name unless `store_id` is set. */
  readonly storeId: string
  readonly leaseTable: string
  /** The worker group whose leases `status` shows (`lease_group`, "default" unless configured). */
  readonly leaseGroup: string
  /** Index view tables to check beside the event table (`TABLE.view.<name>`). */
  readonly viewTables: ReadonlyArray<string>
  /** The namespace's partitioned prefixes (`partitioned_prefixes`, see `Partitioning`); none by default. */
  readonly partitions?: Layout | undefined
}

/** Options that the configuration file does not carry. */
export interface TargetOptions {
  readonly leaseGroup?: string | undefined
  /** Names of the index views the application runs (their tables are `TABLE.view.<name>`). */
  readonly views?: ReadonlyArray<string> | undefined
}

/** The target of a table and namespace, with the worker's default side tables. */
export const make = (
  table: string,
  namespace: string,
  options: TargetOptions & { readonly storeId?: string | undefined; readonly partitions?: Layout | undefined } = {}
): Target => ({
  table,
  namespace,
  ...(options.partitions === undefined || options.partitions.length === 0 ? {} : { partitions: options.partitions }),
  storeId: options.storeId ?? table,
  leaseTable: `${table}.projections`,
  leaseGroup: options.leaseGroup ?? "default",
  viewTables: (options.views ?? []).map((name) => `${table}.view.${name}`)
})

/** The target a store configuration names. */
export const fromConfig = (config: StoreConfig, options: TargetOptions = {}): Target =>
  make(config.tableName, config.namespace, {
    ...options,
    leaseGroup: options.leaseGroup ?? config.leaseGroup,
    storeId: Option.getOrUndefined(config.storeId),
    partitions: config.partitionedPrefixes
  })

/** The location the infra's codecs take, binding values to the target's store id. */
export const locationOf = (target: Target) => ({
  table: target.table,
  namespace: target.namespace,
  partitions: target.partitions,
  storeId: target.storeId === target.table ? undefined : target.storeId
})
