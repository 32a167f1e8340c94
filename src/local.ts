/**
 * `dynastate/local`: the official DynamoDB Local (Java 17+), fetched once into the per-user cache and started for
 * development and tests. Production code has no use for it.
 */

/** Start and stop DynamoDB Local, in memory or on a data directory. */
export * as DynamoDBLocal from "./infra/local/DynamoDBLocal.ts"

/** One DynamoDB Local per data directory, shared by every process that opens it (the embedded store's). */
export * as SharedDynamoDBLocal from "./infra/local/SharedDynamoDBLocal.ts"
