/**
 * A stream read one element at a time with a look at the next one: what merging several key-ordered streams
 * (a merge join) needs, and what a stream's own combinators do not give. The infra's (`SortedMerge`), which merges
 * a partitioned key space's range reads with it.
 */
import { cursor } from "../../infra/SortedMerge.ts"

export type { Cursor } from "../../infra/SortedMerge.ts"

/** A cursor over a stream, pulled page by page as it is read; closed with the scope. */
export const make = cursor
