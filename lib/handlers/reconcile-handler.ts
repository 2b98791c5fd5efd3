import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { EC2Client } from '@aws-sdk/client-ec2';
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { sleep as defaultSleep } from '../core/concurrency';
import { addressPolicyFor, RuntimeConfig } from '../core/runtime-config';
import { createElbClient } from '../aws/clients';
import { createEc2Client, Ec2Holders } from '../aws/ec2-holders';
import { createDynamoClient } from '../aws/dynamo-client';
import { ElbTargets } from '../aws/elb-targets';
import { ElbCallGate } from '../core/elb-call-budget';
import { LeaseStore } from '../aws/lease-store';
import { RegistryStateStore } from '../aws/registry-state-store';
import { newReconcileMemory } from '../registry/container-memory';
import { reconcileOnce, ReconcileReport } from '../registry/reconcile';
import type { WriteWidth } from '../registry/registry-writes';
import { elbGateOf, settleElbGate } from './elb-gate';
import { runtimeOnce } from './runtime-config-loader';
import { publishInvocationFailure, publishReconcileReport, publishResolutionWarning } from './telemetry';

export type { ReconcileReport } from '../registry/reconcile';

export interface ReconcileHandlerOptions {
  readonly config?: RuntimeConfig;
  readonly elbClient?: ElasticLoadBalancingV2Client;
  readonly dynamoClient?: DynamoDBClient;
  /**
   * The gate every Register/DeregisterTargets call takes a token from: give sync and reconcile
   * of one process the same one, so together they stay within the budget.
   * @default with the configuration's `sharedElbBudget`, the bucket every container shares;
   * else a gate of its `elbBudget` for this container; none without a budget
   */
  readonly elbGate?: ElbCallGate;
  /** EC2, for admission (a configuration with `admission`). @default a client from the environment, made only when admission is configured */
  readonly ec2Client?: EC2Client;
  readonly logger?: Logger;
  readonly metrics?: Metrics;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Leases (and catalog entries) a pass writes into at once @default observedWrites(): paced by their latency */
  readonly writesAtATime?: WriteWidth;
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
  let gate = options.elbGate;
  const gateFor = (config: RuntimeConfig) => (gate ??= elbGateOf(config, dynamoClient, logger, metrics));
  const depsFor = (config: RuntimeConfig) => ({
    config,
    elb: new ElbTargets(elbClient, gateFor(config)),
    store: new LeaseStore(dynamoClient, config.tableName),
    routing: config.routing,
    policy: addressPolicyFor(config.routing),
    safetyValveShare: config.safetyValveShare,
    memory,
    ...(config.catalog ? { catalog: { state: new RegistryStateStore(dynamoClient, config.catalog.tableName), catalog: config.catalog } } : {}),
    ...(config.variants ? { variants: { client: elbClient, weights: config.variants.weights, on: config.variants } } : {}),
    ...(config.admission ? { admission: { admission: config.admission, holders: new Ec2Holders(options.ec2Client ?? createEc2Client()) } } : {}),
    ...(config.targetQuota !== undefined ? { targetQuota: config.targetQuota } : {}),
    ...(config.loadBalancers ? { loadBalancers: config.loadBalancers } : {}),
    ...(options.now ? { now: options.now } : {}),
    ...(options.writesAtATime !== undefined ? { writesAtATime: options.writesAtATime } : {}),
  });
  const depsReady = runtimeOnce(options.config, elbClient, depsFor, { onCatalogHostsUnknown: (error) => publishResolutionWarning(error, logger, metrics) });
  const sleep = options.sleep ?? defaultSleep;

  return async (_event?: unknown, context?: { getRemainingTimeInMillis?: () => number }): Promise<ReconcileReport[]> => {
    const reports: ReconcileReport[] = [];
    const failed = async (error: unknown): Promise<never> => {
      // The pass failed as a whole (no configuration, no group readable): the next one tries again.
      await settleElbGate(gate, metrics);
      publishInvocationFailure(error, logger, metrics);
      throw error;
    };
    const deps = await depsReady().catch(failed);
    const repeatMs = deps.config.reconcileRepeatSeconds * 1000;
    for (;;) {
      const report = await reconcileOnce(deps).catch(failed);
      // Each pass ends with the shared budget's spends written: the sleep before the next may outlast their holds.
      await settleElbGate(gate, metrics);
      publishReconcileReport(report, logger, metrics);
      reports.push(report);
      const remaining = context?.getRemainingTimeInMillis?.() ?? 0;
      // Stop when the next pass (sleep + a pass' worth of margin) would not fit in this invocation.
      if (repeatMs === 0 || remaining < 2 * repeatMs + 5_000) return reports;
      await sleep(repeatMs);
    }
  };
}
