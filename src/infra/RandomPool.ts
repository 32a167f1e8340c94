/**
 * Random bytes from a pooled buffer: `randomBytes(n)` per call costs a native call and a buffer each, which a
 * write paid three times (its revision, its value's salt and IV). The pool is refilled from the same CSPRNG and
 * no byte is handed out twice.
 */
import { randomFillSync } from "node:crypto"

const poolBytes = 8192
const pool = Buffer.allocUnsafeSlow(poolBytes)
let used = poolBytes

/** `n` fresh random bytes (a copy, never a view of the pool). */
export const randomBytes = (n: number): Buffer => {
  if (n > poolBytes) return randomFillSync(Buffer.allocUnsafe(n))
  if (used + n > poolBytes) {
    randomFillSync(pool)
    used = 0
  }
  const bytes = Buffer.from(pool.subarray(used, used + n))
  // Zeroed once handed out, so the pool never holds bytes someone already uses as a salt, IV or id.
  pool.fill(0, used, used + n)
  used += n
  return bytes
}
