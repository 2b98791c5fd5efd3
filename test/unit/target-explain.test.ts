import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from 'commander';
import { AddressPolicy } from '../../lib/core/address-policy';
import { encodeRejection } from '../../lib/core/rejection';
import { explainTarget, ExplainInput, GroupView, renderExplanation } from '../../lib/core/target-explain';
import { targetArgument } from '../../lib/cli/program';
import { ALLOWED_CIDRS, Item, leaseItem, T0, testConfig } from '../support/lease-fixtures';

const routing = testConfig().routing;
const NOW_MS = T0 * 1000;
const KEY = '10.0.0.1:8080';
const check = { protocol: 'HTTP', path: '/health', port: 'traffic-port', codes: '200', intervalSeconds: 10, healthyThreshold: 2, unhealthyThreshold: 2 };
const routes = { vision: ['X-Agent-Capability: vision', 'path /agents/vision/*'] };

function input(item: Item | undefined, groups: Record<string, GroupView> = {}): ExplainInput {
  const all: Record<string, GroupView> = { vision: { healthCheck: check, routes: routes.vision }, speech: { healthCheck: check }, ec2: {} };
  return { key: KEY, item, nowMs: NOW_MS, policy: new AddressPolicy(ALLOWED_CIDRS), routing, groups: { ...all, ...groups } };
}
const at = (state: string, reason?: string) => ({ target: { id: '10.0.0.1', port: 8080, state, ...(reason ? { reason } : {}) }, healthCheck: check, routes: routes.vision });

describe('explainTarget', () => {
  it.each([
    ['not-admitted', 'address 10.0.0.1 is not a network interface of this VPC'],
    ['over-quota', 'the load balancer holds 1000 targets (quota 1000)'],
  ])('a live lease the registry refused from AWS facts or settings (%s): not in rotation, and the stored reason says why', (reason, message) => {
    const item = { ...leaseItem({ address: '10.0.0.1', capabilities: ['vision'] }), rejection: encodeRejection({ reason, message, since: NOW_MS - 9_000 }) as Item[string] };
    const lines = renderExplanation(explainTarget(input(item))).split('\n');
    expect(lines.slice(1, 3)).toEqual(['  vision: NOT IN ROTATION', `    - the registry refuses it (${reason}, since ${new Date(NOW_MS - 9_000).toISOString()}): "${message}"`]);
  });

  it('a live lease healthy in one group and refused in another: in rotation where it is, and why not where it is not', () => {
    const item = {
      ...leaseItem({ address: '10.0.0.1', capabilities: ['ocr', 'vision'], agentId: 'worker-7', renewedAt: NOW_MS - 4_000 }),
      rotation: { M: { vision: { M: { state: { S: 'healthy' }, since: { N: String(NOW_MS - 12_000) } } } } },
      rejection: encodeRejection({ reason: 'unknown-capability', message: 'x', since: NOW_MS - 9_000, capabilities: ['ocr'] }) as Item[string],
    };
    const e = explainTarget(input(item, { vision: at('healthy') }));
    expect(renderExplanation(e)).toBe(
      [
        '10.0.0.1:8080: the lease is live: active, expires in 30 s (renewed 4 s ago) by agent "worker-7"',
        '  ocr: NOT IN ROTATION',
        '    - the registry refuses it: capability "ocr" is not routed by this deployment (known: ec2, speech, vision) (the registry has not written this reason into the lease yet)',
        '  vision: IN ROTATION',
        '    - the lease lists it and is live: it belongs in the group',
        "    - the lease's rotation says healthy for 12 s",
        '    - ELB reports it healthy: it gets requests',
        '    - requests reach it by X-Agent-Capability: vision or path /agents/vision/*',
      ].join('\n'),
    );
  });

  it('an unhealthy target: the health check it fails, and when it comes back', () => {
    const e = explainTarget(input(leaseItem({ address: '10.0.0.1' }), { vision: at('unhealthy', 'Target.ResponseCodeMismatch') }));
    expect(e.capabilities[0].why.at(-1)).toBe(
      'ELB reports it unhealthy (Target.ResponseCodeMismatch): it fails HTTP GET /health on port 8080 every 10 s, expecting 200; back in rotation after 2 passing checks (when every target of the group is unhealthy, ALB fails open and sends to all of them)',
    );
    expect(e.capabilities[0].inRotation).toBe(false);
  });

  it.each<[string, Item | undefined, Record<string, GroupView>, string, string[]]>([
    ['no lease, still registered', undefined, { vision: at('healthy') }, 'no lease for 10.0.0.1:8080: the registry routes it nowhere', ['no lease lists it', 'ELB reports it healthy: it gets requests; it has no live lease for this capability, so reconcile removes it']],
    [
      'an invalid lease',
      leaseItem({ address: '10.0.0.1' }, { port: { S: '8080' } }),
      {},
      'the lease is invalid, so the registry routes it nowhere (invalid: attribute "port" must be Number (N), got S); the registry has not written this reason into the lease yet',
      ['the lease is invalid', 'ELB does not list it: not registered'],
    ],
    [
      'a draining lease being deregistered',
      leaseItem({ address: '10.0.0.1', status: 'draining' }),
      { vision: at('draining', 'Target.DeregistrationInProgress') },
      'the lease is draining (the agent took itself out of rotation, lease kept, expires in 30 s): not live',
      ['the lease lists it but is not live: it does not belong in the group', 'the lease has no rotation entry for it yet', 'ELB is draining it (deregistered: requests in flight finish, no new ones)'],
    ],
    [
      'a live lease not registered yet (drift)',
      leaseItem({ address: '10.0.0.1' }),
      {},
      'the lease is live: active, expires in 30 s (renewed 0 s ago) by agent "agent-10.0.0.1"',
      ['the lease lists it and is live: it belongs in the group', 'the lease has no rotation entry for it yet', 'ELB does not list it although its lease is live: stream sync registers it within seconds, or reconcile at its next pass (drift)'],
    ],
    [
      'an expired lease',
      leaseItem({ address: '10.0.0.1', expiresAt: T0 - 90 }),
      { vision: at('initial', 'Elb.InitialHealthChecking') },
      'the lease expired 90 s ago: not live, so its target leaves every group and reconcile deletes it',
      [
        'the lease lists it but is not live: it does not belong in the group',
        'the lease has no rotation entry for it yet',
        'ELB registered it and waits for its first passing health check (Elb.InitialHealthChecking): HTTP GET /health on port 8080 every 10 s, expecting 200; it has no live lease for this capability, so reconcile removes it',
      ],
    ],
  ])('%s', (_name, item, groups, lease, why) => {
    const e = explainTarget(input(item, groups));
    expect(e.lease).toBe(lease);
    expect(e.capabilities[0]?.why).toEqual(why);
  });
});

