/**
 * The binary sort key of an event: key bytes ‖ 0x00 ‖ big-endian (2^64−1 − seq).
 *
 * Byte order of sort keys is then key order, and within a key the newest event
 * comes first, so "latest event of a key" is a one-item query.
 */
import * as Key from "./Key.ts"

const maxSeq = (1n << 64n) - 1n

/** The sort key of event `seq` of `key`. */
export const encode = (key: string, seq: number): Uint8Array => {
  const keyBytes = Key.toBytes(key)
  const out = new Uint8Array(keyBytes.length + Key.sortKeySuffixBytes)
  out.set(keyBytes, 0)
  new DataView(out.buffer).setBigUint64(keyBytes.length + 1, maxSeq - BigInt(seq), false)
  return out
}

/** The key and seq of a sort key. */
export const decode = (sortKey: Uint8Array): { readonly key: string; readonly seq: number } => {
  const split = sortKey.length - Key.sortKeySuffixBytes
  const view = new DataView(sortKey.buffer, sortKey.byteOffset, sortKey.byteLength)
  return {
    key: Key.fromBytes(sortKey.subarray(0, split)),
    seq: Number(maxSeq - view.getBigUint64(split + 1, false))
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
  const keyBytes = Key.toBytes(key)
  const out = new Uint8Array(keyBytes.length + Key.sortKeySuffixBytes)
  out.set(keyBytes, 0)
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
