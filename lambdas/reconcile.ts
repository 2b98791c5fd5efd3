import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { addressPolicyFor, RuntimeConfig } from '../lib/core/runtime-config';
import { createElbClient } from '../lib/aws/clients';
import { runtimeOnce } from '../lib/aws/target-group-discovery';
import { createDynamoClient } from '../lib/aws/dynamo-client';
import { ElbTargets } from '../lib/aws/elb-targets';
import { LeaseStore } from '../lib/aws/lease-store';
import { newReconcileMemory } from '../lib/registry/container-memory';
import { reconcileOnce, ReconcileReport } from '../lib/registry/reconcile';
import { publishReconcileReport } from '../lib/registry/telemetry';
import { sleep as defaultSleep } from '../lib/core/concurrency';

export interface ReconcileHandlerOptions {
  readonly config?: RuntimeConfig;
  readonly elbClient?: ElasticLoadBalancingV2Client;
  readonly dynamoClient?: DynamoDBClient;
  readonly logger?: Logger;
  readonly metrics?: Metrics;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/**
 * Builds the scheduled reconcile handler. With `reconcileRepeatSeconds` > 0 one invocation
 * repeats the pass every N seconds until its remaining time runs short, so drift is repaired
 * faster than EventBridge's one-minute floor.
 */
export function createReconcileHandler(options: ReconcileHandlerOptions = {}) {
  const logger = options.logger ?? new Logger();
  const metrics = options.metrics ?? new Metrics();
  const elbClient = options.elbClient ?? createElbClient();
  const dynamoClient = options.dynamoClient ?? createDynamoClient();
  // Lives as long as the container: removals held back for a second pass, targets ELB refused.
  const memory = newReconcileMemory();
  const depsFor = (config: RuntimeConfig) => ({
    config,
    elb: new ElbTargets(elbClient),
    store: new LeaseStore(dynamoClient, config.tableName),
    routing: config.routing,
    policy: addressPolicyFor(config.routing),
    safetyValveShare: config.safetyValveShare,
    memory,
    ...(options.now ? { now: options.now } : {}),
  });
  const depsReady = runtimeOnce(options.config, elbClient, depsFor);
  const sleep = options.sleep ?? defaultSleep;

  return async (_event?: unknown, context?: { getRemainingTimeInMillis?: () => number }): Promise<ReconcileReport[]> => {
    const reports: ReconcileReport[] = [];
    const deps = await depsReady();
    const repeatMs = deps.config.reconcileRepeatSeconds * 1000;
    for (;;) {
      const report = await reconcileOnce(deps);
      publishReconcileReport(report, logger, metrics);
      reports.push(report);
      const remaining = context?.getRemainingTimeInMillis?.() ?? 0;
      // Stop when the next pass (sleep + a pass' worth of margin) would not fit in this invocation.
      if (repeatMs === 0 || remaining < 2 * repeatMs + 5_000) return reports;
      await sleep(repeatMs);
    }
  };
}

let cached: ReturnType<typeof createReconcileHandler> | undefined;

export const handler = (event: unknown, context?: { getRemainingTimeInMillis?: () => number }): Promise<ReconcileReport[]> =>
  (cached ??= createReconcileHandler())(event, context);
