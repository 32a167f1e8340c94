/**
 * DynamoDB Streams records as AWS Lambda delivers them (JSON, binary values as base64 text), turned into the
 * `StreamRecord`s the stream reader produces, so the Lambda handler decodes them with the same codecs.
 */
import type { AttributeValue } from "@aws-sdk/client-dynamodb"
import type { StreamRecord } from "./StreamsApi.ts"

/** A DynamoDB stream attribute as Lambda delivers it: binary values as base64 text. */
type LambdaAttribute = Record<string, unknown>

/** The part of Lambda's DynamoDB Streams event the handler reads. */
export interface DynamoDBStreamEvent {
  readonly Records: ReadonlyArray<{
    readonly eventName?: string
    readonly userIdentity?: { readonly principalId?: string }
    readonly dynamodb?: {
      readonly SequenceNumber?: string
      readonly Keys?: Record<string, LambdaAttribute>
      readonly NewImage?: Record<string, LambdaAttribute>
      readonly ApproximateCreationDateTime?: number
    }
  }>
}

/** Converts Lambda's JSON attribute form to the SDK's (base64 text to bytes, recursively). */
export const fromLambdaAttribute = (value: LambdaAttribute): AttributeValue => {
  if (typeof value.B === "string") return { B: new Uint8Array(Buffer.from(value.B, "base64")) }
  if (Array.isArray(value.BS)) return { BS: value.BS.map((b: string) => new Uint8Array(Buffer.from(b, "base64"))) }
  if (Array.isArray(value.L)) return { L: value.L.map((entry: LambdaAttribute) => fromLambdaAttribute(entry)) }
  if (value.M !== undefined && typeof value.M === "object") {
    return { M: fromLambdaImage(value.M as Record<string, LambdaAttribute>) }
  }
  return value as unknown as AttributeValue
}

const fromLambdaImage = (image: Record<string, LambdaAttribute>): Record<string, AttributeValue> =>
  Object.fromEntries(Object.entries(image).map(([name, value]) => [name, fromLambdaAttribute(value)]))

/** A record of Lambda's event as the stream reader would have delivered it. */
export const toStreamRecord = (record: DynamoDBStreamEvent["Records"][number]): StreamRecord => ({
  eventName: (record.eventName ?? "MODIFY") as StreamRecord["eventName"],
  sequenceNumber: record.dynamodb?.SequenceNumber ?? "",
  keys: fromLambdaImage(record.dynamodb?.Keys ?? {}),
  newImage: record.dynamodb?.NewImage ? fromLambdaImage(record.dynamodb.NewImage) : undefined,
  principal: record.userIdentity?.principalId,
  approximateCreation: record.dynamodb?.ApproximateCreationDateTime === undefined
    ? undefined
    : record.dynamodb.ApproximateCreationDateTime * 1000
})
