/**
 * The store contract (./suite) against the DynamoDB store on DynamoDB Local, in the default fenced write mode and
 * in strict write mode. DynamoDB-only checks live beside it: encryptionAtRest.test.ts.
 */
import { dynamoBackend, dynamoStrictBackend } from "./DynamoBackend.ts"
import { storeContract } from "./suite/index.ts"

storeContract(dynamoBackend)
storeContract(dynamoStrictBackend)
