import { DescribeListenersCommand, DescribeTagsCommand, DescribeTargetGroupsCommand, ElasticLoadBalancingV2Client, ListenerNotFoundException, RegisterTargetsCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSyncHandler } from '../../lib/handlers/stream-sync-handler';
import { discoverTargetGroups, variantTagsOf } from '../../lib/aws/target-groups';
import { resolveRuntimeConfig } from '../../lib/handlers/runtime-config-loader';
import { ConfigError } from '../../lib/core/errors';
import { FakeLeaseTable } from '../support/fake-lease-table';
import { captureMetrics, insert, leaseItem, privateIp, silentLogger, streamEvent, T0 } from '../support/lease-fixtures';
import { CONFIG_ENV } from '../../lib/core/runtime-config';

const LB = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/agents/1';
const tg = (n: number) => `arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/tg-${n}/${n}`;
const elb = mockClient(ElasticLoadBalancingV2Client);
const client = new ElasticLoadBalancingV2Client({ region: 'eu-west-1' });
const ddb = mockClient(DynamoDBClient);
const dynamoClient = new DynamoDBClient({ region: 'eu-west-1' });

/** `count` target groups on the load balancer, group n tagged capability `cap-n`, in pages of `pageSize`. */
function fleetOfGroups(count: number, pageSize = 400, tag: (n: number) => string | undefined = (n) => `cap-${n}`) {
  const all = Array.from({ length: count }, (_, n) => ({ TargetGroupArn: tg(n), TargetType: n % 10 === 9 ? 'instance' : 'ip' }));
  elb.on(DescribeTargetGroupsCommand).callsFake((input: { Marker?: string }) => {
    const start = Number(input.Marker ?? 0);
    const next = start + pageSize;
    return { TargetGroups: all.slice(start, next), ...(next < count ? { NextMarker: String(next) } : {}) };
  });
  elb.on(DescribeTagsCommand).callsFake((input: { ResourceArns: string[] }) => ({
    TagDescriptions: input.ResourceArns.map((arn) => {
      const n = Number(arn.split('/').pop());
      const value = tag(n);
      return { ResourceArn: arn, Tags: [{ Key: 'other', Value: 'x' }, ...(value ? [{ Key: 'agent-lb:capability', Value: value }] : [])] };
    }),
  }));
}

beforeEach(() => elb.reset());

describe('discoverTargetGroups', () => {
  it('finds 100 capabilities over pages, with 20 ARNs per DescribeTags call, and keeps each group target type', async () => {
    fleetOfGroups(100, 30);
    const names = Array.from({ length: 100 }, (_, n) => `cap-${n}`);
    const found = await discoverTargetGroups(client, LB, names);
    expect(Object.keys(found)).toHaveLength(100);
    expect(found['cap-7']).toEqual({ targetGroupArn: tg(7), targetType: 'ip' });
    expect(found['cap-9']).toEqual({ targetGroupArn: tg(9), targetType: 'instance' });
    expect(elb.commandCalls(DescribeTargetGroupsCommand)).toHaveLength(4);
    expect(elb.commandCalls(DescribeTargetGroupsCommand)[0].args[0].input).toMatchObject({ LoadBalancerArn: LB });
    const tagCalls = elb.commandCalls(DescribeTagsCommand);
    expect(tagCalls).toHaveLength(5);
    expect(Math.max(...tagCalls.map((c) => c.args[0].input.ResourceArns!.length))).toBe(20);
  });

  it('ignores groups of capabilities it was not asked for (one being removed by an update)', async () => {
    fleetOfGroups(3);
    expect(Object.keys(await discoverTargetGroups(client, LB, ['cap-0', 'cap-2']))).toEqual(['cap-0', 'cap-2']);
  });

  it('names the capabilities it cannot find', async () => {
    fleetOfGroups(2, 400, (n) => (n === 0 ? 'cap-0' : undefined));
    const attempt = discoverTargetGroups(client, LB, ['cap-0', 'cap-1', 'cap-5']);
    await expect(attempt).rejects.toThrow(ConfigError);
    await expect(discoverTargetGroups(client, LB, ['cap-0', 'cap-1', 'cap-5'])).rejects.toThrow(
      `load balancer ${LB} routes to no target group tagged agent-lb:capability = "cap-1", "cap-5" (2 target groups seen)`,
    );
  });

  it('refuses two groups tagged with one capability', async () => {
    fleetOfGroups(2, 400, () => 'vision');
    await expect(discoverTargetGroups(client, LB, ['vision'])).rejects.toThrow(`routes to two target groups tagged agent-lb:capability=vision: ${tg(0)} and ${tg(1)}`);
  });
});

