import { BatchWriteItemCommand, CreateTableCommand, DynamoDBClient, ScanCommand, UpdateItemCommand, WriteRequest } from '@aws-sdk/client-dynamodb';
import { DescribeTargetHealthCommand, DescribeTargetHealthCommandOutput, ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { ALBEvent } from 'aws-lambda';
import { Logger } from '@aws-lambda-powertools/logger';
import { AddressPolicy } from '../lib/core/address-policy';
import { buildCatalogCapability, CatalogConfig, formatCatalog, summarizeGroup } from '../lib/core/catalog-document';
import { membersByGroup } from '../lib/core/catalog-members';
import { mapLimit } from '../lib/core/concurrency';
import type { RawItem, RoutingConfig } from '../lib/core/lease-schema';
import { LeaseStore } from '../lib/aws/lease-store';
import { RegistryStateStore } from '../lib/aws/registry-state-store';
import { createCatalogHandler } from '../lib/handlers/catalog-handler';
import { startDynamoDbLocal } from '../lib/local/emulators';
import { repairCatalog, updateCatalogForLeases } from '../lib/registry/catalog-update';
import { discoverAgents } from '../lib/sdk/discover-agents';
import { CountingElb } from '../test/support/counting-elb';
import { distribution, Distribution } from './percentiles';

/**
 * The `catalog` scenario: what the capability catalog costs, against DynamoDB Local, at 10 000
 * leases in 20 capabilities. Serving: `GET /agents` through the catalog Lambda's own handler (its
 * 1 s cache as deployed) against a naive catalog that, per request, scans the lease table and asks
 * ELB each capability group's health (what "no ELB call and no table scan per request" avoids);
 * every ELB call made in this process is counted, ours included. Upkeep: what the registry reads and writes for one health
 * change (a stream batch's catalog step) and for a reconcile pass's catalog step with nothing to
 * repair. Discovery: one capability's agents by the member index's Query against a table scan.
 * Read and write units are DynamoDB's own count (ReturnConsumedCapacity); latencies are of the
 * handler in process (no network, no Lambda), in microseconds.
 */

export interface CatalogUnits {
  readonly calls: Readonly<Record<string, number>>;
  readonly readUnits: number;
  readonly writeUnits: number;
}

export interface CatalogBenchResult {
  readonly scenario: 'catalog';
  readonly setup: { readonly leases: number; readonly capabilities: number; readonly documentBytes: number; readonly cacheMs: number };
  readonly build: CatalogUnits & { readonly seconds: number };
  readonly serving: {
    readonly requests: number;
    /** Latencies in microseconds. */
    readonly ours: CatalogUnits & { readonly elbCalls: number; readonly latency: Distribution; readonly requestsPerSecond: number; readonly seconds: number };
    /** Its DescribeTargetHealth calls went to an in-memory ELB: its latency is the scan's and the counting's, not ELB's. */
    readonly naive: CatalogUnits & { readonly elbCalls: number; readonly requests: number; readonly latency: Distribution; readonly requestsPerSecond: number };
  };
  readonly healthChange: CatalogUnits & { readonly ms: number; readonly elbCalls: number };
  readonly reconcilePass: CatalogUnits & { readonly ms: number; readonly elbCalls: number };
  readonly discovery: { readonly oursCalls: Readonly<Record<string, number>>; readonly oursScanned: number; readonly oursReadUnits: number; readonly naiveScanned: number; readonly naiveReadUnits: number; readonly agents: number };
}

const CAPABILITIES = 20;
const PER_CAPABILITY = 500;
/** How long requests are sent to the catalog handler, back to back (its cache is 1 s). */
const SERVING_MS = 5000;
const NAIVE_REQUESTS = 5;

/** Counts a client's calls and the capacity DynamoDB says they consumed. */
function counting(client: DynamoDBClient) {
  let calls: Record<string, number> = {};
  let readUnits = 0;
  let writeUnits = 0;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as Record<string, unknown>;
      input.ReturnConsumedCapacity ??= 'TOTAL';
      const out = await next(args);
      const name = String(context.commandName).replace(/Command$/, '');
      calls[name] = (calls[name] ?? 0) + 1;
      const consumed = (out.output as { ConsumedCapacity?: { ReadCapacityUnits?: number; WriteCapacityUnits?: number; CapacityUnits?: number } | { CapacityUnits?: number }[] }).ConsumedCapacity;
      for (const c of [consumed ?? []].flat() as { ReadCapacityUnits?: number; WriteCapacityUnits?: number; CapacityUnits?: number }[]) {
        const units = c.CapacityUnits ?? 0;
        if (/^(Put|Delete|Update|BatchWrite)/.test(name)) writeUnits += c.WriteCapacityUnits ?? units;
        else readUnits += c.ReadCapacityUnits ?? units;
      }
      return out;
    },
    { step: 'initialize', name: 'catalogBenchCounting' },
  );
  return {
    take(): CatalogUnits {
      const out = { calls, readUnits: Math.round(readUnits * 10) / 10, writeUnits: Math.round(writeUnits * 10) / 10 };
      calls = {};
      readUnits = 0;
      writeUnits = 0;
      return out;
    },
  };
}

