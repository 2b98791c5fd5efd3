/**
 * The catalog's hosts as the functions resolve them at cold start: the adapter's
 * DescribeLoadBalancers calls (20 ARNs each, paged), which groups sit on which load balancer for
 * each shape of configuration, and a registry that keeps routing when the lookup is denied.
 */
import {
  DescribeLoadBalancersCommand,
  DescribeTagsCommand,
  DescribeTargetGroupsCommand,
  ElasticLoadBalancingV2Client,
  RegisterTargetsCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadBalancerDnsNames } from '../../lib/aws/load-balancers';
import { RegistryStateError } from '../../lib/core/errors';
import { CONFIG_ENV } from '../../lib/core/runtime-config';
import { resolveRuntimeConfig } from '../../lib/handlers/runtime-config-loader';
import { createSyncHandler } from '../../lib/handlers/stream-sync-handler';
import { FakeLeaseTable } from '../support/fake-lease-table';
import { captureMetrics, insert, leaseItem, privateIp, silentLogger, streamEvent, T0 } from '../support/lease-fixtures';

const lb = (n: number) => `arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/agents${n}/${n}`;
const dnsOf = (n: number) => `internal-agents${n}-${n}.eu-west-1.elb.amazonaws.com`;
const tg = (n: number) => `arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/tg-${n}/${n}`;
const elb = mockClient(ElasticLoadBalancingV2Client);
const client = new ElasticLoadBalancingV2Client({ region: 'eu-west-1' });
const catalog = { tableName: 'state', headerName: 'X-Agent-Capability', pathPrefix: 'agents' };

/** ELB answers DescribeLoadBalancers for load balancers 0–99 (the ARN's last segment). */
function loadBalancersKnown(pageSize = 20) {
  elb.on(DescribeLoadBalancersCommand).callsFake((input: { LoadBalancerArns?: string[]; Marker?: string }) => {
    const start = Number(input.Marker ?? 0);
    const arns = (input.LoadBalancerArns ?? []).slice(start, start + pageSize);
    const next = start + pageSize;
    return {
      LoadBalancers: arns.map((arn) => ({ LoadBalancerArn: arn, DNSName: dnsOf(Number(arn.split('/').pop())) })),
      ...(next < (input.LoadBalancerArns ?? []).length ? { NextMarker: String(next) } : {}),
    };
  });
}

/** Groups `n` of `groups` on load balancer `lb(on)`, each tagged `cap-<n>`. */
function groupsOn(on: number, groups: number[]) {
  elb.on(DescribeTargetGroupsCommand, { LoadBalancerArn: lb(on) }).resolves({ TargetGroups: groups.map((n) => ({ TargetGroupArn: tg(n), TargetType: 'ip', Port: 8080 })) });
}

function taggedByNumber() {
  elb.on(DescribeTagsCommand).callsFake((input: { ResourceArns: string[] }) => ({
    TagDescriptions: input.ResourceArns.map((arn) => ({ ResourceArn: arn, Tags: [{ Key: 'agent-lb:capability', Value: `cap-${arn.split('/').pop()}` }] })),
  }));
}

beforeEach(() => elb.reset());

describe('loadBalancerDnsNames', () => {
  it('asks for 20 load balancers per call, each once, follows pages, and leaves out what ELB does not name', async () => {
    loadBalancersKnown(15);
    const arns = Array.from({ length: 45 }, (_, n) => lb(n));
    const names = await loadBalancerDnsNames(client, [...arns, lb(3)]);
    expect(names.size).toBe(45);
    expect(names.get(lb(44))).toBe(dnsOf(44));
    // 3 calls of 20, 20 and 5 ARNs; the first two answer in pages of 15 (15 + 5 each).
    const calls = elb.commandCalls(DescribeLoadBalancersCommand).map((c) => [c.args[0].input.LoadBalancerArns?.length, c.args[0].input.Marker]);
    expect(calls).toEqual([
      [20, undefined],
      [20, '15'],
      [20, undefined],
      [20, '15'],
      [5, undefined],
    ]);
  });

  it('makes no call for no load balancer, and skips an answer without a DNS name', async () => {
    expect(await loadBalancerDnsNames(client, [])).toEqual(new Map());
    expect(elb).toHaveReceivedCommandTimes(DescribeLoadBalancersCommand, 0);
    elb.on(DescribeLoadBalancersCommand).resolves({ LoadBalancers: [{ LoadBalancerArn: lb(1) }, { LoadBalancerArn: lb(2), DNSName: dnsOf(2) }] });
    expect(await loadBalancerDnsNames(client, [lb(1), lb(2)])).toEqual(new Map([[lb(2), dnsOf(2)]]));
  });
});

