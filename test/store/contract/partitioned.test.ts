/**
 * The store contract (./suite) against the DynamoDB store on a partitioned key space: keys of the suites under a
 * prefix with its own partition, under prefixes spread over hash buckets, and outside both (see
 * `DynamoBackend.dynamoPartitionedBackend`). Ranges across partitions are checked by test/store/partitions.test.ts.
 */
import { dynamoPartitionedBackend } from "./DynamoBackend.ts"
import { storeContract } from "./suite/index.ts"

storeContract(dynamoPartitionedBackend)
