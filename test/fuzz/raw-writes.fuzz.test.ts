/**
 * Bad input, real-server level: batches of lease items written with the raw AWS SDK (PutItem,
 * no agent SDK in the way) into DynamoDB Local, synced by the real stream handler through the
 * local poller and repaired by the real reconcile handler into moto's target groups.
 *
 * After every batch, once the poller has drained and a reconcile pass has run, for everything
 * written so far: no bad lease's target is in any group; every valid lease's target is in every
 * group it names and in no other; the handlers never failed and no batch was retried or stuck;
 * each bad lease was logged with its reason; the sync handler's RejectedLeases metric counted it.
 *
 * Local mode allows loopback targets (demo agents listen there), so loopback cases are left out.
 * Seeded (FUZZ_SEED); FUZZ_RUNS_FACTOR scales the number of batches.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { DynamoDBClient, PutItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { DescribeTargetHealthCommand, type ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LocalStack } from '../../lib/local/local-stack';
import type { StreamPollerBatchInfo } from '../../lib/local/stream/stream-poller';
import { captureMetrics, EmfCapture } from '../support/lease-fixtures';
import { anyLease, FuzzEnv, LeaseCase } from './lease-cases';

const SEED = Number(process.env.FUZZ_SEED ?? 20_260_401);
const RUNS = Math.max(1, Math.round(20 * Number(process.env.FUZZ_RUNS_FACTOR ?? 1)));
const CAPABILITIES = ['vision', 'speech', 'search'];

interface LogLine {
  level: string;
  message: string;
  reason?: string;
  target?: string;
  capability?: string;
  detail?: string;
  error?: string;
}

/** A real Powertools logger whose JSON lines are kept instead of printed. */
function capturingLogger(): { logger: Logger; lines: LogLine[] } {
  const logger = new Logger({ serviceName: 'agent-lb-fuzz', logLevel: 'WARN' });
  const lines: LogLine[] = [];
  const sink = (logger as unknown as { console: Record<'info' | 'warn' | 'error', (line: string) => void> }).console;
  for (const level of ['info', 'warn', 'error'] as const) {
    vi.spyOn(sink, level).mockImplementation((line: string) => void lines.push(JSON.parse(line) as LogLine));
  }
  return { logger, lines };
}

/** `id:port` of every target registered in each group. */
async function registeredTargets(elbv2: ElasticLoadBalancingV2Client, groups: Readonly<Record<string, string>>): Promise<Map<string, Set<string>>> {
  const entries = await Promise.all(
    Object.entries(groups).map(async ([capability, arn]) => {
      const out = await elbv2.send(new DescribeTargetHealthCommand({ TargetGroupArn: arn }));
      return [capability, new Set((out.TargetHealthDescriptions ?? []).map((d) => `${d.Target?.Id}:${d.Target?.Port}`))] as const;
    }),
  );
  return new Map(entries);
}

/** The address:port an item points at, when both can be read: what must never be registered for a bad lease. */
function pointsAt(item: Record<string, unknown>): string | undefined {
  const address = (item.address as { S?: unknown } | undefined)?.S;
  const port = (item.port as { N?: unknown } | undefined)?.N;
  return typeof address === 'string' && typeof port === 'string' ? `${address}:${Number(port)}` : undefined;
}

let stack: LocalStack;
let writer: DynamoDBClient;
let log: ReturnType<typeof capturingLogger>;
const emf: Partial<Record<'sync' | 'reconcile', EmfCapture>> = {};
const batches: StreamPollerBatchInfo[] = [];
const handlerErrors: { where: string; error: unknown }[] = [];

beforeAll(async () => {
  log = capturingLogger();
  stack = await LocalStack.start({
    capabilities: CAPABILITIES,
    reconcileIntervalMs: 1000,
    pollIntervalMs: 50,
    logger: log.logger,
    metrics: (handler) => (emf[handler] = captureMetrics()).metrics,
    onBatch: (info) => batches.push(info),
    onError: (where, error) => handlerErrors.push({ where, error }),
  });
  // The raw SDK, as an agent in any language (or an attacker with table access) would write.
  writer = new DynamoDBClient({ region: stack.state.region, endpoint: stack.state.dynamodbEndpoint, credentials: { accessKeyId: 'fuzz', secretAccessKey: 'fuzz' } });
});

afterAll(async () => {
  writer?.destroy();
  await stack?.stop();
});

