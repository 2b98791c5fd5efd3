import { Annotations, Aspects, IAspect, Stack, Token } from 'aws-cdk-lib';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import type { IConstruct } from 'constructs';
import { DEFAULT_IDLE_TIMEOUT_SECONDS, idleTimeoutFor } from '../core/request-duration';

/** ALB's load balancer attribute: a connection silent this long is closed (a response not started yet gets a 504). */
export const IDLE_TIMEOUT_ATTRIBUTE = 'idle_timeout.timeout_seconds';

/**
 * The idle timeout of a load balancer defined in this app, whole seconds, as its attributes say
 * at synth (ALB's 60 s when none is set); undefined when it cannot be known (an imported load
 * balancer, a token).
 */
export function knownIdleTimeoutSeconds(loadBalancer: elbv2.IApplicationLoadBalancer | undefined): number | undefined {
  if (!(loadBalancer instanceof elbv2.ApplicationLoadBalancer)) return undefined;
  const cfn = loadBalancer.node.defaultChild as elbv2.CfnLoadBalancer;
  const attributes = Stack.of(loadBalancer).resolve(cfn.loadBalancerAttributes) as { key?: string; value?: unknown }[] | undefined;
  const value = (attributes ?? []).find((a) => a.key === IDLE_TIMEOUT_ATTRIBUTE)?.value;
  if (value === undefined) return DEFAULT_IDLE_TIMEOUT_SECONDS;
  const seconds = Number(value);
  return Token.isUnresolved(value) || !Number.isFinite(seconds) ? undefined : seconds;
}

/**
 * At synth (after every construct of the app has had its say, so an idle timeout set later on
 * the load balancer counts), warns on `scope` when the load balancer's idle timeout is known to
 * be shorter than the longest request of the capabilities: a response silent that long would get
 * a 504, one going silent mid-stream would be cut. agent-lb does not change a load balancer it
 * did not create. When the timeout cannot be known (an imported listener), it says which
 * attribute to check.
 */
export function warnOnShortIdleTimeout(scope: IConstruct, loadBalancer: elbv2.IApplicationLoadBalancer | undefined, maxRequestSeconds: readonly number[]): void {
  const needed = idleTimeoutFor(maxRequestSeconds);
  const longest = Math.max(...maxRequestSeconds);
  const check: IAspect = {
    visit(node: IConstruct): void {
      if (node !== scope) return;
      const known = knownIdleTimeoutSeconds(loadBalancer);
      if (known === undefined) {
        Annotations.of(scope).addInfo(
          `agent-lb cannot read the idle timeout of this listener's load balancer: make sure its ${IDLE_TIMEOUT_ATTRIBUTE} is at least ${needed} s ` +
            `(the longest maxRequestDuration, ${longest} s, + 10 s), or a response silent that long gets a 504`,
        );
      } else if (known < longest) {
        Annotations.of(scope).addWarningV2(
          'agent-lb:idle-timeout-short',
          `The load balancer's idle timeout (${IDLE_TIMEOUT_ATTRIBUTE}) is ${known} s, shorter than the longest maxRequestDuration, ${longest} s: ` +
            `a response silent longer than ${known} s gets a 504 and one silent that long mid-stream is cut. ` +
            `Set it to ${needed} s (e.g. idleTimeout: Duration.seconds(${needed}) on the ApplicationLoadBalancer; at most 4000), or lower maxRequestDuration.`,
        );
      }
    },
  };
  Aspects.of(scope).add(check);
}