describe('resolveRuntimeConfig', () => {
  it('fills in discovered groups for a compact configuration', async () => {
    fleetOfGroups(2);
    const config = await resolveRuntimeConfig(JSON.stringify({ tableName: 't', loadBalancerArn: LB, capabilities: ['cap-1'] }), client);
    expect(config.routing.capabilities).toEqual({ 'cap-1': { targetGroupArn: tg(1), targetType: 'ip' } });
  });

  it('finds the load balancer of a listener (an imported listener: the stack knows only its ARN), then the groups on it', async () => {
    const listener = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/agents/1/2';
    elb.on(DescribeListenersCommand, { ListenerArns: [listener] }).resolves({ Listeners: [{ ListenerArn: listener, LoadBalancerArn: LB }] });
    fleetOfGroups(2);
    const config = await resolveRuntimeConfig(JSON.stringify({ tableName: 't', listenerArn: listener, capabilities: ['cap-0'] }), client);
    expect(config.routing.capabilities).toEqual({ 'cap-0': { targetGroupArn: tg(0), targetType: 'ip' } });
    expect(elb.commandCalls(DescribeListenersCommand)).toHaveLength(1);
    expect(elb.commandCalls(DescribeTargetGroupsCommand)[0].args[0].input).toMatchObject({ LoadBalancerArn: LB });
  });

  it('names a listener that does not exist', async () => {
    const listener = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/gone/1/2';
    elb.on(DescribeListenersCommand).rejects(new ListenerNotFoundException({ message: 'One or more listeners not found', $metadata: {} }));
    await expect(resolveRuntimeConfig(JSON.stringify({ tableName: 't', listenerArn: listener, capabilities: ['cap-0'] }), client)).rejects.toThrow(
      new ConfigError(`listener ${listener} does not exist`),
    );
  });

  it('finds each capability on one of several load balancers (moreLoadBalancerArns), and names one found on none', async () => {
    const LB2 = `${LB}2`;
    // Groups 0-1 on the first load balancer, 2-3 on the second.
    elb.on(DescribeTargetGroupsCommand, { LoadBalancerArn: LB }).resolves({ TargetGroups: [0, 1].map((n) => ({ TargetGroupArn: tg(n), TargetType: 'ip' })) });
    elb.on(DescribeTargetGroupsCommand, { LoadBalancerArn: LB2 }).resolves({ TargetGroups: [2, 3].map((n) => ({ TargetGroupArn: tg(n), TargetType: 'ip' })) });
    elb.on(DescribeTagsCommand).callsFake((input: { ResourceArns: string[] }) => ({
      TagDescriptions: input.ResourceArns.map((arn) => ({ ResourceArn: arn, Tags: [{ Key: 'agent-lb:capability', Value: `cap-${arn.split('/').pop()}` }] })),
    }));
    const text = (names: string[]) => JSON.stringify({ tableName: 't', loadBalancerArn: LB, moreLoadBalancerArns: [LB2], capabilities: names });
    const config = await resolveRuntimeConfig(text(['cap-0', 'cap-3']), client);
    expect(config.routing.capabilities).toEqual({ 'cap-0': { targetGroupArn: tg(0), targetType: 'ip' }, 'cap-3': { targetGroupArn: tg(3), targetType: 'ip' } });
    await expect(resolveRuntimeConfig(text(['cap-0', 'cap-9']), client)).rejects.toThrow(`${CONFIG_ENV}: no target group found for "cap-9"`);
  });

  it('makes no call for an explicit configuration that declares its ports', async () => {
    const config = await resolveRuntimeConfig(JSON.stringify({ tableName: 't', capabilities: { v: { targetGroupArn: 'arn:tg', targetType: 'ip', ports: '8080' } } }), client);
    expect(config.routing.capabilities.v).toEqual({ targetGroupArn: 'arn:tg', targetType: 'ip', ports: [{ from: 8080, to: 8080 }] });
    expect(elb.calls()).toHaveLength(0);
  });

  it('reads the group\'s own port, once, for an explicit configuration that declares none: its agents may use that port only', async () => {
    elb.on(DescribeTargetGroupsCommand).resolves({ TargetGroups: [{ TargetGroupArn: 'arn:tg', Port: 8081 }] });
    const config = await resolveRuntimeConfig(JSON.stringify({ tableName: 't', capabilities: { v: { targetGroupArn: 'arn:tg', targetType: 'ip' } } }), client);
    expect(config.routing.capabilities.v.ports).toEqual([{ from: 8081, to: 8081 }]);
    expect(elb).toHaveReceivedCommandTimes(DescribeTargetGroupsCommand, 1);
  });
});

