import { CloudFormationClient, CreateStackCommand, DescribeStackResourcesCommand, waitUntilStackCreateComplete } from '@aws-sdk/client-cloudformation';
import {
  CreateTargetGroupCommand,
  DeregisterTargetsCommand,
  DescribeTargetGroupAttributesCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  ModifyTargetGroupAttributesCommand,
  RegisterTargetsCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MotoServer, startMotoServer } from '../../lib/local/emulators';
import { waitFor } from '../support/local-harness';

/**
 * The moto launcher's model of ELB's target timing and states (lib/local/python/moto_launcher.py),
 * which the integration tier, local mode and the chaos run rely on. Each behaviour is the one the
 * ELB documentation states (see /work/shared/ELB-FACTS.md).
 */
let moto: MotoServer;
let elb: ElasticLoadBalancingV2Client;
let vpcId: string;
let groupCount = 0;

beforeAll(async () => {
  moto = await startMotoServer();
  elb = new ElasticLoadBalancingV2Client(moto.clientConfig);
  const cfn = new CloudFormationClient(moto.clientConfig);
  await cfn.send(new CreateStackCommand({ StackName: 'vpc', TemplateBody: JSON.stringify({ Resources: { Vpc: { Type: 'AWS::EC2::VPC', Properties: { CidrBlock: '10.0.0.0/16' } } } }) }));
  await waitUntilStackCreateComplete({ client: cfn, maxWaitTime: 60, minDelay: 1 }, { StackName: 'vpc' });
  const { StackResources = [] } = await cfn.send(new DescribeStackResourcesCommand({ StackName: 'vpc' }));
  vpcId = StackResources[0].PhysicalResourceId!;
  cfn.destroy();
}, 60_000);

afterAll(async () => {
  elb?.destroy();
  await moto?.stop();
});

async function group(delaySeconds?: number): Promise<string> {
  const out = await elb.send(new CreateTargetGroupCommand({ Name: `g${groupCount++}`, Protocol: 'HTTP', Port: 8080, VpcId: vpcId, TargetType: 'ip' }));
  const arn = out.TargetGroups![0].TargetGroupArn!;
  if (delaySeconds !== undefined) {
    await elb.send(new ModifyTargetGroupAttributesCommand({ TargetGroupArn: arn, Attributes: [{ Key: 'deregistration_delay.timeout_seconds', Value: String(delaySeconds) }] }));
  }
  return arn;
}

/** `<id>:<port>` → [state, reason] as DescribeTargetHealth reports it (without or with `Targets`). */
async function health(arn: string, targets?: { Id: string; Port: number }[]): Promise<Record<string, [string, string | undefined]>> {
  const out = await elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: arn, ...(targets ? { Targets: targets } : {}) }));
  return Object.fromEntries((out.TargetHealthDescriptions ?? []).map((d) => [`${d.Target!.Id}:${d.Target!.Port}`, [d.TargetHealth!.State!, d.TargetHealth!.Reason]]));
}

const t = (n: number, port = 8080) => ({ Id: `10.0.0.${n}`, Port: port });

