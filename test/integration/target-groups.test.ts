import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveRuntimeConfig } from '../../lib/handlers/runtime-config-loader';
import { LocalStack } from '../../lib/local/local-stack';

/**
 * The deployed stack hands its Lambdas capability names only; they find the target groups on
 * the load balancer by tag. Checked here on the stack provisioned in moto from the synthesized
 * template: discovery must find exactly the groups the template created.
 */
let stack: LocalStack;

beforeAll(async () => {
  stack = await LocalStack.start({ reconcileIntervalMs: 0 });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe('target group discovery against the provisioned stack', () => {
  it('finds every capability group through the listener rules and tags', async () => {
    const names = Object.keys(stack.state.targetGroups);
    const config = await resolveRuntimeConfig(JSON.stringify({ tableName: stack.state.tableName, loadBalancerArn: stack.state.loadBalancerArn, capabilities: names }), stack.elbv2);
    expect(config.routing.capabilities).toEqual(stack.runtimeConfig.routing.capabilities);
  });

  it('finds the same groups from the listener alone, as the functions of a stack on an imported listener do', async () => {
    const names = Object.keys(stack.state.targetGroups);
    const config = await resolveRuntimeConfig(JSON.stringify({ tableName: stack.state.tableName, listenerArn: stack.state.listenerArn, capabilities: names }), stack.elbv2);
    expect(config.routing.capabilities).toEqual(stack.runtimeConfig.routing.capabilities);
  });

  it('names the load balancer serving each capability in the catalog: moto\'s DNS name, from DescribeLoadBalancers, as the stack\'s own catalog shows it', async () => {
    const names = Object.keys(stack.state.targetGroups);
    const catalog = { tableName: 'state', headerName: 'X-Agent-Capability', pathPrefix: 'agents' };
    const config = await resolveRuntimeConfig(JSON.stringify({ tableName: stack.state.tableName, loadBalancerArn: stack.state.loadBalancerArn, capabilities: names, catalog }), stack.elbv2);
    const hosts = Object.values(config.catalog?.hosts ?? {});
    expect(hosts.length).toBeGreaterThan(0);
    expect(new Set(hosts).size).toBe(1);
    expect(hosts[0]).toMatch(/\.elb\.amazonaws\.com$/);
    expect(config.catalog?.hosts).toEqual(stack.runtimeConfig.catalog?.hosts);
    // Groups named by ARN: moto's DescribeTargetGroups says which load balancer each is on.
    const byArn = Object.fromEntries(names.map((n) => [n, { targetGroupArn: stack.state.targetGroups[n], targetType: 'ip', ports: '8080' }]));
    const explicit = await resolveRuntimeConfig(JSON.stringify({ tableName: stack.state.tableName, capabilities: byArn, catalog }), stack.elbv2);
    expect(explicit.catalog?.hosts).toEqual(Object.fromEntries(names.map((n) => [n, hosts[0]])));
  });

  it('names a capability the load balancer has no group for', async () => {
    const text = JSON.stringify({ tableName: stack.state.tableName, loadBalancerArn: stack.state.loadBalancerArn, capabilities: ['vision', 'translation'] });
    await expect(resolveRuntimeConfig(text, stack.elbv2)).rejects.toThrow(/routes to no target group tagged agent-lb:capability = "translation"/);
  });
});
