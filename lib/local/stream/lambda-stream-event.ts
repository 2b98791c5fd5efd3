import type { AttributeValue as StreamsAttributeValue, _Record } from '@aws-sdk/client-dynamodb-streams';
import type { AttributeValue as LambdaAttributeValue, DynamoDBRecord, StreamRecord } from 'aws-lambda';

/**
 * DynamoDB Streams API records → the records of the event Lambda's DynamoDB event source
 * mapping builds, so the local poller invokes the handler with exactly what Lambda would pass.
 */

function toLambdaValue(value: StreamsAttributeValue): LambdaAttributeValue {
  if (value.B !== undefined) return { B: Buffer.from(value.B).toString('base64') };
  if (value.BS !== undefined) return { BS: value.BS.map((b) => Buffer.from(b).toString('base64')) };
  if (value.M !== undefined) return { M: toLambdaImage(value.M) };
  if (value.L !== undefined) return { L: value.L.map(toLambdaValue) };
  if (value.SS !== undefined) return { SS: [...value.SS] };
  if (value.NS !== undefined) return { NS: [...value.NS] };
  if (value.S !== undefined) return { S: value.S };
  if (value.N !== undefined) return { N: value.N };
  if (value.BOOL !== undefined) return { BOOL: value.BOOL };
  if (value.NULL !== undefined) return { NULL: value.NULL };
  // DynamoDB Local's stream drops the type of an empty map (`"m": {}` where GetItem and AWS
  // streams say `"m": {"M": {}}`); no other value serializes without a type.
  if (Object.keys(value).length === 0) return { M: {} };
  return { ...(value as object) } as LambdaAttributeValue;
}

function toLambdaImage(image: Record<string, StreamsAttributeValue>): Record<string, LambdaAttributeValue> {
  const out: Record<string, LambdaAttributeValue> = {};
  for (const [name, value] of Object.entries(image)) out[name] = toLambdaValue(value);
  return out;
}

/**
 * A Streams API record → the record of Lambda's DynamoDB event: dates become epoch seconds,
 * binary values base64 strings, `userIdentity` gets Lambda's lower-case keys, and
 * `eventSourceARN` is added. `eventName` is passed through (DynamoDB Local labels TTL
 * deletions `UNKNOWN_TO_SDK_VERSION`, Lambda's type does not know that value).
 */
export function toLambdaRecord(record: _Record, eventSourceARN: string): DynamoDBRecord {
  const src = record.dynamodb ?? {};
  const dynamodb: StreamRecord = {};
  if (src.ApproximateCreationDateTime !== undefined) dynamodb.ApproximateCreationDateTime = src.ApproximateCreationDateTime.getTime() / 1000;
  if (src.Keys !== undefined) dynamodb.Keys = toLambdaImage(src.Keys);
  if (src.NewImage !== undefined) dynamodb.NewImage = toLambdaImage(src.NewImage);
  if (src.OldImage !== undefined) dynamodb.OldImage = toLambdaImage(src.OldImage);
  if (src.SequenceNumber !== undefined) dynamodb.SequenceNumber = src.SequenceNumber;
  if (src.SizeBytes !== undefined) dynamodb.SizeBytes = src.SizeBytes;
  if (src.StreamViewType !== undefined) dynamodb.StreamViewType = src.StreamViewType;
  const out: DynamoDBRecord = {
    ...(record.eventID === undefined ? {} : { eventID: record.eventID }),
    ...(record.eventName === undefined ? {} : { eventName: record.eventName as DynamoDBRecord['eventName'] }),
    ...(record.eventVersion === undefined ? {} : { eventVersion: record.eventVersion }),
    ...(record.eventSource === undefined ? {} : { eventSource: record.eventSource }),
    ...(record.awsRegion === undefined ? {} : { awsRegion: record.awsRegion }),
    dynamodb,
    eventSourceARN,
  };
  if (record.userIdentity !== undefined) {
    out.userIdentity = {
      ...(record.userIdentity.Type === undefined ? {} : { type: record.userIdentity.Type }),
      ...(record.userIdentity.PrincipalId === undefined ? {} : { principalId: record.userIdentity.PrincipalId }),
    };
  }
  return out;
}

