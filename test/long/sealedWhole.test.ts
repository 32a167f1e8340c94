/**
 * The store contract (../store/contract/suite) with every key sealed whole (`/` sealed `rest`): each key stored as a
 * MAC, every range read whole and sorted by real key, every watch matched after decryption. A long run (about 90 s
 * on two cores), kept out of `npm test`: `npm run test:long`.
 */
import { dynamoSealedBackend } from "../store/contract/DynamoBackend.ts"
import { storeContract } from "../store/contract/suite/index.ts"

storeContract(dynamoSealedBackend)