describe('resolveRuntimeConfig: the catalog\'s hosts', () => {
  it('several load balancers: each capability gets the DNS name of the one it was found on, from one DescribeLoadBalancers call', async () => {
    groupsOn(1, [0, 1]);
    groupsOn(2, [2]);
    taggedByNumber();
    loadBalancersKnown();
    const config = await resolveRuntimeConfig(JSON.stringify({ tableName: 't', loadBalancerArn: lb(1), moreLoadBalancerArns: [lb(2)], capabilities: ['cap-0', 'cap-1', 'cap-2'], catalog }), client);
    expect(config.catalog?.hosts).toEqual({ 'cap-0': dnsOf(1), 'cap-1': dnsOf(1), 'cap-2': dnsOf(2) });
    expect(elb).toHaveReceivedCommandTimes(DescribeLoadBalancersCommand, 1);
    // The same placement tells the registry which load balancer's target quota each group counts against.
    expect(config.loadBalancers).toEqual({ 'cap-0': lb(1), 'cap-1': lb(1), 'cap-2': lb(2) });
    expect(elb).toHaveReceivedCommandWith(DescribeLoadBalancersCommand, { LoadBalancerArns: [lb(1), lb(2)] });
  });

  it('one load balancer: every capability on it', async () => {
    groupsOn(1, [0, 1]);
    taggedByNumber();
    loadBalancersKnown();
    const config = await resolveRuntimeConfig(JSON.stringify({ tableName: 't', loadBalancerArn: lb(1), capabilities: ['cap-0', 'cap-1'], catalog }), client);
    expect(config.catalog?.hosts).toEqual({ 'cap-0': dnsOf(1), 'cap-1': dnsOf(1) });
    expect(elb).toHaveReceivedCommandWith(DescribeLoadBalancersCommand, { LoadBalancerArns: [lb(1)] });
    expect(config.loadBalancers).toBeUndefined(); // one load balancer: every group counts on it
  });

  it('groups named by ARN: their load balancers from the DescribeTargetGroups their ports needed anyway; a group on none gets no host', async () => {
    elb.on(DescribeTargetGroupsCommand).resolves({
      TargetGroups: [
        { TargetGroupArn: tg(0), Port: 8080, LoadBalancerArns: [lb(1)] },
        { TargetGroupArn: tg(1), Port: 8081, LoadBalancerArns: [] },
      ],
    });
    loadBalancersKnown();
    const capabilities = { 'cap-0': { targetGroupArn: tg(0), targetType: 'ip' }, 'cap-1': { targetGroupArn: tg(1), targetType: 'ip' } };
    const config = await resolveRuntimeConfig(JSON.stringify({ tableName: 't', capabilities, catalog }), client);
    expect(config.catalog?.hosts).toEqual({ 'cap-0': dnsOf(1) });
    expect(config.routing.capabilities['cap-1'].ports).toEqual([{ from: 8081, to: 8081 }]);
    expect(elb).toHaveReceivedCommandTimes(DescribeTargetGroupsCommand, 1);
    expect(elb).toHaveReceivedCommandWith(DescribeLoadBalancersCommand, { LoadBalancerArns: [lb(1)] });
  });

  it('groups named by ARN with declared ports: one DescribeTargetGroups for the catalog alone', async () => {
    elb.on(DescribeTargetGroupsCommand).resolves({ TargetGroups: [{ TargetGroupArn: tg(0), Port: 8080, LoadBalancerArns: [lb(2)] }] });
    loadBalancersKnown();
    const config = await resolveRuntimeConfig(JSON.stringify({ tableName: 't', capabilities: { 'cap-0': { targetGroupArn: tg(0), targetType: 'ip', ports: '9000' } }, catalog }), client);
    expect(config.catalog?.hosts).toEqual({ 'cap-0': dnsOf(2) });
    expect(config.routing.capabilities['cap-0'].ports).toEqual([{ from: 9000, to: 9000 }]);
    expect(elb).toHaveReceivedCommandWith(DescribeTargetGroupsCommand, { TargetGroupArns: [tg(0)] });
  });

  it('with a DNS domain (a hosted zone): each capability\'s own name <capability>.<dnsDomain>, and no load balancer asked for', async () => {
    groupsOn(1, [0, 1]);
    groupsOn(2, [2]);
    taggedByNumber();
    loadBalancersKnown();
    const text = JSON.stringify({ tableName: 't', loadBalancerArn: lb(1), moreLoadBalancerArns: [lb(2)], capabilities: ['cap-0', 'cap-1', 'cap-2'], catalog: { ...catalog, dnsDomain: 'agents.example.com' } });
    const config = await resolveRuntimeConfig(text, client);
    expect(config.catalog?.hosts).toEqual({ 'cap-0': 'cap-0.agents.example.com', 'cap-1': 'cap-1.agents.example.com', 'cap-2': 'cap-2.agents.example.com' });
    expect(config.catalog).not.toHaveProperty('dnsDomain');
    expect(elb).toHaveReceivedCommandTimes(DescribeLoadBalancersCommand, 0);
  });

  it.each([['Agents.Example.com'], ['agents.example.com.'], ['-agents.example.com'], [''], [42]])('refuses catalog.dnsDomain %j, quoting it', async (dnsDomain) => {
    const text = JSON.stringify({ tableName: 't', loadBalancerArn: lb(1), capabilities: ['cap-0'], catalog: { ...catalog, dnsDomain } });
    await expect(resolveRuntimeConfig(text, client)).rejects.toThrow(`${CONFIG_ENV}: catalog.dnsDomain must be a domain name of lowercase DNS labels without a trailing ".", got ${JSON.stringify(dnsDomain)}`);
  });

  it('without a catalog, asks for no load balancer', async () => {
    groupsOn(1, [0]);
    taggedByNumber();
    const config = await resolveRuntimeConfig(JSON.stringify({ tableName: 't', loadBalancerArn: lb(1), capabilities: ['cap-0'] }), client);
    expect(config.catalog).toBeUndefined();
    expect(elb).toHaveReceivedCommandTimes(DescribeLoadBalancersCommand, 0);
  });

  it('resolves without hosts when the lookup is denied, and says why', async () => {
    groupsOn(1, [0]);
    taggedByNumber();
    elb.on(DescribeLoadBalancersCommand).rejects(Object.assign(new Error('not authorized to perform: elasticloadbalancing:DescribeLoadBalancers'), { name: 'AccessDenied' }));
    const unknown: RegistryStateError[] = [];
    const config = await resolveRuntimeConfig(JSON.stringify({ tableName: 't', loadBalancerArn: lb(1), capabilities: ['cap-0'], catalog }), client, { onCatalogHostsUnknown: (e) => unknown.push(e) });
    expect(config.routing.capabilities['cap-0'].targetGroupArn).toBe(tg(0));
    expect(config.catalog).toBeDefined();
    expect(config.catalog).not.toHaveProperty('hosts');
    expect(unknown.map((e) => [e.code, e.message])).toEqual([
      ['REGISTRY_STATE', 'the catalog cannot name the load balancers serving its capabilities (AccessDenied: not authorized to perform: elasticloadbalancing:DescribeLoadBalancers); it keeps the hosts it shows'],
    ]);
  });
});