describe('the explain command\'s target argument', () => {
  it.each([
    ['10.0.0.1:8080', '10.0.0.1:8080'],
    ['[FD00:0::5]:443', '[fd00::5]:443'],
    ['i-0123456789abcdef0:80', 'i-0123456789abcdef0:80'],
  ])('%s is the lease key %s', (value, key) => expect(targetArgument(value)).toBe(key));

  it.each(['10.0.0.1', 'fd00::5:443', '10.0.0.1:0', 'host.internal:80', '[10.0.0.1]:80'])('%s is refused in one line', (value) => {
    expect(() => targetArgument(value)).toThrow(InvalidArgumentError);
    expect(() => targetArgument(value)).toThrow(`target "${value}" must be <address>:<port> (an IPv4 address or instance id), or [<ipv6>]:<port>, port 1–65535`);
  });
});

describe('explain: a renewedAt ahead of this clock', () => {
  it('says it is ahead rather than "renewed 0 s ago"', () => {
    const text = renderExplanation(explainTarget(input(leaseItem({ address: '10.0.0.1', capabilities: ['vision'], renewedAt: NOW_MS + 3 * 3_600_000 }))));
    expect(text).toContain('renewedAt is 3 h ahead of this clock');
    expect(text).not.toContain('renewed 0 s ago');
  });
  it('within 5 s ahead (clock skew) is an ordinary renewal', () => {
    expect(renderExplanation(explainTarget(input(leaseItem({ address: '10.0.0.1', capabilities: ['vision'], renewedAt: NOW_MS + 2_000 }))))).toContain('renewed 0 s ago');
  });
});
