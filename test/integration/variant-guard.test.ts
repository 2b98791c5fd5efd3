/**
 * The empty-variant guard end to end on moto: local mode provisions a capability with a weighted
 * variant from the synthesized template (its weighted listener rules included), the real
 * reconcile handler runs, and every assertion reads the rules the way ALB would route by them:
 * DescribeRules against moto.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readWeightedRules } from '../../lib/aws/listener-rules';
import { renderStatus } from '../../lib/cli/fleet-render';
import { LocalStack } from '../../lib/local/local-stack';
import { fleetStatus, variantSources } from '../../lib/registry/fleet-status';
import { AgentLease } from '../../lib/sdk/agent-lease';
import { targetKeys, waitFor } from '../support/local-harness';

const SLACK_MS = 5000;
let stack: LocalStack;
let dir: string;

/** Each weighted rule's weights, as `capability=weight`, in the rule's order. */
async function weights(): Promise<string[][]> {
  const byArn = Object.fromEntries(Object.entries(stack.state.targetGroups).map(([name, arn]) => [arn, name]));
  const rules = await readWeightedRules(stack.elbv2, { listenerArn: stack.state.listenerArn });
  return rules.map((r) => r.groups.map((g) => `${byArn[g.targetGroupArn]}=${g.weight}`));
}

/** `agent-lb status --state-file`'s line for `capability`: the CLI's variant sources (tags and rules in moto). */
async function statusLine(capability: string): Promise<string> {
  const status = await fleetStatus({ ...stack.sources(), routing: stack.runtimeConfig.routing, ...(await variantSources(stack.elbv2, stack.state)) });
  return renderStatus(status).split('\n').find((l) => l.startsWith(`${capability} `)) ?? '';
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'agent-lb-variants-'));
  const cdkJson = join(dir, 'cdk.json');
  writeFileSync(cdkJson, JSON.stringify({ context: { 'agent-lb': { capabilities: [{ name: 'vision', variants: [{ name: 'canary', weight: 20 }] }] } } }));
  // Passes run when the test asks (reconcileNow), not on a timer.
  stack = await LocalStack.start({ cdkJsonPath: cdkJson, reconcileIntervalMs: 3_600_000 });
  // Admitted as on AWS: an interface in the agents' security group holds the canary's address.
  await stack.addAgentInterfaces(['10.0.70.1']);
});

afterAll(async () => {
  await stack?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('reconcile holds an empty variant out of its capability\'s weighted rules', () => {
  it('deploys the header and the path rule with the configured weights', async () => {
    expect(Object.keys(stack.state.targetGroups).sort()).toEqual(['vision', 'vision-canary']);
    expect(await weights()).toEqual([
      ['vision=80', 'vision-canary=20'],
      ['vision=80', 'vision-canary=20'],
    ]);
  });

  it('sets the empty canary to 0, lets it back in once an agent serves it, and holds it out again when the agent leaves', async () => {
    // No canary agent: its share goes to the stable group
    const empty = await stack.reconcileNow();
    expect(empty.variantsHeldOut).toEqual(['vision-canary']);
    expect(empty.variantRuleChanges).toBe(2);
    expect(await weights()).toEqual([
      ['vision=100', 'vision-canary=0'],
      ['vision=100', 'vision-canary=0'],
    ]);
    expect((await stack.reconcileNow()).variantRuleChanges).toBe(0);
    expect(await statusLine('vision-canary')).toMatch(/^vision-canary\s+0% of vision \(20% once healthy\)\s+0\s+0\s/);

    // A canary agent joins by listing the capability vision-canary
    const lease = new AgentLease({
      tableName: stack.state.tableName,
      address: '10.0.70.1',
      port: 80, // the group's own port: the capability declares no others
      capabilities: ['vision-canary'],
      agentId: 'canary-1',
      ttl: 30,
      client: stack.dynamodb,
      keepProcessAlive: false,
    });
    await lease.acquire();
    await waitFor(async () => (await targetKeys(stack.elbv2, stack.state.targetGroups['vision-canary'])).includes('10.0.70.1:80'), SLACK_MS, 'canary registration');
    const serving = await stack.reconcileNow();
    expect(serving.variantsHeldOut).toEqual([]);
    expect(await statusLine('vision-canary')).toMatch(/^vision-canary\s+20% of vision\s+1\s+1\s+healthy=1/);
    expect(await statusLine('vision')).toMatch(/^vision\s+80%\s/);
    expect(await weights()).toEqual([
      ['vision=80', 'vision-canary=20'],
      ['vision=80', 'vision-canary=20'],
    ]);

    // It leaves: out of rotation, so the canary is held out again
    await lease.release();
    await waitFor(async () => !(await targetKeys(stack.elbv2, stack.state.targetGroups['vision-canary'])).includes('10.0.70.1:80'), SLACK_MS, 'canary deregistration');
    expect((await stack.reconcileNow()).variantsHeldOut).toEqual(['vision-canary']);
    expect(await weights()).toEqual([
      ['vision=100', 'vision-canary=0'],
      ['vision=100', 'vision-canary=0'],
    ]);
  });
});
