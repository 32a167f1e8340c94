/**
 * The store contract (../store/contract/suite) against the DynamoDB store on a partitioned key space: keys of the
 * suites under a prefix with its own partition, under prefixes spread over hash buckets, and outside both (see
 * `DynamoBackend.dynamoPartitionedBackend`). A long run (about 25 s on two cores, `npm run test:long`); every build
 * checks partitions with test/store/partitions.test.ts (ranges across partitions, the layout record),
 * storeModel.partitioned, the partitioned linearizability run and test/worker/partitions.test.ts.
 */
import { dynamoPartitionedBackend } from "../store/contract/DynamoBackend.ts"
import { storeContract } from "../store/contract/suite/index.ts"

storeContract(dynamoPartitionedBackend)
