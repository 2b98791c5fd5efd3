import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ElbCallGate } from '../core/elb-call-budget';
import { RuntimeConfig } from '../core/runtime-config';
import { SharedBudgetStore } from '../aws/shared-budget-store';
import { BucketGate } from '../registry/elb-call-gate';
import { SharedBucketGate } from '../registry/shared-bucket-gate';
import { addOffBudgetCalls, publishBudgetFallback } from './telemetry';

/**
 * The gate a handler's ELB calls take their tokens from: with `sharedElbBudget` (what the stack
 * configures), the bucket every sync and reconcile container shares in the registry state table;
 * otherwise one of this container's own; none without a budget.
 */
export function elbGateOf(config: RuntimeConfig, dynamoClient: DynamoDBClient, logger: Logger, metrics: Metrics): ElbCallGate | undefined {
  if (!config.elbBudget) return undefined;
  if (!config.sharedElbBudget) return new BucketGate(config.elbBudget);
  return new SharedBucketGate(config.elbBudget, new SharedBudgetStore(dynamoClient, config.sharedElbBudget.tableName), {
    fallbackDivisor: config.sharedElbBudget.fallbackDivisor,
    onFallback: (error) => publishBudgetFallback(error, logger, metrics),
  });
}

/**
 * Before an invocation returns: the shared bucket's spends written (a frozen container must not
 * hold them past their holds' lapse) and the calls made from the fallback share counted.
 */
export async function settleElbGate(gate: ElbCallGate | undefined, metrics: Metrics): Promise<void> {
  if (!(gate instanceof SharedBucketGate)) return;
  await gate.flush();
  addOffBudgetCalls(gate.takeOffBudgetCalls(), metrics);
}