/**
 * Counts every ELB request sent by any client in this process until `restore()`: the catalog's
 * code takes no ELB client, so this is how the bench sees that it makes no call, rather than
 * assuming it.
 */
function countAllElbCalls() {
  const proto = ElasticLoadBalancingV2Client.prototype as unknown as { send: (...args: unknown[]) => unknown };
  const original = proto.send;
  let calls = 0;
  proto.send = function (this: unknown, ...args: unknown[]) {
    calls++;
    return original.apply(this, args);
  };
  return {
    take(): number {
      const n = calls;
      calls = 0;
      return n;
    },
    restore(): void {
      proto.send = original;
    },
  };
}

function leaseItem(c: number, i: number, now: number): RawItem {
  const address = `10.${c}.${i >> 8}.${i & 255}`;
  return {
    target: { S: `${address}:8080` },
    address: { S: address },
    port: { N: '8080' },
    capabilities: { SS: [`cap-${c}`] },
    expiresAt: { N: String(Math.floor(now / 1000) + 3600) },
    leaseToken: { S: `token-${c}-${i}-0123456789abcdef` },
    agentId: { S: `worker-${c}-${i}` },
    status: { S: 'active' },
    renewedAt: { N: String(now) },
    registeredAt: { N: String(now) },
    metadata: { M: { model: { S: i % 3 === 0 ? 'large' : 'small' }, zone: { S: `eu-west-1${'abc'[i % 3]}` } } },
    rotation: { M: { [`cap-${c}`]: { M: { state: { S: i % 10 === 0 ? 'unhealthy' : 'healthy' }, since: { N: String(now) } } } } },
  };
}

const albEvent = (): ALBEvent => ({ requestContext: { elb: { targetGroupArn: 'arn:tg/catalog' } }, httpMethod: 'GET', path: '/agents', queryStringParameters: {}, headers: {}, body: '', isBase64Encoded: false });

