import { ConditionalCheckFailedException, DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DemoFleet } from '../../lib/local/demo-agents';

const ddb = mockClient(DynamoDBClient);
afterEach(() => ddb.reset());

const listening = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;

describe('a demo agent whose address:port someone else holds', () => {
  it('closes its server when the lease cannot be acquired, so local mode still exits (a takeover leaked one per comeback)', async () => {
    ddb.on(PutItemCommand).rejects(new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }));
    const before = listening();
    const fleet = new DemoFleet({ count: 1, capabilities: ['vision'], tableName: 'leases', dynamodb: new DynamoDBClient({ region: 'eu-west-1' }), ttlSeconds: 15, crashEvery: 0 });
    await expect(fleet.start()).rejects.toThrow(/held by another live holder/);
    // libuv releases a closed server's handle on a later turn of the loop; a leaked one never goes.
    await vi.waitFor(() => expect(listening()).toBe(before), { timeout: 5000 });
    await fleet.stop();
  });
});