describe('the sync handler configured the way the stack configures it (names only)', () => {
  const previous = process.env[CONFIG_ENV];
  afterEach(() => {
    if (previous === undefined) delete process.env[CONFIG_ENV];
    else process.env[CONFIG_ENV] = previous;
  });

  it('finds the target groups once, registers into them, and tries again after a failed discovery', async () => {
    process.env[CONFIG_ENV] = JSON.stringify({ tableName: 't', loadBalancerArn: LB, capabilities: ['cap-1'] });
    const lease = leaseItem({ address: privateIp(7), capabilities: ['cap-1'] });
    new FakeLeaseTable('t').put(lease).install(ddb);
    const handler = createSyncHandler({ elbClient: client, dynamoClient, logger: silentLogger(), metrics: captureMetrics().metrics, now: () => T0 * 1000 });
    elb.on(DescribeTargetGroupsCommand).rejectsOnce(Object.assign(new Error('Rate exceeded'), { name: 'Throttling' }));
    const event = streamEvent([insert(lease)]);
    await expect(handler(event)).rejects.toThrow('Rate exceeded');
    expect(elb.commandCalls(RegisterTargetsCommand)).toHaveLength(0);

    fleetOfGroups(3);
    elb.on(RegisterTargetsCommand).resolves({});
    expect(await handler(event)).toEqual({ batchItemFailures: [] });
    expect(await handler(event)).toEqual({ batchItemFailures: [] }); // delivered again: already applied, not sent again
    expect(elb.commandCalls(RegisterTargetsCommand).map((c) => c.args[0].input.TargetGroupArn)).toEqual([tg(1)]);
    expect(elb.commandCalls(DescribeTargetGroupsCommand)).toHaveLength(2); // the failed try, then once for good
  });
});

describe('variantTagsOf', () => {
  it('reads the variant-of and weight tags of weighted variants\' groups, 20 groups per DescribeTags, and skips the others', async () => {
    elb.reset();
    elb.on(DescribeTagsCommand).callsFake((input: { ResourceArns: string[] }) => ({
      TagDescriptions: input.ResourceArns.map((arn) => {
        const n = Number(arn.split('/').pop());
        const tags = [{ Key: 'agent-lb:capability', Value: n % 2 ? `cap-0-v${n}` : `cap-${n}` }];
        if (n % 2) tags.push({ Key: 'agent-lb:variant-of', Value: 'cap-0' }, { Key: 'agent-lb:variant-weight', Value: String(n) });
        return { ResourceArn: arn, Tags: tags };
      }),
    }));
    const found = await variantTagsOf(client, Array.from({ length: 25 }, (_, n) => tg(n)));
    expect(elb.commandCalls(DescribeTagsCommand).map((c) => c.args[0].input.ResourceArns?.length)).toEqual([20, 5]);
    expect(Object.keys(found)).toHaveLength(12);
    expect(found[tg(3)]).toEqual({ variantOf: 'cap-0', weight: 3 });
    expect(found[tg(2)]).toBeUndefined();
  });
});
