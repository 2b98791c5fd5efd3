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

  it('names a capability the load balancer has no group for', async () => {
    const text = JSON.stringify({ tableName: stack.state.tableName, loadBalancerArn: stack.state.loadBalancerArn, capabilities: ['vision', 'translation'] });
    await expect(resolveRuntimeConfig(text, stack.elbv2)).rejects.toThrow(/routes to no target group tagged agent-lb:capability = "translation"/);
  });
});
