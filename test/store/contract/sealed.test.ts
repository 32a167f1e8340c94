/**
 * The store contract (./suite) against the DynamoDB store with sealed keys in play: every key of the suites lies
 * under the sealed prefix `/`, sealed by its first segment, so ranges inside a segment page lazily and every other
 * range is read whole and sorted by real key. The run with every key sealed whole is `test/long/sealedWhole.test.ts`
 * (`npm run test:long`). What sealing keeps out of the table is checked by encryptionAtRest.test.ts.
 */
import { dynamoSealedSegmentBackend } from "./DynamoBackend.ts"
import { storeContract } from "./suite/index.ts"

storeContract(dynamoSealedSegmentBackend)
