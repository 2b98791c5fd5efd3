import { Annotations, CfnOutput, Stack } from 'aws-cdk-lib';
import type * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { AgentLbValidationError } from './validation-error';

/**
 * The stack outputs naming each capability's target group ARN, on every load balancer: outputs of
 * the top stack, so `cdk deploy --outputs-file` writes them whichever nested stack holds the group
 * (CloudFormation passes a nested group's ARN up through an output of the nested stack).
 */

/** Outputs CloudFormation allows in one template ("Outputs", CloudFormation quotas). */
export const MAX_STACK_OUTPUTS = 200;

/** Output id of a capability's target group ARN: `TargetGroupArn` + the name in PascalCase (`speech-to-text` → `TargetGroupArnSpeechToText`). */
export function targetGroupOutputId(capability: string): string {
  return 'TargetGroupArn' + capability.split(/[-_]/).map((part) => part.charAt(0).toUpperCase() + part.slice(1)).join('');
}

/** Output id of the list of one load balancer's groups, when one output per group does not fit: `TargetGroupArns`, `TargetGroupArns2`, … */
export function targetGroupListOutputId(loadBalancerIndex: number): string {
  return `TargetGroupArns${loadBalancerIndex === 0 ? '' : String(loadBalancerIndex + 1)}`;
}

/**
 * Adds to `stack` one output per target group (`TargetGroupArn<Name>`, capabilities' and variants'
 * groups, every load balancer) when they fit within {@link MAX_STACK_OUTPUTS} beside the stack's
 * other outputs (call it last). When they do not (a stack with some 190 capabilities), each load
 * balancer gets one output instead, `TargetGroupArns<N>` = `name=arn,name=arn,…`, and synth warns.
 * @returns whether the groups got one output each
 */
export function addTargetGroupOutputs(stack: Stack, perLoadBalancer: readonly Readonly<Record<string, elbv2.IApplicationTargetGroup>>[]): boolean {
  const others = stack.node.findAll().filter((c) => c instanceof CfnOutput && Stack.of(c) === stack).length;
  const groups = perLoadBalancer.flatMap((byName) => Object.entries(byName));
  if (others + groups.length <= MAX_STACK_OUTPUTS) {
    const outputIds = new Map<string, string>();
    for (const [name, group] of groups) {
      const outputId = targetGroupOutputId(name);
      const other = outputIds.get(outputId);
      if (other !== undefined) throw new AgentLbValidationError(stack, `Capabilities "${other}" and "${name}" both map to output id "${outputId}"; rename one of them`);
      outputIds.set(outputId, name);
      new CfnOutput(stack, outputId, { description: `Target group of capability "${name}"`, value: group.targetGroupArn });
    }
    return true;
  }
  Annotations.of(stack).addWarningV2(
    'agent-lb:target-group-outputs-listed',
    `${groups.length} target groups and ${others} other outputs exceed CloudFormation's ${MAX_STACK_OUTPUTS} outputs per stack: ` +
      `each load balancer's groups are listed in one output instead (${targetGroupListOutputId(0)}, ${targetGroupListOutputId(1)}, …: name=arn,name=arn,…)`,
  );
  perLoadBalancer.forEach((byName, i) => {
    const entries = Object.entries(byName);
    if (entries.length === 0) return;
    new CfnOutput(stack, targetGroupListOutputId(i), {
      description: `Target groups of load balancer ${i + 1}, name=arn separated by commas`,
      value: entries.map(([name, group]) => `${name}=${group.targetGroupArn}`).join(','),
    });
  });
  return false;
}
