/**
 * The store contract (../store/contract/suite) in strict write mode: every append a transaction checking its
 * predecessor. A long run kept out of `npm test` (`npm run test:long`); test/store/concurrency/strictWrites.test.ts
 * checks strict writes in every build.
 */
import { dynamoStrictBackend } from "../store/contract/DynamoBackend.ts"
import { storeContract } from "../store/contract/suite/index.ts"

storeContract(dynamoStrictBackend)