describe('moto launcher: ELB target model', () => {
  it('keys targets by id and port', async () => {
    const arn = await group();
    await elb.send(new RegisterTargetsCommand({ TargetGroupArn: arn, Targets: [t(1, 8001), t(1, 8002)] }));
    expect(Object.keys(await health(arn)).sort()).toEqual(['10.0.0.1:8001', '10.0.0.1:8002']);
  });

  it('DeregisterTargets drains the target for the deregistration delay, then it is gone', async () => {
    // Prepare
    const arn = await group(2);
    await elb.send(new RegisterTargetsCommand({ TargetGroupArn: arn, Targets: [t(1), t(2)] }));

    // Act
    const at = Date.now();
    await elb.send(new DeregisterTargetsCommand({ TargetGroupArn: arn, Targets: [t(1)] }));

    // Assess: draining, with ELB's reason, listed until the delay ends
    expect(await health(arn)).toEqual({ '10.0.0.1:8080': ['draining', 'Target.DeregistrationInProgress'], '10.0.0.2:8080': ['healthy', undefined] });
    await waitFor(async () => !('10.0.0.1:8080' in (await health(arn))), 10_000, 'the drained target to be gone');
    expect(Date.now() - at).toBeGreaterThanOrEqual(1_900);
    expect(await health(arn, [t(1)])).toEqual({ '10.0.0.1:8080': ['unused', 'Target.NotRegistered'] });
  });

  it('RegisterTargets on a draining target registers it again at once', async () => {
    const arn = await group(300);
    await elb.send(new RegisterTargetsCommand({ TargetGroupArn: arn, Targets: [t(1)] }));
    await elb.send(new DeregisterTargetsCommand({ TargetGroupArn: arn, Targets: [t(1)] }));
    expect((await health(arn))['10.0.0.1:8080'][0]).toBe('draining');

    await elb.send(new RegisterTargetsCommand({ TargetGroupArn: arn, Targets: [t(1)] }));

    expect(await health(arn)).toEqual({ '10.0.0.1:8080': ['healthy', undefined] });
  });

  it('a delay of 0 removes at once; DeregisterTargets of a target not registered answers 200 and changes nothing', async () => {
    const arn = await group(0);
    await elb.send(new RegisterTargetsCommand({ TargetGroupArn: arn, Targets: [t(1), t(2)] }));
    await elb.send(new DeregisterTargetsCommand({ TargetGroupArn: arn, Targets: [t(9), t(1)] }));
    expect(await health(arn)).toEqual({ '10.0.0.2:8080': ['healthy', undefined] });
  });

  it('asked by name, an unregistered target reads unused / Target.NotRegistered', async () => {
    const arn = await group();
    await elb.send(new RegisterTargetsCommand({ TargetGroupArn: arn, Targets: [t(1)] }));
    expect(await health(arn, [t(1), t(2)])).toEqual({ '10.0.0.1:8080': ['healthy', undefined], '10.0.0.2:8080': ['unused', 'Target.NotRegistered'] });
  });

  it('answers DescribeTargetHealth with every field ELB sends, for an empty group and for 300 targets in one read', async () => {
    const arn = await group(60);
    expect(await health(arn)).toEqual({});
    const many = Array.from({ length: 300 }, (_, i) => ({ Id: `10.0.${Math.floor(i / 250) + 1}.${(i % 250) + 1}`, Port: 9000 + (i % 3) }));
    await elb.send(new RegisterTargetsCommand({ TargetGroupArn: arn, Targets: many }));
    await elb.send(new DeregisterTargetsCommand({ TargetGroupArn: arn, Targets: [many[0]] }));
    const out = await elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: arn }));
    expect(out.TargetHealthDescriptions).toHaveLength(300);
    const first = out.TargetHealthDescriptions!.find((d) => d.Target?.Id === many[0].Id);
    expect(first).toEqual({
      Target: { Id: many[0].Id, Port: many[0].Port },
      HealthCheckPort: 'traffic-port',
      TargetHealth: { State: 'draining', Reason: 'Target.DeregistrationInProgress', Description: 'Target deregistration is in progress' },
    });
    expect(out.TargetHealthDescriptions!.find((d) => d.Target?.Id === many[299].Id)).toEqual({ Target: many[299], HealthCheckPort: 'traffic-port', TargetHealth: { State: 'healthy' } });
  });

  it('refuses a public IP target with ValidationError and registers nothing of that call', async () => {
    const arn = await group();
    await expect(elb.send(new RegisterTargetsCommand({ TargetGroupArn: arn, Targets: [t(1), { Id: '203.0.113.5', Port: 8080 }] }))).rejects.toMatchObject({
      name: 'ValidationError',
    });
    expect(await health(arn)).toEqual({});
  });

  it('takes health states from a reporter; a group with a reporter starts new targets in initial', async () => {
    // Prepare
    const arn = await group(300);
    await elb.send(new RegisterTargetsCommand({ TargetGroupArn: arn, Targets: [t(1), t(2)] }));

    // Act
    const answer = await moto.reportTargetHealth(arn, [
      { id: '10.0.0.1', port: 8080, state: 'unhealthy' },
      { id: '10.0.0.2', port: 8080, state: 'healthy' },
      { id: '10.0.0.3', port: 8080, state: 'healthy' },
    ]);
    await elb.send(new RegisterTargetsCommand({ TargetGroupArn: arn, Targets: [t(4)] }));

    // Assess
    expect(answer).toEqual({ applied: ['10.0.0.1:8080', '10.0.0.2:8080'], ignored: ['10.0.0.3:8080'] });
    expect(await health(arn)).toEqual({
      '10.0.0.1:8080': ['unhealthy', 'Target.FailedHealthChecks'],
      '10.0.0.2:8080': ['healthy', undefined],
      '10.0.0.4:8080': ['initial', 'Elb.RegistrationInProgress'],
    });
    await expect(moto.reportTargetHealth(arn, [{ id: '10.0.0.1', port: 8080, state: 'sleepy' as 'healthy' }])).rejects.toThrow(/400/);
  });

  it('applies a CloudFormation target group\'s TargetGroupAttributes and Tags', async () => {
    const cfn = new CloudFormationClient(moto.clientConfig);
    const template = {
      Resources: {
        Vpc: { Type: 'AWS::EC2::VPC', Properties: { CidrBlock: '10.1.0.0/16' } },
        Group: {
          Type: 'AWS::ElasticLoadBalancingV2::TargetGroup',
          Properties: {
            TargetType: 'ip',
            Protocol: 'HTTP',
            Port: 8080,
            VpcId: { Ref: 'Vpc' },
            TargetGroupAttributes: [{ Key: 'deregistration_delay.timeout_seconds', Value: '7' }],
            Tags: [{ Key: 'agent-lb:capability', Value: 'vision' }],
          },
        },
      },
    };
    await cfn.send(new CreateStackCommand({ StackName: 'elb-model', TemplateBody: JSON.stringify(template) }));
    await waitUntilStackCreateComplete({ client: cfn, maxWaitTime: 60, minDelay: 1 }, { StackName: 'elb-model' });
    const { StackResources = [] } = await cfn.send(new DescribeStackResourcesCommand({ StackName: 'elb-model' }));
    const arn = StackResources.find((r) => r.LogicalResourceId === 'Group')!.PhysicalResourceId!;
    cfn.destroy();

    const { Attributes = [] } = await elb.send(new DescribeTargetGroupAttributesCommand({ TargetGroupArn: arn }));
    expect(Attributes.find((a) => a.Key === 'deregistration_delay.timeout_seconds')?.Value).toBe('7');
  });
});
