import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import type { DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { addressPolicyFor, parseRuntimeConfig, RuntimeConfig } from '../lib/core/runtime-config';
import { createElbClient } from '../lib/aws/clients';
import { ElbTargets } from '../lib/aws/elb-targets';
import { toLeaseChange } from '../lib/aws/stream-records';
import { syncStreamBatch } from '../lib/registry/stream-sync';
import { publishSyncReport } from '../lib/registry/telemetry';

export interface SyncHandlerOptions {
  readonly config?: RuntimeConfig;
  readonly elbClient?: ElasticLoadBalancingV2Client;
  readonly logger?: Logger;
  readonly metrics?: Metrics;
  /** Epoch ms, only for the sync-lag metric; decisions never read the clock. */
  readonly now?: () => number;
}

/** Builds the stream handler; local mode and tests inject clients, Lambda uses the environment. */
export function createSyncHandler(options: SyncHandlerOptions = {}) {
  const logger = options.logger ?? new Logger();
  const metrics = options.metrics ?? new Metrics();
  const config = options.config ?? parseRuntimeConfig(process.env.AGENT_LB_CONFIG);
  const deps = {
    elb: new ElbTargets(options.elbClient ?? createElbClient()),
    routing: config.routing,
    policy: addressPolicyFor(config.routing),
  };
  const now = options.now ?? Date.now;

  return async (event: DynamoDBStreamEvent): Promise<DynamoDBBatchResponse> => {
    const records = event.Records.map(toLeaseChange);
    const report = await syncStreamBatch(records, deps);
    const oldest = records.reduce<number | undefined>((m, r) => (r.writtenAtSeconds === undefined || (m !== undefined && m <= r.writtenAtSeconds) ? m : r.writtenAtSeconds), undefined);
    publishSyncReport(report, oldest === undefined ? undefined : Math.max(0, now() - oldest * 1000), logger, metrics);
    return { batchItemFailures: report.firstFailedRecordId === undefined ? [] : [{ itemIdentifier: report.firstFailedRecordId }] };
  };
}

let cached: ReturnType<typeof createSyncHandler> | undefined;

export const handler = (event: DynamoDBStreamEvent): Promise<DynamoDBBatchResponse> => (cached ??= createSyncHandler())(event);