describe('the sync handler of a deployment whose role may not DescribeLoadBalancers', () => {
  const previous = process.env[CONFIG_ENV];
  const ddb = mockClient(DynamoDBClient);
  afterEach(() => {
    if (previous === undefined) delete process.env[CONFIG_ENV];
    else process.env[CONFIG_ENV] = previous;
    ddb.reset();
  });

  it('still registers, and counts the catalog\'s missing hosts as a registry state error', async () => {
    process.env[CONFIG_ENV] = JSON.stringify({ tableName: 't', loadBalancerArn: lb(1), capabilities: ['cap-0'], catalog });
    groupsOn(1, [0]);
    taggedByNumber();
    elb.on(DescribeLoadBalancersCommand).rejects(Object.assign(new Error('denied'), { name: 'AccessDenied' }));
    elb.on(RegisterTargetsCommand).resolves({});
    const lease = leaseItem({ address: privateIp(7), capabilities: ['cap-0'] });
    new FakeLeaseTable('t').put(lease).install(ddb);
    const emf = captureMetrics();
    const handler = createSyncHandler({ elbClient: client, dynamoClient: new DynamoDBClient({ region: 'eu-west-1' }), logger: silentLogger(), metrics: emf.metrics, now: () => T0 * 1000 });
    expect(await handler(streamEvent([insert(lease)]))).toEqual({ batchItemFailures: [] });
    expect(elb.commandCalls(RegisterTargetsCommand).map((c) => c.args[0].input.TargetGroupArn)).toEqual([tg(0)]);
    expect(emf.last('RegistryStateErrors')).toBe(1);
  });
});
