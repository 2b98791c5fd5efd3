import { ElasticLoadBalancingV2Client, ElasticLoadBalancingV2ClientConfig } from '@aws-sdk/client-elastic-load-balancing-v2';

/**
 * ELB clients retry throttling and 5xx with the SDK's standard mode (exponential backoff with
 * jitter, a retry quota), inside the deadline every confirmed change puts on its call
 * (`DECISION_DEADLINE_MS`, then read and sent again, a few rounds). Not the adaptive mode: its
 * client-side rate limiter lets a call wait for a send token, down to one every 2 s after
 * throttling, and a call abandoned at its deadline still takes its token when it wakes. In the
 * chaos run that starved every later call of the client past its deadline, so nothing was sent,
 * the limiter never saw a response that would raise its rate again, and the stream stalled for
 * minutes after a brown-out.
 */
export function createElbClient(config: ElasticLoadBalancingV2ClientConfig = {}): ElasticLoadBalancingV2Client {
  return new ElasticLoadBalancingV2Client({ retryMode: 'standard', maxAttempts: 6, ...config });
}
