/**
 * `dynastate/lambda`: the AWS Lambda handler that runs projections from a DynamoDB Streams event-source mapping,
 * without the worker's lease and shard machinery.
 */

/** The Lambda handler for DynamoDB Streams events, answering with partial batch failures. */
export * as LambdaHandler from "./programs/worker/LambdaHandler.ts"

/** Projections: your code reacting to the store's events. */
export * as Projection from "./programs/worker/Projection.ts"
