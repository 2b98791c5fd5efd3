import { Validations } from 'aws-cdk-lib';
import type { AgentLbStack } from './agent-lb-stack';

/** What the stack knows about its own configuration that decides which findings are accepted. */
export interface NagAcknowledgementOptions {
  /** The load balancer writes access logs. */
  readonly accessLogs: boolean;
  /** Some ingress CIDR is a token (the new VPC's CIDR), which cdk-nag cannot evaluate. */
  readonly tokenIngress: boolean;
}

/**
 * Every cdk-nag (AwsSolutions) finding agent-lb accepts, each with its reason, in one place.
 * Acknowledgements use CDK's native `Validations.of(...).acknowledge`, which cdk-nag 3 reads;
 * they are scoped to the narrowest construct and finding id that carries the finding.
 */
export function acknowledgeNagFindings(stack: AgentLbStack, options: NagAcknowledgementOptions): void {
  const vpc = stack.node.tryFindChild('Vpc');
  if (vpc) {
    Validations.of(vpc).acknowledge({
      id: 'AwsSolutions-VPC7',
      reason: 'Flow logs cost per GB and the VPC carries only load-balancer-to-agent traffic; enable them on the VPC when your account policy requires it.',
    });
  }
  if (!options.accessLogs) {
    Validations.of(stack.loadBalancer).acknowledge({
      id: 'AwsSolutions-ELB2',
      reason: 'Access logs need a bucket with a region-specific delivery policy; they are enabled when the accessLogsBucket option is set.',
    });
  }
  if (options.tokenIngress) {
    Validations.of(stack.loadBalancerSecurityGroup).acknowledge({
      id: 'AwsSolutions-EC23',
      reason: 'Ingress is limited to the VPC CIDR (an intrinsic cdk-nag cannot evaluate) and the configured CIDRs; it is never 0.0.0.0/0 unless configured so.',
    });
  }

  const sync = stack.registrySync;
  Validations.of(sync.syncFunction.role!).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason: 'dynamodb:ListStreams has no resource-level permissions; the stream actions themselves are limited to the lease table stream ARN.',
  });
  Validations.of(sync.reconcileFunction.role!).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason: 'elasticloadbalancing:DescribeTargetHealth supports no resource-level permissions; Register/DeregisterTargets are limited to this stack\'s target groups.',
  });
  for (const fn of [sync.syncFunction, sync.reconcileFunction]) {
    Validations.of(fn).acknowledge({
      id: 'AwsSolutions-L1',
      reason: 'Pinned to nodejs22.x, the runtime the handlers are built (esbuild target node22) and tested for; move deliberately, not on every new runtime.',
    });
  }
  Validations.of(sync.failureQueue).acknowledge({
    id: 'AwsSolutions-SQS3',
    reason: 'This queue is itself the terminal on-failure destination of the stream event source mapping; a queue behind it would only move the problem.',
  });
}