describe('raw PutItem of bad leases among good ones, against DynamoDB Local + moto', () => {
  it(`never registers a bad lease, registers every good one, never blocks the stream (${RUNS} seeded batches)`, async () => {
    // Valid leases must outlive the test by far: reconcile judges liveness on the wall clock.
    // Local mode admits loopback agents on any port; other addresses need an interface in its VPC.
    // Leases stay within the deployment's maximum TTL (an hour) from the real clock.
    const env: FuzzEnv = {
      ipCapabilities: CAPABILITIES,
      instanceCapabilities: [],
      ipv6: false,
      loopback: true,
      storable: true,
      nowSeconds: Math.floor(Date.now() / 1000) + 600,
      validAddresses: 'loopback',
      maxTtlSeconds: 2400,
    };
    const written: LeaseCase[] = [];
    const refusedByDynamoDb: { label: string; error: string }[] = [];
    let nextSlot = 0;

    await fc.assert(
      fc.asyncProperty(fc.array(anyLease(env), { minLength: 1, maxLength: 10 }), async (factories) => {
        const cases = factories.map((f) => f(nextSlot++));
        const logFrom = log.lines.length;
        const stored: LeaseCase[] = [];
        await Promise.all(
          cases.map(async (c) => {
            try {
              await writer.send(new PutItemCommand({ TableName: stack.state.tableName, Item: c.item as Record<string, AttributeValue> }));
              stored.push(c);
            } catch (error) {
              refusedByDynamoDb.push({ label: c.label, error: (error as Error).name });
            }
          }),
        );
        written.push(...stored);

        await stack.drain(20_000);
        const pass = await stack.reconcileNow();
        const groups = await registeredTargets(stack.elbv2, stack.state.targetGroups);

        for (const c of written) {
          // What the item points at: its own target for good leases, its address:port (when readable) for bad ones.
          const at = c.target ? `${c.target.Id}:${c.target.Port}` : pointsAt(c.item);
          const holding = [...groups].filter(([, keys]) => at !== undefined && keys.has(at)).map(([capability]) => capability);
          expect(holding.sort(), `${c.label} ${c.key}`).toEqual([...c.groups].sort());
        }

        // The handlers neither threw nor reported failed records: nothing was retried, nothing is stuck.
        expect(handlerErrors).toEqual([]);
        expect(batches.filter((b) => b.outcome !== 'success' || b.attempt > 1)).toEqual([]);
        expect(pass.errors).toEqual([]);

        // Every bad lease of this batch is in the log, with its key and its reason.
        const rejected = log.lines.slice(logFrom).filter((l) => l.message === 'lease rejected');
        for (const c of stored.filter((s) => s.reason !== undefined)) {
          expect(rejected, c.label).toContainEqual(expect.objectContaining({ level: 'WARN', target: c.key, reason: c.reason, detail: expect.any(String) }));
        }
        // And no good lease is.
        const good = new Set(written.filter((c) => c.reason === undefined).map((c) => c.key));
        expect(rejected.filter((l) => good.has(l.target))).toEqual([]);
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );

    // RejectedLeases (sync) = rejected leases + targets ELB refused. moto refuses to deregister a
    // target that was never registered, which is what the removal of an expired lease asks for.
    const refusedByElb = log.lines.filter((l) => l.message === 'target refused by ELB');
    const expired = new Set(written.filter((c) => c.label === 'not live (expired)').map((c) => c.key));
    expect(refusedByElb.filter((l) => !expired.has(l.target))).toEqual([]);
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    expect(sum(emf.sync!.all('RejectedLeases'))).toBe(written.filter((c) => c.reason !== undefined).length + refusedByElb.length);
    expect(emf.reconcile!.all('RejectedLeases').length).toBeGreaterThan(0);

    const reasons = new Map<string, number>();
    for (const c of written) reasons.set(c.reason ?? (c.groups.length > 0 ? 'valid' : 'not live'), (reasons.get(c.reason ?? (c.groups.length > 0 ? 'valid' : 'not live')) ?? 0) + 1);
    console.info(
      `raw-writes fuzz: ${RUNS} batches, ${written.length} items stored (${[...reasons].map(([r, n]) => `${r} ${n}`).join(', ')}), ` +
        `${refusedByDynamoDb.length} refused by DynamoDB Local${refusedByDynamoDb.length ? ` (${[...new Set(refusedByDynamoDb.map((r) => `${r.label}: ${r.error}`))].join('; ')})` : ''}, ` +
        `${batches.length} sync invocations, ${refusedByElb.length} deregistrations of never-registered expired targets refused by moto`,
    );
  }, 120_000);
});
