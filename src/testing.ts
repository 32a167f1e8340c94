/**
 * `dynastate/testing`: what an application needs to unit-test its code that uses the store, without Java or
 * DynamoDB. `MemoryStore.layer()` gives the same `Store` service in memory, with the same decisions and typed
 * errors; Effect's `TestClock` drives its expiry.
 */

/** The store in memory: `layer`, `layerWithInspector` (plus `MemoryInspector` to look at the events written). */
export * as MemoryStore from "./programs/store/MemoryStore.ts"
