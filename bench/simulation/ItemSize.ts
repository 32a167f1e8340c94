/**
 * The size DynamoDB bills an item by, and the units that size costs, after the DynamoDB Developer Guide
 * ("DynamoDB read and write operations", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html,
 * and "Item sizes and formats", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html):
 * an item's size is the lengths of its attribute names and values; a write unit covers 1 KB, a read unit 4 KB of a
 * strongly consistent read (half a unit eventually consistent), and a transactional read or write costs twice that.
 * Used only to split a request's reported units over its items; the total always stays what DynamoDB reported.
 */

/** An attribute value as the SDK's input holds it (binary values as bytes). */
export interface Attribute {
  readonly S?: string | undefined
  readonly N?: string | undefined
  readonly B?: Uint8Array | undefined
  readonly BOOL?: boolean | undefined
  readonly NULL?: boolean | undefined
  readonly SS?: ReadonlyArray<string> | undefined
  readonly NS?: ReadonlyArray<string> | undefined
  readonly BS?: ReadonlyArray<Uint8Array> | undefined
  readonly L?: ReadonlyArray<Attribute> | undefined
  readonly M?: Readonly<Record<string, Attribute>> | undefined
}

/** An item (or a key) as the SDK's input holds it. */
export type Item = Readonly<Record<string, Attribute | undefined>>

const utf8 = (text: string): number => Buffer.byteLength(text, "utf8")

// "About one byte per two significant digits, plus one byte" (Item sizes and formats).
const numberBytes = (text: string): number => {
  const digits = text.replace(/^[-+]/, "").replace(/e.*$/i, "").replace(".", "").replace(/^0+/, "").replace(/0+$/, "")
  return Math.ceil(Math.max(1, digits.length) / 2) + 1
}

/** The billed size of one attribute value, in bytes. */
export const valueBytes = (value: Attribute): number => {
  if (value.S !== undefined) return utf8(value.S)
  if (value.N !== undefined) return numberBytes(value.N)
  if (value.B !== undefined) return value.B.byteLength
  if (value.BOOL !== undefined || value.NULL !== undefined) return 1
  if (value.SS !== undefined) return value.SS.reduce((total, s) => total + utf8(s), 0)
  if (value.NS !== undefined) return value.NS.reduce((total, n) => total + numberBytes(n), 0)
  if (value.BS !== undefined) return value.BS.reduce((total, b) => total + b.byteLength, 0)
  // Lists and maps: 3 bytes, plus one per element, plus the elements (and a map's names).
  if (value.L !== undefined) return value.L.reduce((total, element) => total + 1 + valueBytes(element), 3)
  if (value.M !== undefined) {
    return Object.entries(value.M).reduce((total, [name, element]) => total + 1 + utf8(name) + valueBytes(element), 3)
  }
  return 0
}

/** The billed size of an item: its attribute names and values. */
export const itemBytes = (item: Item): number =>
  Object.entries(item).reduce(
    (total, [name, value]) => value === undefined ? total : total + utf8(name) + valueBytes(value),
    0
  )

/** Write units of writing an item of `bytes` (1 KB each, at least one), doubled in a transaction. */
export const writeUnits = (bytes: number, transactional: boolean): number =>
  Math.max(1, Math.ceil(bytes / 1024)) * (transactional ? 2 : 1)
