/**
 * The catalog's own reader of the lease stream (lib/registry/catalog-stream.ts) and its Lambda
 * handler: which records it works on, what it writes, and how a failed step is retried.
 */
import { describe, expect, it } from 'vitest';
import type { DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { AddressPolicy } from '../../lib/core/address-policy';
import type { CatalogConfig } from '../../lib/core/catalog-document';
import { CATALOG_STREAM_METRICS } from '../../lib/core/metric-names';
import { LeaseStore } from '../../lib/aws/lease-store';
import { toLeaseChange } from '../../lib/aws/stream-records';
import { createCatalogStreamHandler } from '../../lib/handlers/catalog-stream-handler';
import { syncCatalogBatch } from '../../lib/registry/catalog-stream';
import { FakeRegistryState } from '../support/fake-registry-state';
import { InMemoryLeaseTable } from '../support/in-memory-lease-table';
import { captureMetrics, insert, leaseItem, modify, privateIp, remove, renewed, silentLogger, T0, testConfig } from '../support/lease-fixtures';

const catalogConfig: CatalogConfig = {
  tableName: 'state',
  headerName: 'X-Agent-Capability',
  pathPrefix: 'agents',
  attributes: ['model'],
  capabilities: {
    vision: { algorithm: 'round_robin', stickiness: 'off', variants: [] },
    speech: { algorithm: 'round_robin', stickiness: 'off', variants: [] },
    ec2: { algorithm: 'round_robin', stickiness: 'off', variants: [] },
  },
};

function reader() {
  const config = testConfig();
  const table = new InMemoryLeaseTable(config.tableName, () => T0);
  const state = new FakeRegistryState();
  const deps = {
    state: state.asStore(),
    catalog: catalogConfig,
    store: new LeaseStore(table.asClient(), config.tableName),
    routing: config.routing,
    policy: new AddressPolicy(config.routing.allowedCidrs),
    now: () => T0 * 1000 + 500,
  };
  const run = (records: DynamoDBRecord[]) => {
    table.applyRecords(records);
    return syncCatalogBatch(records.map(toLeaseChange), deps);
  };
  const members = (capability: string) => [...(state.members.get(capability)?.keys() ?? [])].sort();
  return { config, table, state, deps, run, members };
}

const lease = (n: number, capabilities = ['vision', 'speech'], metadata?: Record<string, string>) =>
  leaseItem({ address: privateIp(n), capabilities, leaseToken: `tok-${n}` }, metadata ? { metadata: { M: Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, { S: v }])) } } : {});

describe('the catalog stream reader', () => {
  it.each([
    ['a new lease', () => [insert(lease(1))], { leasesChanged: 1, memberWrites: 2 }],
    ['a heartbeat', () => [modify(lease(1), renewed(lease(1)))], { leasesChanged: 0, memberWrites: 0 }],
    ['a release', () => [remove(lease(1))], { leasesChanged: 1, memberWrites: 2 }],
    ['a capability dropped', () => [modify(lease(1), lease(1, ['vision']))], { leasesChanged: 1, memberWrites: 2 }],
  ] as const)('%s', async (_name, records, expected) => {
    const r = reader();
    if (_name !== 'a new lease') await r.run([insert(lease(1))]);
    const before = r.state.calls.putMember + r.state.calls.deleteMember;
    const report = await r.run(records());
    expect({ leasesChanged: report.leasesChanged, memberWrites: r.state.calls.putMember + r.state.calls.deleteMember - before }).toEqual(expected);
    expect(report.firstFailedRecordId).toBeUndefined();
  });

  it('follows what the table says now: entries of the groups the lease names, none of those it left', async () => {
    const r = reader();
    await r.run([insert(lease(1)), insert(lease(2, ['vision']))]);
    expect(r.members('vision')).toEqual([`${privateIp(1)}:8080`, `${privateIp(2)}:8080`]);
    expect(r.members('speech')).toEqual([`${privateIp(1)}:8080`]);
    await r.run([modify(lease(1), lease(1, ['vision']))]);
    expect(r.members('speech')).toEqual([]);
    expect(r.state.doc?.capabilities.find((c) => c.name === 'speech')?.targets).toMatchObject({ registered: 0 });
  });

  it('a metadata change moves the catalog though no route changes; a failed step names its first record for the retry', async () => {
    const r = reader();
    await r.run([insert(lease(1, ['vision'], { model: 'a' })), insert(lease(2))]);
    r.state.failQuery = new Error('throttled');
    const records = [modify(lease(2), renewed(lease(2))), modify(lease(1, ['vision'], { model: 'a' }), lease(1, ['vision'], { model: 'b' }))];
    const failed = await r.run(records);
    expect(failed.catalog.error?.code).toBe('REGISTRY_STATE');
    expect(failed.firstFailedRecordId).toBe(records[1].dynamodb?.SequenceNumber);
    r.state.failQuery = undefined;
    const retried = await syncCatalogBatch(records.slice(1).map(toLeaseChange), r.deps);
    expect(retried.catalog.error).toBeUndefined();
    expect(r.state.members.get('vision')?.get(`${privateIp(1)}:8080`)?.member.metadata).toEqual({ model: { S: 'b' } });
  });
});

describe('the catalog stream handler', () => {
  const event = (records: DynamoDBRecord[]): DynamoDBStreamEvent => ({ Records: records });

  it('reports a failed step as a batch item failure from the first changed record, and counts it', async () => {
    const r = reader();
    const emf = captureMetrics();
    // The lease table's client for the registry table too: every member write fails.
    const handler = createCatalogStreamHandler({ config: { ...r.config, catalog: catalogConfig }, dynamoClient: r.table.asClient(), logger: silentLogger(), metrics: emf.metrics });
    const records = [modify(lease(2), renewed(lease(2))), insert(lease(1))];
    r.table.applyRecords(records);
    expect(await handler(event(records))).toEqual({ batchItemFailures: [{ itemIdentifier: records[1].dynamodb?.SequenceNumber }] });
    expect(emf.last(CATALOG_STREAM_METRICS.records)).toBe(2);
    expect(emf.last(CATALOG_STREAM_METRICS.leasesChanged)).toBe(1);
    expect(emf.last('RegistryStateErrors')).toBe(1);
  });

  it('refuses a configuration without a catalog in one line, as an invocation failure', async () => {
    const r = reader();
    const handler = createCatalogStreamHandler({ config: r.config, dynamoClient: r.table.asClient(), logger: silentLogger(), metrics: captureMetrics().metrics });
    await expect(handler(event([insert(lease(1))]))).rejects.toThrow(/needs a configuration with a `catalog`/);
  });
});
