/**
 * The nearest known name to a misspelt one, by edit distance, for "did you
 * mean …?" in configuration errors.
 */

/**
 * The optimal string alignment distance: insertions, deletions, substitutions
 * and transpositions of neighbours each cost 1 (`tabel` → `table` is 1).
 */
export const editDistance = (a: string, b: string): number => {
  const rows = a.length + 1
  const columns = b.length + 1
  const d: Array<Array<number>> = Array.from(
    { length: rows },
    (_, i) => Array.from({ length: columns }, (_, j) => i + j)
  )
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < columns; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1)
      }
    }
  }
  return d[a.length]![b.length]!
}

/**
 * The known name closest to `name` (case-insensitive), when close enough to be
 * a slip: at most 2 edits, or a third of the name's length for long names.
 */
export const nearest = (name: string, known: Iterable<string>): string | undefined => {
  const lower = name.toLowerCase()
  let best: { readonly name: string; readonly distance: number } | undefined
  for (const candidate of known) {
    const distance = editDistance(lower, candidate.toLowerCase())
    if (best === undefined || distance < best.distance) best = { name: candidate, distance }
  }
  const limit = Math.max(2, Math.floor(lower.length / 3))
  return best !== undefined && best.distance <= limit ? best.name : undefined
}
