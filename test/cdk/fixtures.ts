import { expect } from 'vitest';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { CapabilityProps, CapabilityRouter, CapabilityRouterProps } from '../../lib/constructs';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** The context `cdk synth` uses: cdk.json's. */
export function cdkJsonContext(): Record<string, unknown> {
  return JSON.parse(readFileSync(path.join(REPO_ROOT, 'cdk.json'), 'utf8')).context;
}

/**
 * An app that skips Lambda bundling (CDK's `aws:cdk:bundling-stacks` = none), for tests that
 * only read the template. The compliance test bundles for real.
 */
export function appWithoutBundling(context: Record<string, unknown> = {}): App {
  return new App({ context: { 'aws:cdk:bundling-stacks': [], ...context } });
}

/** A stack with a VPC and an ALB listener, the surroundings a CapabilityRouter needs. */
export function listenerStack(): { stack: Stack; vpc: ec2.Vpc; listener: elbv2.ApplicationListener } {
  const stack = new Stack(new App(), 'RouterTest');
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 0 });
  const alb = new elbv2.ApplicationLoadBalancer(stack, 'Alb', { vpc });
  const listener = alb.addListener('Http', { port: 80, open: false });
  return { stack, vpc, listener };
}

/** A router in a fresh stack, answering unknown capabilities on the listener (it has no other default action). */
export function newRouter(
  capabilities: readonly CapabilityProps[],
  props: Partial<Omit<CapabilityRouterProps, 'vpc' | 'listener' | 'capabilities'>> = {},
): { stack: Stack; router: CapabilityRouter } {
  const { stack, vpc, listener } = listenerStack();
  const router = new CapabilityRouter(stack, 'Router', { vpc, listener, capabilities, unknownCapabilityResponse: true, ...props });
  return { stack, router };
}

/** Priority of each listener rule of a template, by capability and kind of rule. */
export function rulePriorities(template: Template): Record<string, { header?: number; path?: number }> {
  const out: Record<string, { header?: number; path?: number }> = {};
  for (const rule of Object.values(template.findResources('AWS::ElasticLoadBalancingV2::ListenerRule'))) {
    const props = rule.Properties as { Priority: number; Conditions: { Field: string; HttpHeaderConfig?: { Values: string[] }; PathPatternConfig?: { Values: string[] } }[] };
    const condition = props.Conditions[0];
    if (condition.Field === 'http-header') {
      const name = condition.HttpHeaderConfig!.Values[0];
      out[name] = { ...out[name], header: props.Priority };
    } else {
      const name = condition.PathPatternConfig!.Values[0].split('/').pop()!;
      out[name] = { ...out[name], path: props.Priority };
    }
  }
  return out;
}

/** Replaces every intrinsic in a Fn::Join with `<LogicalId>` (or `lookup` when given), giving the string the deployed stack would hold. */
export function renderJoin(value: unknown, lookup: (intrinsic: Record<string, unknown>) => string | undefined = () => undefined): string {
  if (typeof value === 'string') return value;
  const obj = value as Record<string, unknown>;
  if (obj['Fn::Join']) {
    const [sep, parts] = obj['Fn::Join'] as [string, unknown[]];
    return parts.map((p) => renderJoin(p, lookup)).join(sep);
  }
  const known = lookup(obj);
  if (known !== undefined) return known;
  if (obj.Ref) return `<${obj.Ref as string}>`;
  if (obj['Fn::GetAtt']) return `<${(obj['Fn::GetAtt'] as string[]).join('.')}>`;
  throw new Error(`cannot render ${JSON.stringify(value)}`);
}

/** What a construct throws for bad props: an AgentLbValidationError with exactly `message`. */
export function validationError(message: string) {
  return expect.objectContaining({ name: 'AgentLbValidationError', message, constructPath: expect.any(String) });
}
