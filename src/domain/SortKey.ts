/**
 * The binary sort key of an event: key bytes ‖ 0x00 ‖ big-endian (2^64−1 − seq).
 *
 * Byte order of sort keys is then key order, and within a key the newest event
 * comes first, so "latest event of a key" is a one-item query.
 */
import * as Key from "./Key.ts"

// 2^64−1 − seq is seq with every bit flipped; seqs are safe integers, so two 32-bit halves hold them without the
// BigInt arithmetic every write and every item of a range read paid for.
const twoTo32 = 2 ** 32

/** The sort key of event `seq` of `key`. */
export const encode = (key: string, seq: number): Uint8Array => {
  // Encoded in place: every write and every read of a key makes one or two of these.
  const keyLength = Key.byteLength(key)
  const out = new Uint8Array(keyLength + Key.sortKeySuffixBytes)
  Key.writeBytes(key, out)
  const view = new DataView(out.buffer)
  view.setUint32(keyLength + 1, ~Math.floor(seq / twoTo32) >>> 0, false)
  view.setUint32(keyLength + 5, ~(seq % twoTo32) >>> 0, false)
  return out
}

/** The key and seq of a sort key. */
export const decode = (sortKey: Uint8Array): { readonly key: string; readonly seq: number } => {
  const split = sortKey.length - Key.sortKeySuffixBytes
  const view = new DataView(sortKey.buffer, sortKey.byteOffset, sortKey.byteLength)
  return {
    key: Key.fromBytes(sortKey.subarray(0, split)),
    seq: (~view.getUint32(split + 1, false) >>> 0) * twoTo32 + (~view.getUint32(split + 5, false) >>> 0)
  }
}

/** The prefix every sort key of `key` starts with. */
export const keyPrefix = (key: string): Uint8Array => {
  const keyBytes = Key.toBytes(key)
  const out = new Uint8Array(keyBytes.length + 1)
  out.set(keyBytes, 0)
  return out
}

/** The lowest sort key of any event of `key`. */
export const lowerBound = (key: string): Uint8Array => {
  const out = new Uint8Array(Key.byteLength(key) + Key.sortKeySuffixBytes)
  Key.writeBytes(key, out)
  return out
}

/** The highest sort key of any event of `key`. */
export const upperBound = (key: string): Uint8Array => {
  const out = encode(key, 0)
  out.fill(0xff, out.length - 8)
  return out
}

/** The highest sort key of any event of any key that starts with `prefix` (0xFF never occurs in UTF-8). */
export const prefixUpperBound = (prefix: string): Uint8Array => {
  const bytes = Key.toBytes(prefix)
  const out = new Uint8Array(bytes.length + 1)
  out.set(bytes, 0)
  out[bytes.length] = 0xff
  return out
}
