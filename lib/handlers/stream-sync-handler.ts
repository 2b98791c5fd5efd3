import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import type { DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { EC2Client } from '@aws-sdk/client-ec2';
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { addressPolicyFor, RuntimeConfig } from '../core/runtime-config';
import { createElbClient } from '../aws/clients';
import { createEc2Client, Ec2Holders } from '../aws/ec2-holders';
import { createDynamoClient } from '../aws/dynamo-client';
import { ElbTargets } from '../aws/elb-targets';
import { ElbCallGate } from '../core/elb-call-budget';
import { LeaseStore } from '../aws/lease-store';
import { RegistryStateStore } from '../aws/registry-state-store';
import { toLeaseChange } from '../aws/stream-records';
import { newSyncMemory } from '../registry/container-memory';
import { syncStreamBatch, StreamSyncReport } from '../registry/stream-sync';
import { elbGateOf, settleElbGate } from './elb-gate';
import { runtimeOnce } from './runtime-config-loader';
import { publishInvocationFailure, publishResolutionWarning, publishSyncReport } from './telemetry';

export interface SyncHandlerOptions {
  readonly config?: RuntimeConfig;
  readonly elbClient?: ElasticLoadBalancingV2Client;
  /**
   * The lease table's client. Every registration and deregistration is confirmed with a
   * consistent BatchGetItem of its lease (the sync role has dynamodb:BatchGetItem), so no record —
   * late, duplicated, replayed, without a timestamp — can register a lease that is not live now or
   * deregister one that is. @default a client from the environment
   */
  readonly dynamoClient?: DynamoDBClient;
  /**
   * The gate every Register/DeregisterTargets call takes a token from: give sync and reconcile
   * of one process the same one, so together they stay within the budget.
   * @default with the configuration's `sharedElbBudget`, the bucket every container shares;
   * else a gate of its `elbBudget` for this container; none without a budget
   */
  readonly elbGate?: ElbCallGate;
  /** With a budget: longest a batch waits for tokens before it reports the rest unapplied. @default SYNC_BATCH_BUDGET_MS */
  readonly batchBudgetMs?: number;
  /**
   * EC2, for admission (a configuration with `admission`): who holds the addresses a batch
   * registers. @default a client from the environment, made only when admission is configured
   */
  readonly ec2Client?: EC2Client;
  readonly logger?: Logger;
  readonly metrics?: Metrics;
  /** Epoch ms, for the sync-lag metric and the confirming read's liveness check; planning never reads the clock. */
  readonly now?: () => number;
}

/** Builds the stream handler; local mode and tests inject clients, Lambda uses the environment. */
export function createSyncHandler(options: SyncHandlerOptions = {}) {
  const logger = options.logger ?? new Logger();
  const metrics = options.metrics ?? new Metrics();
  const now = options.now ?? Date.now;
  const elbClient = options.elbClient ?? createElbClient();
  const dynamoClient = options.dynamoClient ?? createDynamoClient();
  // Lives as long as the container: changes already applied, targets ELB refused.
  const memory = newSyncMemory();
  let gate = options.elbGate;
  const gateFor = (config: RuntimeConfig) => (gate ??= elbGateOf(config, dynamoClient, logger, metrics));
  const depsFor = (config: RuntimeConfig) => ({
    elb: new ElbTargets(elbClient, gateFor(config)),
    routing: config.routing,
    policy: addressPolicyFor(config.routing),
    store: new LeaseStore(dynamoClient, config.tableName),
    now,
    memory,
    ...(options.batchBudgetMs !== undefined ? { batchBudgetMs: options.batchBudgetMs } : {}),
    ...(config.admission ? { admission: { admission: config.admission, holders: new Ec2Holders(options.ec2Client ?? createEc2Client()) } } : {}),
    ...(config.targetQuota !== undefined ? { targetQuota: config.targetQuota } : {}),
    ...(config.loadBalancers ? { loadBalancers: config.loadBalancers } : {}),
    ...(config.catalog ? { catalog: { state: new RegistryStateStore(dynamoClient, config.catalog.tableName), catalog: config.catalog } } : {}),
  });
  const ready = runtimeOnce(options.config, elbClient, depsFor, { onCatalogHostsUnknown: (error) => publishResolutionWarning(error, logger, metrics) });

  return async (event: DynamoDBStreamEvent): Promise<DynamoDBBatchResponse> => {
    const records = event.Records.map(toLeaseChange);
    let report: StreamSyncReport;
    try {
      report = await syncStreamBatch(records, await ready());
    } catch (error) {
      // The whole batch failed (its configuration could not be resolved, say): Lambda retries it.
      await settleElbGate(gate, metrics);
      publishInvocationFailure(error, logger, metrics);
      throw error;
    }
    await settleElbGate(gate, metrics);
    const oldest = records.reduce<number | undefined>((m, r) => (r.writtenAtSeconds === undefined || (m !== undefined && m <= r.writtenAtSeconds) ? m : r.writtenAtSeconds), undefined);
    publishSyncReport(report, oldest === undefined ? undefined : Math.max(0, now() - oldest * 1000), logger, metrics);
    return { batchItemFailures: report.firstFailedRecordId === undefined ? [] : [{ itemIdentifier: report.firstFailedRecordId }] };
  };
}