export async function runCatalogBench(options: { log: (line: string) => void }): Promise<CatalogBenchResult> {
  const ddb = await startDynamoDbLocal();
  const elbCalls = countAllElbCalls();
  const client = new DynamoDBClient({ ...ddb.clientConfig, maxAttempts: 5 });
  const units = counting(client);
  try {
    await client.send(new CreateTableCommand({ TableName: 'leases', BillingMode: 'PAY_PER_REQUEST', AttributeDefinitions: [{ AttributeName: 'target', AttributeType: 'S' }], KeySchema: [{ AttributeName: 'target', KeyType: 'HASH' }] }));
    await client.send(
      new CreateTableCommand({
        TableName: 'state',
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
    const now = Date.now();
    const items = Array.from({ length: CAPABILITIES * PER_CAPABILITY }, (_, n) => leaseItem(Math.floor(n / PER_CAPABILITY), n % PER_CAPABILITY, now));
    const batches: WriteRequest[][] = [];
    for (let i = 0; i < items.length; i += 25) batches.push(items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item: Item as never } })));
    await mapLimit(batches, 8, async (batch) => {
      for (let pending = batch; pending.length > 0; ) pending = (await client.send(new BatchWriteItemCommand({ RequestItems: { leases: pending } }))).UnprocessedItems?.leases ?? [];
    });
    units.take();
    options.log(`catalog: ${items.length} leases written`);

    const names = Array.from({ length: CAPABILITIES }, (_, c) => `cap-${c}`);
    const routing: RoutingConfig = { capabilities: Object.fromEntries(names.map((n) => [n, { targetGroupArn: `arn:tg/${n}`, targetType: 'ip' }])), allowedCidrs: ['10.0.0.0/8'] };
    const policy = new AddressPolicy(routing.allowedCidrs);
    const catalog: CatalogConfig = {
      tableName: 'state',
      headerName: 'X-Agent-Capability',
      pathPrefix: 'agents',
      attributes: ['model', 'zone'],
      capabilities: Object.fromEntries(names.map((n) => [n, { algorithm: 'least_outstanding_requests', stickiness: 'off' as const, variants: [] }])),
    };
    const store = new LeaseStore(client, 'leases');
    const deps = { state: new RegistryStateStore(client, 'state'), catalog, store, routing, policy };

    // The first reconcile pass builds the index and the document.
    let started = Date.now();
    const built = await repairCatalog(deps, (await store.scanAll(false)).items, Date.now());
    if (built.error) throw built.error;
    const build = { ...units.take(), seconds: Math.round((Date.now() - started) / 100) / 10 };
    options.log(`catalog: index and document built in ${build.seconds} s`);

    // Serving, ours: the handler with the deployed 1 s cache, requests as fast as they come.
    const handler = createCatalogHandler({ config: { tableName: 'state', cacheMs: 1000 }, dynamoClient: client, logger: new Logger({ logLevel: 'SILENT' }) });
    const first = await handler(albEvent());
    const documentBytes = Buffer.byteLength(first.body ?? '');
    units.take();
    elbCalls.take();
    const latencies: number[] = [];
    started = Date.now();
    while (Date.now() - started < SERVING_MS) {
      const t = performance.now();
      const res = await handler(albEvent());
      latencies.push(performance.now() - t);
      if (res.statusCode !== 200) throw new Error(`catalog: the handler answered ${res.statusCode}`);
    }
    const elapsed = (Date.now() - started) / 1000;
    const requests = latencies.length;
    const ours = { ...units.take(), elbCalls: elbCalls.take(), latency: distribution(latencies.map((l) => l * 1000)), requestsPerSecond: Math.round(requests / elapsed), seconds: elapsed };

    // Serving, naive: per request, scan the leases (who holds which capability, their metadata) and
    // ask ELB each group's health. ELB is an in-memory stand-in holding each group's 500 targets.
    const fakeElb = new CountingElb();
    for (const n of names) fakeElb.groups.set(`arn:tg/${n}`, new Set(items.filter((i) => i.capabilities.SS![0] === n).map((i) => i.target.S!)));
    const elb = fakeElb.asClient();
    const naiveLatencies: number[] = [];
    const naiveStarted = Date.now();
    for (let i = 0; i < NAIVE_REQUESTS; i++) {
      const t = performance.now();
      const scan = await store.scanAll(false);
      const health = new Map<string, string>();
      for (const n of names) {
        const out = (await elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: `arn:tg/${n}` }))) as DescribeTargetHealthCommandOutput;
        for (const d of out.TargetHealthDescriptions ?? []) health.set(`${n} ${d.Target?.Id}:${d.Target?.Port}`, d.TargetHealth?.State ?? 'unavailable');
      }
      const groups = membersByGroup(scan.items, policy, routing, Math.floor(Date.now() / 1000));
      const summaryOf = (g: string) => summarizeGroup([...(groups.get(g)?.values() ?? [])].map((m) => ({ ...m, state: (health.get(`${g} ${m.target}`) ?? m.state) as typeof m.state })), catalog.attributes);
      formatCatalog({ revision: 0, generatedAt: 0, capabilities: names.map((n) => buildCatalogCapability(catalog, n, summaryOf)) });
      naiveLatencies.push(performance.now() - t);
    }
    const naiveSeconds = (Date.now() - naiveStarted) / 1000;
    const naive = {
      ...units.take(),
      elbCalls: Object.values(fakeElb.calls).reduce((a, b) => a + b, 0),
      requests: NAIVE_REQUESTS,
      latency: distribution(naiveLatencies.map((l) => l * 1000)),
      requestsPerSecond: Math.round((NAIVE_REQUESTS / naiveSeconds) * 100) / 100,
    };
    options.log(`catalog: served ${requests} requests in ${elapsed} s (${ours.requestsPerSecond}/s), naive ${NAIVE_REQUESTS} in ${naiveSeconds} s`);

    // One health change: the registry's rotation write, then the stream batch's catalog step for it.
    const changed = items[PER_CAPABILITY + 1].target.S!;
    await client.send(
      new UpdateItemCommand({
        TableName: 'leases',
        Key: { target: { S: changed } },
        UpdateExpression: 'SET #r.#c = :e',
        ExpressionAttributeNames: { '#r': 'rotation', '#c': 'cap-1' },
        ExpressionAttributeValues: { ':e': { M: { state: { S: 'unhealthy' }, since: { N: String(Date.now()) } } } },
      }),
    );
    units.take();
    elbCalls.take();
    started = Date.now();
    const step = await updateCatalogForLeases(deps, new Map([[changed, new Set(['cap-1'])]]));
    if (step.error || !step.published) throw step.error ?? new Error('catalog: the health change did not move the revision');
    const healthChange = { ...units.take(), ms: Date.now() - started, elbCalls: elbCalls.take() };

    // A reconcile pass's catalog step with nothing to repair (its lease scan is the pass's own, not counted here).
    const scan = (await store.scanAll(false)).items;
    units.take();
    started = Date.now();
    const pass = await repairCatalog(deps, scan, Date.now());
    if (pass.error) throw pass.error;
    const reconcilePass = { ...units.take(), ms: Date.now() - started, elbCalls: elbCalls.take() };

    // Discovery: one capability by Query, against a scan of the lease table.
    units.take();
    const agents = await discoverAgents('cap-3', { registryTableName: 'state', client, health: 'all' });
    const discovery = units.take();
    const query = await deps.state.queryMembers('cap-3', false);
    units.take();
    let naiveScanned = 0;
    let naiveReadUnits = 0;
    let start: Record<string, never> | undefined;
    do {
      const out = await client.send(new ScanCommand({ TableName: 'leases', ExclusiveStartKey: start, ReturnConsumedCapacity: 'TOTAL' }));
      naiveScanned += out.ScannedCount ?? 0;
      naiveReadUnits += out.ConsumedCapacity?.CapacityUnits ?? 0;
      start = out.LastEvaluatedKey as typeof start;
    } while (start);
    units.take();
    return {
      scenario: 'catalog',
      setup: { leases: items.length, capabilities: CAPABILITIES, documentBytes, cacheMs: 1000 },
      build,
      serving: { requests, ours, naive },
      healthChange,
      reconcilePass,
      discovery: { oursCalls: discovery.calls, oursScanned: query.scannedCount, oursReadUnits: discovery.readUnits, naiveScanned, naiveReadUnits: Math.round(naiveReadUnits * 10) / 10, agents: agents.length },
    };
  } finally {
    elbCalls.restore();
    client.destroy();
    await ddb.stop();
  }
}
