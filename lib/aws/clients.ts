import { ElasticLoadBalancingV2Client, ElasticLoadBalancingV2ClientConfig } from '@aws-sdk/client-elastic-load-balancing-v2';

/**
 * ELB clients retry throttling and 5xx with the SDK's adaptive mode, which also slows the
 * client down when the account's Register/DeregisterTargets bucket (burst 20, 4/s) runs dry.
 */
export function createElbClient(config: ElasticLoadBalancingV2ClientConfig = {}): ElasticLoadBalancingV2Client {
  return new ElasticLoadBalancingV2Client({ retryMode: 'adaptive', maxAttempts: 6, ...config });
}
