/**
 * The rules between fields of a configuration that no field's own check
 * covers: credentials in pairs, names DynamoDB accepts, and compaction's settle
 * time long enough for the writers' fence.
 */
import { Option } from "effect"
import * as Partitioning from "../../domain/Partitioning.ts"
import * as Retention from "../../domain/Retention.ts"
import { isSafe, minimumSettleMillis } from "../../domain/WriteFence.ts"
import { isLoopback } from "../streams/RelayTls.ts"
import type { ConfigProblem } from "./ConfigInvalid.ts"
import { autoScalingRefusal } from "./Fields.ts"
import type { Values } from "./Fields.ts"

/** A consistency rule between parsed fields; skipped when one of its fields is already reported. */
export interface Rule {
  readonly fields: ReadonlyArray<string>
  readonly check: (values: Values) => ConfigProblem | undefined
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: a NUL in a host name is exactly what this refuses
const hostPattern = /^[^\s\u0000]+$/

/** The rules a configuration must keep beside each field's own. */
export const rules: ReadonlyArray<Rule> = [
  {
    fields: ["access_key", "secret_key"],
    check: (values) =>
      Option.isSome(values.accessKey) !== Option.isSome(values.secretKey)
        ? { field: "storage.access_key", reason: "access_key and secret_key must be given together" }
        : undefined
  },
  {
    fields: ["namespace"],
    check: (values) =>
      values.namespace.trim() === "" || values.namespace.includes("\u0000")
        ? { field: "storage.namespace", reason: "must be non-empty and contain no NUL" }
        : undefined
  },
  {
    fields: ["lease_group"],
    check: (values) =>
      values.leaseGroup.trim() === "" || values.leaseGroup.includes("\u0000") || values.leaseGroup.includes("#")
        ? { field: "storage.lease_group", reason: "must be non-empty and contain no NUL and no #" }
        : undefined
  },
  {
    fields: ["table_name"],
    check: (values) =>
      /^[a-zA-Z0-9_.-]{3,255}$/.test(values.tableName)
        ? undefined
        : { field: "storage.table_name", reason: "DynamoDB table names are 3-255 of a-z A-Z 0-9 _ . -" }
  },
  {
    fields: ["store_id"],
    check: (values) =>
      Option.isSome(values.storeId) && values.storeId.value.trim() === ""
        ? { field: "storage.store_id", reason: "must be non-empty (leave it out to bind to the table name)" }
        : undefined
  },
  {
    fields: ["metrics_host"],
    check: (values) =>
      hostPattern.test(values.metricsHost)
        ? undefined
        : {
          field: "storage.metrics_host",
          reason: "must be a host name or address (0.0.0.0 or :: for every interface)"
        }
  },
  {
    fields: ["watch_host"],
    check: (values) =>
      hostPattern.test(values.watchHost)
        ? undefined
        : { field: "storage.watch_host", reason: "must be a host name or address (0.0.0.0 or :: for every interface)" }
  },
  {
    fields: ["watch_tls_cert", "watch_tls_key"],
    check: (values) =>
      Option.isSome(values.watchTlsCert) !== Option.isSome(values.watchTlsKey)
        ? { field: "storage.watch_tls_cert", reason: "watch_tls_cert and watch_tls_key must be given together" }
        : undefined
  },
  {
    fields: ["watch_port", "watch_host", "watch_tls_cert", "watch_tls_key", "watch_tls_ca", "watch_plaintext"],
    check: (values) => {
      if (Option.isNone(values.watchPort)) return undefined
      if (Option.isSome(values.watchTlsCa) && Option.isNone(values.watchTlsCert)) {
        return {
          field: "storage.watch_tls_ca",
          reason: "a worker serving watches (watch_port) checks clients against watch_tls_ca only over TLS: give " +
            "its own certificate too (watch_tls_cert, watch_tls_key)"
        }
      }
      const mutual = Option.isSome(values.watchTlsCert) && Option.isSome(values.watchTlsCa)
      return mutual || values.watchPlaintext || isLoopback(values.watchHost) ? undefined : {
        field: "storage.watch_host",
        reason: `serves watches beyond this machine (${values.watchHost}) without TLS and client certificates: the ` +
          "relay carries every key, revision and expiry of the namespace (values stay encrypted); set " +
          "watch_tls_cert, watch_tls_key and watch_tls_ca, or watch_plaintext: true when a service mesh or tunnel " +
          "secures the channel"
      }
    }
  },
  {
    fields: ["watch_endpoint", "watch_tls_ca", "watch_plaintext"],
    check: (values) =>
      Option.isNone(values.watchEndpoint) || Option.isSome(values.watchTlsCa) || values.watchPlaintext ||
        isLoopback(values.watchEndpoint.value.host)
        ? undefined
        : {
          field: "storage.watch_endpoint",
          reason: `reads watches from ${values.watchEndpoint.value.host} without TLS: set watch_tls_ca (the CA of ` +
            "the worker's certificate) and, when the worker requires them, watch_tls_cert and watch_tls_key; or " +
            "watch_plaintext: true when a service mesh or tunnel secures the channel"
        }
  },
  {
    fields: ["partitioned_prefixes", "sealed_prefixes"],
    check: (values) =>
      Partitioning.checkSealed(values.partitionedPrefixes, values.sealedPrefixes, "storage.partitioned_prefixes")[0]
  },
  {
    fields: ["auto_scaling"],
    check: (values) => values.autoScaling ? { field: "storage.auto_scaling", reason: autoScalingRefusal } : undefined
  },
  {
    fields: ["max_state_age", "write_timeout", "compaction_settle"],
    // Refused rather than warned about: a settle time too short for the writers loses acknowledged writes silently.
    check: (values) => {
      const fence = { maxStateAgeMillis: values.maxStateAge, writeTimeoutMillis: values.writeTimeout }
      if (isSafe(values.settleMillis, fence)) return undefined
      const minimum = minimumSettleMillis(fence)
      return {
        field: "storage.compaction_settle",
        reason: `must be more than ${Retention.formatDuration(minimum)} (${minimum} ms) for writers with ` +
          `max_state_age ${Retention.formatDuration(fence.maxStateAgeMillis)} and write_timeout ` +
          `${Retention.formatDuration(fence.writeTimeoutMillis)}: max_state_age + 2 × write_timeout + ` +
          "5m (how late AWS may still apply a signed request) + 1m (clock skew); raise it or lower those"
      }
    }
  }
]
