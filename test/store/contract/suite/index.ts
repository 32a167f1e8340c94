/**
 * The whole behavioural store contract, to run against one backend: every
 * runner (DynamoDB, memory) calls {@link storeContract} with its own backend.
 */
import type { ContractBackend } from "./Backend.ts"
import { badInputContract } from "./badInput.ts"
import { deleteRangeContract } from "./deleteRange.ts"
import { expiryContract } from "./expiry.ts"
import { rangesContract } from "./ranges.ts"
import { singleKeyContract } from "./singleKey.ts"
import { watchInputContract } from "./watchInput.ts"
import { writeAcksContract } from "./writeAcks.ts"

export type { ContractBackend, ContractStorage } from "./Backend.ts"
export {
  badInputContract,
  deleteRangeContract,
  expiryContract,
  rangesContract,
  singleKeyContract,
  watchInputContract,
  writeAcksContract
}

/** Every suite of the contract, each with its own storage. */
export const storeContract = (backend: ContractBackend): void => {
  singleKeyContract(backend)
  expiryContract(backend)
  rangesContract(backend)
  deleteRangeContract(backend)
  badInputContract(backend)
  watchInputContract(backend)
  writeAcksContract(backend)
}
