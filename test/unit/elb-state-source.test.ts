import {
  DescribeLoadBalancerAttributesCommand,
  DescribeRulesCommand,
  DescribeTargetGroupAttributesCommand,
  DescribeTargetGroupsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { ElbStateSource } from '../../lib/local/elb-state-source';

const elb = mockClient(ElasticLoadBalancingV2Client);
const healthy = (port: number) => ({ Target: { Id: '127.0.0.1', Port: port }, TargetHealth: { State: 'healthy' as const } });

beforeEach(() => {
  elb.reset();
  elb.on(DescribeRulesCommand).resolves({ Rules: [{ RuleArn: 'rule/default', Priority: 'default', IsDefault: true }] });
  elb.on(DescribeTargetGroupsCommand).resolves({ TargetGroups: [{ TargetGroupArn: 'tg/vision' }, { TargetGroupArn: 'tg/search' }] });
  elb.on(DescribeLoadBalancerAttributesCommand).resolves({ Attributes: [] });
  elb.on(DescribeTargetGroupAttributesCommand).resolves({ Attributes: [] });
  elb.on(DescribeTargetHealthCommand).resolves({ TargetHealthDescriptions: [healthy(9001), healthy(9002)] });
});

const ports = (s: Awaited<ReturnType<ElbStateSource['snapshot']>>, arn: string) => s.targetGroups.find((g) => g.targetGroup.TargetGroupArn === arn)!.targets.map((t) => ('Target' in t ? t.Target?.Port : undefined));

describe('ElbStateSource', () => {
  it('reads the configuration once per max age and target health on every snapshot', async () => {
    let now = 0;
    const source = new ElbStateSource({ client: new ElasticLoadBalancingV2Client({}), loadBalancerArn: 'lb', listenerArn: 'listener', configMaxAgeMs: 5000, clock: () => now });
    await source.snapshot();
    now = 4999;
    await source.snapshot();
    expect(source.calls).toEqual({ DescribeRules: 1, DescribeTargetGroups: 1, DescribeLoadBalancerAttributes: 1, DescribeTargetGroupAttributes: 2, DescribeTargetHealth: 4 });
    now = 5000;
    await source.snapshot();
    expect(source.calls.DescribeRules).toBe(2);
  });

  it('after a DeregisterTargets, serves the last snapshot without those targets at once, notifies, then reads moto again', async () => {
    const source = new ElbStateSource({ client: new ElasticLoadBalancingV2Client({}), loadBalancerArn: 'lb', listenerArn: 'listener' });
    let notified = 0;
    source.subscribe(() => notified++);
    await source.snapshot();
    const calls = source.calls.DescribeTargetHealth;

    source.deregistered('tg/vision', [{ Id: '127.0.0.1', Port: 9001 }]);
    expect(notified).toBe(1);
    const patched = await source.snapshot();
    expect(source.calls.DescribeTargetHealth).toBe(calls);
    expect(ports(patched, 'tg/vision')).toEqual([9002]);
    expect(ports(patched, 'tg/search')).toEqual([9001, 9002]);
    // A real read is asked for right after the forecast.
    await Promise.resolve();
    expect(notified).toBe(2);
    await source.snapshot();
    expect(source.calls.DescribeTargetHealth).toBe(calls + 2);
  });
});
