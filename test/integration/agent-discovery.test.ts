/**
 * Trusted discovery and the catalog's member index against AWS's DynamoDB Local: the registry
 * (a reconcile pass's catalog step) builds the index and the document from leases in the
 * contract's format; `discoverAgents` answers from one Query of the capability's partition with
 * Cloud Map's health filters and metadata equalities; at 10 000 members its reads follow the
 * capability's agents, never the fleet's.
 */
import { BatchWriteItemCommand, CreateTableCommand, DynamoDBClient, PutItemCommand, ScanCommand, WriteRequest } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AddressPolicy } from '../../lib/core/address-policy';
import type { CatalogConfig } from '../../lib/core/catalog-document';
import { mapLimit } from '../../lib/core/concurrency';
import type { RoutingConfig } from '../../lib/core/lease-schema';
import { CatalogMember, encodeMember } from '../../lib/core/registry-state';
import { LeaseStore } from '../../lib/aws/lease-store';
import { RegistryStateStore } from '../../lib/aws/registry-state-store';
import { DynamoDbLocal, startDynamoDbLocal } from '../../lib/local/emulators';
import { repairCatalog } from '../../lib/registry/catalog-update';
import { discoverAgents } from '../../lib/sdk';
import type { Item } from '../support/local-harness';

const LEASES = 'leases';
const STATE = 'registry-state';
let ddbLocal: DynamoDbLocal;
let client: DynamoDBClient;

const routing: RoutingConfig = {
  capabilities: { vision: { targetGroupArn: 'arn:tg/vision', targetType: 'ip' }, speech: { targetGroupArn: 'arn:tg/speech', targetType: 'ip' } },
  allowedCidrs: ['10.0.0.0/8'],
};
const catalog: CatalogConfig = {
  tableName: STATE,
  headerName: 'X-Agent-Capability',
  pathPrefix: 'agents',
  attributes: ['model'],
  capabilities: { vision: { algorithm: 'least_outstanding_requests', stickiness: 'off', variants: [] }, speech: { algorithm: 'round_robin', stickiness: 'off', variants: [] } },
};

/** A lease of the contract (any SDK writes the same), with the registry's rotation entry. */
function lease(n: number, capabilities: string[], state: string, model: string, status = 'active'): Item {
  const now = Date.now();
  return {
    target: { S: `10.0.1.${n}:8080` },
    address: { S: `10.0.1.${n}` },
    port: { N: '8080' },
    capabilities: { SS: capabilities },
    expiresAt: { N: String(Math.floor(now / 1000) + 300) },
    leaseToken: { S: `secret-token-${n}` },
    agentId: { S: `agent-${n}` },
    status: { S: status },
    renewedAt: { N: String(now) },
    registeredAt: { N: String(now) },
    metadata: { M: { model: { S: model } } },
    rotation: { M: Object.fromEntries(capabilities.map((c) => [c, { M: { state: { S: state }, since: { N: String(now) } } }])) },
  };
}

beforeAll(async () => {
  ddbLocal = await startDynamoDbLocal();
  client = new DynamoDBClient({ ...ddbLocal.clientConfig, maxAttempts: 3 });
  await client.send(new CreateTableCommand({ TableName: LEASES, BillingMode: 'PAY_PER_REQUEST', AttributeDefinitions: [{ AttributeName: 'target', AttributeType: 'S' }], KeySchema: [{ AttributeName: 'target', KeyType: 'HASH' }] }));
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
  client?.destroy();
  await ddbLocal?.stop();
});

