import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import type { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';

/** What local mode watches of its handlers instead of CloudWatch: no EMF, a count of the ELB calls AWS would throttle. */

/** Metrics that go nowhere: locally the live view shows the figures, and EMF lines would garble it. */
export function localMetrics(logger: Logger, namespace = 'agent-lb-local'): Metrics {
  const previous = process.env.POWERTOOLS_METRICS_DISABLED;
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  try {
    return new Metrics({ namespace, serviceName: namespace, logger });
  } finally {
    if (previous === undefined) delete process.env.POWERTOOLS_METRICS_DISABLED;
    else process.env.POWERTOOLS_METRICS_DISABLED = previous;
  }
}

/** Counts Register/DeregisterTargets requests the clients send (each retry attempt included), as AWS's throttle sees them. */
export function countingElbClient(clients: readonly ElasticLoadBalancingV2Client[]): { clients: readonly ElasticLoadBalancingV2Client[]; mutating: () => number } {
  let mutating = 0;
  for (const client of clients) {
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'RegisterTargetsCommand' || context.commandName === 'DeregisterTargetsCommand') mutating++;
        return next(args);
      },
      { step: 'finalizeRequest', name: 'agentLbCountMutatingCalls' },
    );
  }
  return { clients, mutating: () => mutating };
}
