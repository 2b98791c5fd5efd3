import { Token } from 'aws-cdk-lib';
import { CATALOG_STREAM_SERVICE_NAME, METRICS_NAMESPACE, RECONCILE_SERVICE_NAME, SYNC_SERVICE_NAME } from '../core/metric-names';
import { CONFIG_ENV, RuntimeConfigJson } from '../core/runtime-config';

/** Lambda allows 4 KB of environment variables per function (keys and values). */
const LAMBDA_ENV_LIMIT = 4096;

/** What the sync and reconcile Lambdas read from `AGENT_LB_CONFIG`: the wire format declared in lib/core. */
export type AgentLbRuntimeConfigJson = RuntimeConfigJson;

/**
 * Lambda refuses environments over 4 KB. Target group ARNs are only known at deploy time, so
 * each is counted at its longest realistic length (124 characters), and a generated table
 * name at 100 characters.
 */
export function lambdaEnvironmentProblems(config: AgentLbRuntimeConfigJson): string[] {
  const estimate = JSON.stringify({
    ...config,
    tableName: Token.isUnresolved(config.tableName) ? 'x'.repeat(100) : config.tableName,
    ...(config.loadBalancerArn ? { loadBalancerArn: 'x'.repeat(160) } : {}),
    ...(config.listenerArn ? { listenerArn: 'x'.repeat(180) } : {}),
    ...(config.moreLoadBalancerArns ? { moreLoadBalancerArns: config.moreLoadBalancerArns.map(() => 'x'.repeat(160)) } : {}),
    capabilities: Array.isArray(config.capabilities)
      ? config.capabilities
      : Object.fromEntries(Object.entries(config.capabilities).map(([n, c]) => [n, { ...c, targetGroupArn: 'x'.repeat(124) }])),
    ...(config.allowedCidrs ? { allowedCidrs: config.allowedCidrs.map((c) => (Token.isUnresolved(c) ? 'x'.repeat(18) : c)) } : {}),
    ...(config.vpcCidrs ? { vpcCidrs: config.vpcCidrs.map((c) => (Token.isUnresolved(c) ? 'x'.repeat(18) : c)) } : {}),
    // A security group id is 20 characters, a VPC id 21.
    ...(config.admission ? { admission: JSON.parse(JSON.stringify(config.admission).replace(/\$\{Token\[[^\]]+\]\}/g, 'x'.repeat(20))) } : {}),
    ...(config.catalog ? { catalog: { ...config.catalog, tableName: Token.isUnresolved(config.catalog.tableName) ? 'x'.repeat(100) : config.catalog.tableName } } : {}),
    ...(config.sharedElbBudget?.tableName !== undefined
      ? { sharedElbBudget: { ...config.sharedElbBudget, tableName: Token.isUnresolved(config.sharedElbBudget.tableName) ? 'x'.repeat(100) : config.sharedElbBudget.tableName } }
      : {}),
  });
  // The longest of the functions' service names: every function carries the same configuration.
  const service = [SYNC_SERVICE_NAME, RECONCILE_SERVICE_NAME, CATALOG_STREAM_SERVICE_NAME].reduce((a, b) => (b.length > a.length ? b : a));
  const others = `${CONFIG_ENV}POWERTOOLS_SERVICE_NAME${service}POWERTOOLS_METRICS_NAMESPACE${METRICS_NAMESPACE}POWERTOOLS_LOG_LEVELINFONODE_OPTIONS--enable-source-maps`;
  const total = estimate.length + others.length;
  if (total <= LAMBDA_ENV_LIMIT) return [];
  const n = Array.isArray(config.capabilities) ? config.capabilities.length : Object.keys(config.capabilities).length;
  return [
    `${CONFIG_ENV} for ${n} capabilities may reach ${total} bytes of Lambda environment; Lambda allows ${LAMBDA_ENV_LIMIT} bytes. ` +
      (config.loadBalancerArn || config.listenerArn
        ? 'Use fewer or shorter capability names, or fewer allowedCidrs, per stack'
        : 'Pass `loadBalancer` or `listener` so the functions find the target groups themselves, or use fewer capabilities per stack'),
  ];
}
