/**
 * KMS calls per operation: a fresh dynastate store instance (cold data-key cache, as a new process) writes and
 * reads keys another instance wrote, through a keyring that counts its calls; with `KmsKeyring` each `generate`
 * and `unwrap` is one KMS request. The peer does not encrypt, so it makes none.
 */
import { Effect } from "effect"
import type { Workload } from "../Env.ts"
import * as Dynastate from "../support/Dynastate.ts"
import type { KeyringCalls } from "../support/Dynastate.ts"
import { measure } from "../support/Measure.ts"

/** KMS calls per 10,000 writes and per 10,000 reads of a fresh instance. */
export const keyringCalls: Workload = {
  name: "kms",
  run: (env) =>
    Effect.gen(function*() {
      const calls: KeyringCalls = { generate: 0, wrap: 0, unwrap: 0 }
      const { store } = yield* Dynastate.open({
        clients: env.dynastateClients,
        location: { table: env.dynastateTable, namespace: "bench" },
        key: env.key,
        calls
      })
      const operations = env.options.quick ? 8 : env.options.operations
      const keys = env.options.keys
      const size = { operations, concurrency: env.options.concurrency }
      // Keys the run's main instance wrote (under its data key): reading them needs that key unwrapped.
      yield* measure(size, (i) => env.dynastate.put({ key: `/kms/read/${i % keys}`, value: env.value }))
      yield* measure(size, (i) => store.get(`/kms/read/${i % keys}`))
      const reads = calls.generate + calls.unwrap
      yield* measure(size, (i) => store.put({ key: `/kms/write/${i % keys}`, value: env.value }))
      const writes = calls.generate + calls.unwrap - reads
      const per10k = (n: number) => ({ value: (n / operations) * 10_000, unit: "KMS calls / 10k ops" })
      return [
        {
          workload: `KMS calls per 10,000 writes (fresh instance, ${operations} writes)`,
          peer: { value: 0, unit: "KMS calls / 10k ops" },
          dynastate: per10k(writes),
          better: "lower"
        },
        {
          workload: `KMS calls per 10,000 reads (fresh instance, ${operations} reads)`,
          peer: { value: 0, unit: "KMS calls / 10k ops" },
          dynastate: per10k(reads),
          better: "lower"
        }
      ]
    })
}
