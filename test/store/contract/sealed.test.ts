/**
 * The store contract (./suite) against the DynamoDB store with sealed keys in play: every key of the suites lies
 * under the sealed prefix `/`, sealed whole in one run and by its first segment in the other. What sealing keeps
 * out of the table is checked by sealedAtRest.test.ts.
 */
import { dynamoSealedBackend, dynamoSealedSegmentBackend } from "./DynamoBackend.ts"
import { storeContract } from "./suite/index.ts"

storeContract(dynamoSealedBackend)
storeContract(dynamoSealedSegmentBackend)
