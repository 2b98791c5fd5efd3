import { Annotations, Duration, Tags, Token } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import type { Construct } from 'constructs';
import { ALGORITHM_TAG, STICKINESS_TAG } from '../core/catalog-document';
import { CAPABILITY_TAG, MAX_REQUEST_SECONDS_TAG, VARIANT_OF_TAG, VARIANT_WEIGHT_TAG } from '../core/lease-schema';
import { DEFAULT_MAX_REQUEST_DURATION_SECONDS, deregistrationDelayFor } from '../core/request-duration';
import type { CapabilityProps } from './capability-props';
import type { ResolvedVariant, RoutingPolicy } from './routing-policy';

/** The longest request of capability `c`, whole seconds (undefined for a token). */
export function maxRequestSecondsOf(c: CapabilityProps): number | undefined {
  if (c.maxRequestDuration === undefined) return DEFAULT_MAX_REQUEST_DURATION_SECONDS;
  const s = c.maxRequestDuration.toSeconds({ integral: false });
  return Token.isUnresolved(s) ? undefined : s;
}

/**
 * The deregistration delay of `c`'s groups: `deregistrationDelay` when set (with a warning when
 * it is shorter than the longest request, which it then cuts), else `maxRequestDuration` + margin.
 */
function deregistrationDelayOf(scope: Construct, c: CapabilityProps, warn: boolean): Duration {
  const maxRequest = maxRequestSecondsOf(c);
  if (c.deregistrationDelay === undefined) return maxRequest === undefined ? c.maxRequestDuration!.plus(Duration.seconds(deregistrationDelayFor(0))) : Duration.seconds(deregistrationDelayFor(maxRequest));
  const delay = c.deregistrationDelay.toSeconds({ integral: false });
  if (warn && maxRequest !== undefined && !Token.isUnresolved(delay) && delay < maxRequest) {
    Annotations.of(scope).addWarningV2(
      'agent-lb:deregistration-delay-short',
      `Capability "${c.name}": deregistrationDelay ${delay} s is shorter than its maxRequestDuration ${maxRequest} s${c.maxRequestDuration === undefined ? ' (the default)' : ''}: ` +
        'a request still running when a target is deregistered (scale-in, deploy, restart) is cut when the delay ends. Drop deregistrationDelay (it then derives from maxRequestDuration) or lower maxRequestDuration.',
    );
  }
  return c.deregistrationDelay;
}

const ALGORITHM_TYPES: Record<RoutingPolicy['algorithm'], elbv2.TargetGroupLoadBalancingAlgorithmType> = {
  round_robin: elbv2.TargetGroupLoadBalancingAlgorithmType.ROUND_ROBIN,
  least_outstanding_requests: elbv2.TargetGroupLoadBalancingAlgorithmType.LEAST_OUTSTANDING_REQUESTS,
  weighted_random: elbv2.TargetGroupLoadBalancingAlgorithmType.WEIGHTED_RANDOM,
};

/** The target type, protocol and port a capability's groups take. */
export function groupAddressing(c: CapabilityProps): { targetType: 'ip' | 'instance'; protocol: elbv2.ApplicationProtocol; port: number } {
  const protocol = c.protocol ?? elbv2.ApplicationProtocol.HTTP;
  return { targetType: c.targetType ?? 'ip', protocol, port: c.port ?? (protocol === elbv2.ApplicationProtocol.HTTPS ? 443 : 80) };
}

/**
 * A target group of capability `c` (its stable group, or the group of `variant`): no targets at
 * synth (the sync Lambda registers the agents holding live leases), the capability's health
 * check, deregistration delay (derived from `maxRequestDuration`, which also goes into the tag
 * `agent-lb:max-request-seconds` for the sidecar), slow start, algorithm and stickiness as target group attributes
 * (the algorithm always written out, so the attribute says what ALB does), tagged
 * `agent-lb:capability` with the name its agents list, `agent-lb:algorithm` and
 * `agent-lb:stickiness` (what the capability catalog shows; the registry reads them with the
 * capability tag), and a variant's group also with the capability it belongs to and its
 * configured weight. Named by CloudFormation (names are limited
 * to 32 characters, capability names are not), so a change of type, port or protocol can
 * replace it.
 */
export function capabilityTargetGroup(
  scope: Construct,
  id: string,
  vpc: ec2.IVpc,
  c: CapabilityProps,
  policy: RoutingPolicy,
  variant?: ResolvedVariant,
): elbv2.ApplicationTargetGroup {
  const { targetType, protocol, port } = groupAddressing(c);
  const hc = c.healthCheck ?? {};
  const stickiness = policy.stickiness;
  const group = new elbv2.ApplicationTargetGroup(scope, id, {
    vpc,
    targetType: targetType === 'ip' ? elbv2.TargetType.IP : elbv2.TargetType.INSTANCE,
    protocol,
    port,
    deregistrationDelay: deregistrationDelayOf(scope, c, variant === undefined),
    slowStart: policy.slowStart,
    loadBalancingAlgorithmType: ALGORITHM_TYPES[policy.algorithm],
    ...(policy.anomalyMitigation !== undefined ? { enableAnomalyMitigation: policy.anomalyMitigation } : {}),
    ...(stickiness ? { stickinessCookieDuration: stickiness.duration } : {}),
    ...(stickiness?.type === 'app_cookie' ? { stickinessCookieName: stickiness.cookieName } : {}),
    healthCheck: {
      enabled: true,
      path: hc.path ?? '/',
      port: hc.port !== undefined ? String(hc.port) : 'traffic-port',
      healthyThresholdCount: hc.healthyThresholdCount ?? 2,
      unhealthyThresholdCount: hc.unhealthyThresholdCount ?? 2,
      interval: hc.interval ?? Duration.seconds(10),
      timeout: hc.timeout ?? Duration.seconds(5),
      healthyHttpCodes: hc.healthyHttpCodes ?? '200',
    },
  });
  Tags.of(group).add(CAPABILITY_TAG, variant?.capability ?? c.name);
  const maxRequest = maxRequestSecondsOf(c);
  if (maxRequest !== undefined) Tags.of(group).add(MAX_REQUEST_SECONDS_TAG, String(maxRequest));
  Tags.of(group).add(ALGORITHM_TAG, policy.algorithm);
  Tags.of(group).add(STICKINESS_TAG, stickiness?.type ?? 'off');
  if (variant) {
    Tags.of(group).add(VARIANT_OF_TAG, c.name);
    Tags.of(group).add(VARIANT_WEIGHT_TAG, String(variant.weight));
  }
  return group;
}
