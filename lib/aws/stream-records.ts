import type { DynamoDBRecord } from 'aws-lambda';
import { LEASE_ATTR, RawItem } from '../core/lease-schema';
import { LeaseChangeRecord } from '../core/stream-planner';

/** DynamoDB's TTL sweeper signs its deletions with this service principal. */
const TTL_PRINCIPAL = 'dynamodb.amazonaws.com';

/**
 * Lambda's DynamoDB stream record → the planner's record. A record with an old image and no
 * new image is a removal whatever its eventName (DynamoDB Local labels TTL deletions
 * UNKNOWN_TO_SDK_VERSION).
 */
export function toLeaseChange(record: DynamoDBRecord): LeaseChangeRecord {
  const ddb = record.dynamodb ?? {};
  const oldImage = ddb.OldImage as RawItem | undefined;
  const newImage = ddb.NewImage as RawItem | undefined;
  const key = (ddb.Keys as RawItem | undefined)?.[LEASE_ATTR.target]?.S;
  // Lambda delivers epoch seconds; the Streams API (local poller) a Date.
  const created = ddb.ApproximateCreationDateTime as number | Date | undefined;
  const writtenAtSeconds = created instanceof Date ? created.getTime() / 1000 : created;
  const removedByTtl = !newImage && record.userIdentity?.type === 'Service' && record.userIdentity?.principalId === TTL_PRINCIPAL;
  return {
    id: ddb.SequenceNumber ?? record.eventID ?? '',
    ...(key === undefined ? {} : { key }),
    ...(oldImage ? { oldImage } : {}),
    ...(newImage ? { newImage } : {}),
    ...(writtenAtSeconds === undefined ? {} : { writtenAtSeconds }),
    ...(removedByTtl ? { removedByTtl } : {}),
  };
}
