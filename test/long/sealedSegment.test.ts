/**
 * The store contract (../store/contract/suite) against the DynamoDB store with sealed keys in play: every key lies
 * under the sealed prefix `/`, sealed by its first segment, so ranges inside a segment page lazily and every other
 * range is read whole and sorted by real key. A long run (`npm run test:long`); every build checks sealed keys with
 * storeModel.sealed, sealedRanges, sealedWatch, sealedKeyring, worker/sealedKeys and encryptionAtRest.
 */
import { dynamoSealedSegmentBackend } from "../store/contract/DynamoBackend.ts"
import { storeContract } from "../store/contract/suite/index.ts"

storeContract(dynamoSealedSegmentBackend)
