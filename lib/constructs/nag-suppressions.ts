import * as cdk from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import type { CapabilityCatalog } from './capability-catalog';
import type { RegistrySync } from './registry-sync';

/** What the stack knows about its own configuration that decides which findings are accepted. */
export interface NagAcknowledgementOptions {
  /** The load balancer writes access logs. */
  readonly accessLogs: boolean;
  /** Some ingress CIDR is a token (the new VPC's CIDR), which cdk-nag cannot evaluate. */
  readonly tokenIngress: boolean;
}

/**
 * CDK's native `Validations.of(...).acknowledge`, which cdk-nag 3 reads. It arrived in a later
 * aws-cdk-lib than the oldest one agent-lb supports; there the acknowledgements are skipped
 * (with nothing reading them, there is nothing to acknowledge to).
 */
function acknowledge(scope: IConstruct, id: string, reason: string): void {
  const validations = (cdk as { Validations?: { of(scope: IConstruct): { acknowledge(...rules: { id: string; reason: string }[]): void } } }).Validations;
  validations?.of(scope).acknowledge({ id, reason });
}

/**
 * Every cdk-nag (AwsSolutions) finding agent-lb accepts on the sync and reconcile Lambdas, each
 * with its reason, scoped to the narrowest construct and finding id that carries the finding.
 * {@link AgentLb} applies them wherever it is used.
 */
export function acknowledgeRegistryFindings(sync: RegistrySync, catalog?: CapabilityCatalog): void {
  if (catalog) {
    acknowledge(catalog.function, 'AwsSolutions-L1', 'Pinned to nodejs22.x, the runtime the handlers are built (esbuild target node22) and tested for; move deliberately, not on every new runtime.');
  }
  acknowledge(
    sync.syncFunction.role!,
    'AwsSolutions-IAM5[Resource::*]',
    'dynamodb:ListStreams and the ELB Describe actions (target groups and tags at cold start; with the catalog, DescribeLoadBalancers for the DNS names it shows) have no resource-level permissions; the stream actions are limited to the lease table stream ARN, Register/DeregisterTargets to this stack\'s target groups.',
  );
  acknowledge(
    sync.reconcileFunction.role!,
    'AwsSolutions-IAM5[Resource::*]',
    'elasticloadbalancing:DescribeTargetHealth (and, with variants, DescribeListeners/DescribeRules; with the catalog, DescribeLoadBalancers) support no resource-level permissions; Register/DeregisterTargets are limited to this stack\'s target groups, ModifyRule to its weighted rules.',
  );
  if (sync.catalogStreamFunction) {
    acknowledge(
      sync.catalogStreamFunction.role!,
      'AwsSolutions-IAM5[Resource::*]',
      'The catalog stream role needs dynamodb:ListStreams and read-only ELB Describe actions (DescribeLoadBalancers for the DNS names the catalog shows), which take no resource; its GetRecords and GetShardIterator name the lease table stream alone, and it writes only the registry table.',
    );
  }
  for (const fn of [sync.syncFunction, sync.reconcileFunction, ...(sync.catalogStreamFunction ? [sync.catalogStreamFunction] : [])]) {
    acknowledge(fn, 'AwsSolutions-L1', 'Pinned to nodejs22.x, the runtime the handlers are built (esbuild target node22) and tested for; move deliberately, not on every new runtime.');
  }
  acknowledge(
    sync.failureQueue,
    'AwsSolutions-SQS3',
    'This queue is itself the terminal on-failure destination of the stream event source mapping; a queue behind it would only move the problem.',
  );
}

/** The parts of a stack of its own (`AgentLbStack`) whose findings agent-lb accepts; a stack's child `Vpc`, if any, too. */
export interface NagAcknowledgementSubjects extends IConstruct {
  readonly loadBalancer: IConstruct;
  readonly loadBalancerSecurityGroup: IConstruct;
  /** Every load balancer of the stack (the first is `loadBalancer`). @default [loadBalancer] */
  readonly loadBalancers?: readonly IConstruct[];
  /** Their security groups. @default [loadBalancerSecurityGroup] */
  readonly loadBalancerSecurityGroups?: readonly IConstruct[];
}

/** The findings `AgentLbStack` accepts on the VPC and load balancer it creates, on top of {@link acknowledgeRegistryFindings}. */
export function acknowledgeNagFindings(stack: NagAcknowledgementSubjects, options: NagAcknowledgementOptions): void {
  const vpc = stack.node.tryFindChild('Vpc');
  if (vpc) {
    acknowledge(
      vpc,
      'AwsSolutions-VPC7',
      'Flow logs cost per GB and the VPC carries only load-balancer-to-agent traffic; enable them on the VPC when your account policy requires it.',
    );
  }
  for (const loadBalancer of options.accessLogs ? [] : (stack.loadBalancers ?? [stack.loadBalancer])) {
    acknowledge(
      loadBalancer,
      'AwsSolutions-ELB2',
      'Access logs need a bucket with a region-specific delivery policy; they are enabled when the accessLogsBucket option is set.',
    );
  }
  for (const group of options.tokenIngress ? (stack.loadBalancerSecurityGroups ?? [stack.loadBalancerSecurityGroup]) : []) {
    acknowledge(
      group,
      'AwsSolutions-EC23',
      'Ingress is limited to the VPC CIDR (an intrinsic cdk-nag cannot evaluate) and the configured CIDRs; it is never 0.0.0.0/0 unless configured so.',
    );
  }
}
