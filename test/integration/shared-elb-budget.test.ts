/**
 * The shared ELB call budget against AWS's DynamoDB Local: two gates with clients of their own
 * (two Lambda containers: a sync shard and reconcile, say) take their tokens from one item of the
 * registry state table, far more often than the budget allows, for 10 s. Replayed as ELB counts
 * calls (at their departure), they never went over the budget together, and they spent it.
 */
import { CreateTableCommand, DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callsOverBudget, ElbCallBudget } from '../../lib/core/elb-call-budget';
import { ELB_BUDGET_ITEM_KEY } from '../../lib/core/registry-state';
import { SharedBudgetStore } from '../../lib/aws/shared-budget-store';
import { DynamoDbLocal, startDynamoDbLocal } from '../../lib/local/emulators';
import { SharedBucketGate } from '../../lib/registry/shared-bucket-gate';

const STATE = 'registry-state';
const BUDGET: ElbCallBudget = { callsPerSecond: 2, burst: 10 };
let ddbLocal: DynamoDbLocal;
const clients: DynamoDBClient[] = [];

beforeAll(async () => {
  ddbLocal = await startDynamoDbLocal();
  const client = new DynamoDBClient({ ...ddbLocal.clientConfig, maxAttempts: 3 });
  clients.push(client);
  await client.send(
    new CreateTableCommand({
      TableName: STATE,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
    }),
  );
});

afterAll(async () => {
  for (const c of clients) c.destroy();
  await ddbLocal?.stop();
});

describe('two containers share one ELB call budget through DynamoDB', () => {
  it('together never exceed it over 10 s of demand, and spend it', async () => {
    const containers = ['sync', 'reconcile'].map((id) => {
      const client = new DynamoDBClient({ ...ddbLocal.clientConfig, maxAttempts: 3 });
      clients.push(client);
      const store = new SharedBudgetStore(client, STATE);
      return { client, store, gate: new SharedBucketGate(BUDGET, store, { id, onFallback: (e) => fallbacks.push(e.message) }) };
    });
    const fallbacks: string[] = [];
    const sentAt: number[] = [];
    const started = Date.now();
    const end = started + 10_000;
    // Four callers per container, each calling as soon as it has a token: far above 2 calls/s.
    const caller = async ({ client, gate }: (typeof containers)[number]) => {
      for (;;) {
        const left = end - Date.now();
        if (left <= 0) return;
        const permit = await gate.acquire(AbortSignal.timeout(left)).catch(() => undefined);
        if (!permit) return;
        // The confirming read between grant and call (as confirmed-changes.ts does): the call leaves after it.
        await client.send(new GetItemCommand({ TableName: STATE, Key: { pk: { S: 'lease-read' }, sk: { S: 'x' } }, ConsistentRead: true }));
        sentAt.push(Date.now());
        permit.spend();
      }
    };
    await Promise.all(containers.flatMap((c) => [1, 2, 3, 4].map(() => caller(c))));
    await Promise.all(containers.map((c) => c.gate.flush()));
    sentAt.sort((a, b) => a - b);
    const writes = containers.reduce((n, c) => n + c.store.writes, 0);
    const conflicts = containers.reduce((n, c) => n + c.store.conflicts, 0);
    const reads = containers.reduce((n, c) => n + c.store.reads, 0);
    console.log(`shared budget on DynamoDB Local, 2 containers × 4 callers, 10 s: ${sentAt.length} calls (sync ${containers[0].gate.sent}, reconcile ${containers[1].gate.sent}), ${writes} writes (${conflicts} refused), ${reads} reads`);
    expect(fallbacks).toEqual([]);
    expect(callsOverBudget(sentAt, BUDGET)).toBe(0);
    // The burst and 2/s for 10 s is 30; polls at most a refill apart and the last refill falling after the end lose a few: the budget is used, not wasted.
    expect(sentAt.length).toBeGreaterThanOrEqual(24);
    expect(sentAt.length).toBeLessThanOrEqual(30);
    expect(containers[0].gate.sent).toBeGreaterThan(0);
    expect(containers[1].gate.sent).toBeGreaterThan(0);
    // Every hold spent and written: the item holds none, and its version counts the writes that landed.
    const item = await containers[0].store.read(Date.now());
    expect(item?.holds).toEqual({});
    expect(item?.version).toBe(writes - conflicts);
    const raw = await containers[0].client.send(new GetItemCommand({ TableName: STATE, Key: { pk: { S: ELB_BUDGET_ITEM_KEY.pk }, sk: { S: ELB_BUDGET_ITEM_KEY.sk } }, ConsistentRead: true }));
    expect(Object.keys(raw.Item ?? {}).sort()).toEqual(['atMs', 'holds', 'pk', 'sk', 'tokens', 'version']);
  });
});
