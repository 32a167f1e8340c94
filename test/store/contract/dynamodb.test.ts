/**
 * The store contract (./suite) against the DynamoDB store on DynamoDB Local, in the default fenced write mode.
 * The same suite in strict write mode is `test/long/strictContract.test.ts` (`npm run test:long`); strict writes are
 * checked in every build by test/store/concurrency/strictWrites.test.ts. DynamoDB-only checks live beside it:
 * encryptionAtRest.test.ts.
 */
import { dynamoBackend } from "./DynamoBackend.ts"
import { storeContract } from "./suite/index.ts"

storeContract(dynamoBackend)
