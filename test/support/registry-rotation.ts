/**
 * The registry's `rotation` write as the lease contract spells it, for tests that play the
 * registry: UpdateItem of `rotation.<capability>` only, conditional on the lease token the
 * registry read, so it never resurrects a released lease and never touches what an agent's
 * renewal writes. The nested path needs the map to exist, so the first entry creates it
 * (`attribute_not_exists(rotation)`) and a racing writer falls back to the nested path.
 */
import { AttributeValue, ConditionalCheckFailedException, DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { encodeRotationEntry } from '../../lib/core/lease-codec';
import type { RotationEntry } from '../../lib/core/lease-schema';
import { LEASE_ATTR } from '../../lib/core/lease-schema';

const isConditionFailure = (e: unknown) => e instanceof ConditionalCheckFailedException || (e as { name?: string })?.name === 'ConditionalCheckFailedException';

/** Resolves to false when the lease is gone or holds another token (nothing was written). */
export async function writeRotation(
  client: DynamoDBClient,
  tableName: string,
  target: string,
  leaseToken: string,
  capability: string,
  entry: RotationEntry,
): Promise<boolean> {
  const value = encodeRotationEntry(entry) as AttributeValue;
  const names = { '#rotation': LEASE_ATTR.rotation, '#leaseToken': LEASE_ATTR.leaseToken };
  const nested = () =>
    client.send(
      new UpdateItemCommand({
        TableName: tableName,
        Key: { [LEASE_ATTR.target]: { S: target } },
        UpdateExpression: 'SET #rotation.#capability = :entry',
        ConditionExpression: '#leaseToken = :token AND attribute_exists(#rotation)',
        ExpressionAttributeNames: { ...names, '#capability': capability },
        ExpressionAttributeValues: { ':entry': value, ':token': { S: leaseToken } },
      }),
    );
  const whole = () =>
    client.send(
      new UpdateItemCommand({
        TableName: tableName,
        Key: { [LEASE_ATTR.target]: { S: target } },
        UpdateExpression: 'SET #rotation = :rotation',
        ConditionExpression: '#leaseToken = :token AND attribute_not_exists(#rotation)',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: { ':rotation': { M: { [capability]: value } }, ':token': { S: leaseToken } },
      }),
    );
  // nested (the usual case), else create the map, else nested again (another writer created it meanwhile).
  for (const attempt of [nested, whole, nested]) {
    try {
      await attempt();
      return true;
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }
  return false;
}