describe('the registry builds the member index and the catalog from the leases', () => {
  const leases = [
    lease(1, ['vision'], 'healthy', 'large'),
    lease(2, ['vision'], 'healthy', 'small'),
    lease(3, ['vision', 'speech'], 'unhealthy', 'large'),
    lease(4, ['vision'], 'draining', 'large', 'draining'),
    lease(5, ['speech'], 'initial', 'small'),
  ];

  beforeAll(async () => {
    for (const item of leases) await client.send(new PutItemCommand({ TableName: LEASES, Item: item }));
    const store = new LeaseStore(client, LEASES);
    const report = await repairCatalog(
      { state: new RegistryStateStore(client, STATE), catalog, store, routing, policy: new AddressPolicy(routing.allowedCidrs) },
      (await store.scanAll(true)).items,
      Date.now(),
    );
    expect(report.error).toBeUndefined();
    expect(report.published).toBe(true);
  });

  it('keeps a catalog document that counts each capability by state, with its public metadata', async () => {
    const stored = await new RegistryStateStore(client, STATE).readCatalog(true);
    const vision = stored?.document.capabilities.find((c) => c.name === 'vision');
    expect(vision).toMatchObject({ routable: true, targets: { registered: 3, healthy: 2, unhealthy: 1, initial: 0, draining: 1 }, attributes: { model: ['large', 'small'] } });
    expect(stored?.document.capabilities.find((c) => c.name === 'speech')).toMatchObject({ routable: false, targets: { registered: 2, initial: 1, unhealthy: 1 } });
  });

  it.each<[string, Parameters<typeof discoverAgents>[1], string[]]>([
    ['healthy (the default)', {}, ['1', '2']],
    ['all', { health: 'all' }, ['1', '2', '3', '4']],
    ['healthy with metadata model=large', { filter: { model: 'large' } }, ['1']],
    ['all with metadata model=large', { health: 'all', filter: { model: 'large' } }, ['1', '3', '4']],
    ['healthy-or-else-all for a model none serves healthy', { health: 'healthy-or-else-all', filter: { model: 'large' } }, ['1']],
  ])('discovers vision agents: %s', async (_, options, expected) => {
    const agents = await discoverAgents('vision', { registryTableName: STATE, client, ...options });
    expect(agents.map((a) => a.address.split('.')[3])).toEqual(expected);
  });

  it('falls back to every agent when none is healthy (healthy-or-else-all), and gives address, port, state, metadata — no token', async () => {
    const agents = await discoverAgents('speech', { registryTableName: STATE, client, health: 'healthy-or-else-all' });
    expect(agents.map((a) => [a.address, a.port, a.state, a.metadata])).toEqual([
      ['10.0.1.3', 8080, 'unhealthy', { model: 'large' }],
      ['10.0.1.5', 8080, 'initial', { model: 'small' }],
    ]);
    expect(JSON.stringify(agents)).not.toContain('secret-token');
    expect(await discoverAgents('speech', { registryTableName: STATE, client })).toEqual([]);
  });

  it('refuses a bad capability name or a missing table in one line', async () => {
    await expect(discoverAgents('Vision', { registryTableName: STATE, client })).rejects.toThrow('capability "Vision" must match');
    const env = process.env.AGENT_LB_REGISTRY_TABLE;
    delete process.env.AGENT_LB_REGISTRY_TABLE;
    await expect(discoverAgents('vision', { client })).rejects.toThrow('discoverAgents needs the registry state table: pass registryTableName or set AGENT_LB_REGISTRY_TABLE');
    if (env !== undefined) process.env.AGENT_LB_REGISTRY_TABLE = env;
  });
});

describe('discovery at 10 000 members', () => {
  const CAPABILITIES = 50;
  const PER_CAPABILITY = 200;

  beforeAll(async () => {
    const members: CatalogMember[] = [];
    for (let c = 0; c < CAPABILITIES; c++) {
      for (let i = 0; i < PER_CAPABILITY; i++) {
        members.push({
          capability: `cap-${c}`,
          target: `10.${c}.${i >> 8}.${i & 255}:8080`,
          address: `10.${c}.${i >> 8}.${i & 255}`,
          port: 8080,
          agentId: `agent-${c}-${i}`,
          status: 'active',
          state: i % 4 === 0 ? 'unhealthy' : 'healthy',
          since: 1,
          registeredAt: 1,
          metadata: { model: { S: i % 2 === 0 ? 'large' : 'small' } },
        });
      }
    }
    const batches: WriteRequest[][] = [];
    for (let i = 0; i < members.length; i += 25) batches.push(members.slice(i, i + 25).map((m) => ({ PutRequest: { Item: encodeMember(m, 1) as Item } })));
    await mapLimit(batches, 8, async (batch) => {
      let pending = batch;
      while (pending.length > 0) {
        const out = await client.send(new BatchWriteItemCommand({ RequestItems: { [STATE]: pending } }));
        pending = out.UnprocessedItems?.[STATE] ?? [];
      }
    });
  }, 300_000);

  it('reads one capability\'s members, never the others: the Query looks at 200 items of 10 000, whatever the filters', async () => {
    const state = new RegistryStateStore(client, STATE);
    const read = await state.queryMembers('cap-7', false);
    expect(read.scannedCount).toBe(PER_CAPABILITY);
    expect(read.members).toHaveLength(PER_CAPABILITY);
    // Eventually consistent: 0.5 read units per 4 KB of this capability's items, at most.
    const bytes = PER_CAPABILITY * 400;
    expect(read.consumedReadUnits).toBeLessThanOrEqual(0.5 * Math.ceil(bytes / 4096) + 1);
    const healthyLarge = await discoverAgents('cap-7', { registryTableName: STATE, client, filter: { model: 'large' } });
    expect(healthyLarge).toHaveLength(PER_CAPABILITY / 4);
    // What a table scan would look at, for comparison: every item.
    let scanned = 0;
    let start: Record<string, never> | undefined;
    do {
      const out = await client.send(new ScanCommand({ TableName: STATE, Select: 'COUNT', ExclusiveStartKey: start }));
      scanned += out.ScannedCount ?? 0;
      start = out.LastEvaluatedKey as typeof start;
    } while (start);
    expect(scanned).toBeGreaterThanOrEqual(CAPABILITIES * PER_CAPABILITY);
  });
});
