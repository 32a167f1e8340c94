/**
 * New revisions (event ids): UUIDv7, so they are unique across processes and
 * roughly ordered by creation time when read in a table dump.
 */
import { Effect } from "effect"
import { randomBytes } from "./RandomPool.ts"

/** A UUIDv7 for the given epoch milliseconds. */
export const uuidv7 = (millis: number): string => {
  const bytes = randomBytes(16)
  // 48 bits of milliseconds, big-endian; plain arithmetic, as BigInt shifts cost more than the rest of the id.
  let time = Math.max(0, Math.floor(millis))
  for (let i = 5; i >= 0; i--) {
    bytes[i] = time % 256
    time = Math.floor(time / 256)
  }
  bytes[6] = (bytes[6]! & 0x0f) | 0x70
  bytes[8] = (bytes[8]! & 0x3f) | 0x80
  const hex = bytes.toString("hex")
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/**
 * A fresh revision. It takes wall-clock time, not Effect's `Clock`: ids must
 * stay unique and time-ordered even when tests move the clock.
 */
export const next: Effect.Effect<string> = Effect.sync(() => uuidv7(Date.now()))
