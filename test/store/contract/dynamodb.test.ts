/**
 * The store contract (./suite) against the DynamoDB store on DynamoDB Local.
 * DynamoDB-only checks live beside it: encryptionAtRest.test.ts and
 * pagingIo.test.ts.
 */
import { dynamoBackend } from "./DynamoBackend.ts"
import { storeContract } from "./suite/index.ts"

storeContract(dynamoBackend)
