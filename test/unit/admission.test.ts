import { describe, expect, it } from 'vitest';
import { AddressPolicy } from '../../lib/core/address-policy';
import {
  AdmissionCandidate,
  AdmissionContext,
  addressesToLookUp,
  admittedGroupsFor,
  decideAdmission,
  HolderFacts,
  needsAdmission,
  planAdmissionRemovals,
  splitByAdmission,
} from '../../lib/core/admission';
import type { RoutingConfig } from '../../lib/core/lease-schema';
import type { AdmissionConfig } from '../../lib/core/runtime-config';

const VPC = 'vpc-1';
const AGENTS = 'sg-agents';
const VISION_ONLY = 'sg-vision';
const admission: AdmissionConfig = { vpcId: VPC, securityGroups: [AGENTS], byCapability: { vision: [VISION_ONLY] } };
const routing: RoutingConfig = {
  capabilities: {
    vision: { targetGroupArn: 'tg/vision', targetType: 'ip' },
    speech: { targetGroupArn: 'tg/speech', targetType: 'ip' },
    ec2: { targetGroupArn: 'tg/ec2', targetType: 'instance' },
  },
  allowedCidrs: ['192.168.0.0/16'],
  vpcCidrs: ['10.0.0.0/16'],
};
const policy = new AddressPolicy(routing.allowedCidrs, { vpcCidrs: routing.vpcCidrs, allowLoopback: true });
const ctx: AdmissionContext = { admission, routing, policy };

const candidate = (capability: string, id: string, port = 8080): AdmissionCandidate => ({
  capability,
  targetGroupArn: `tg/${capability}`,
  target: { key: id.includes(':') ? `[${id}]:${port}` : `${id}:${port}`, id, port },
});
const eni = (groups: string[], vpcId = VPC): HolderFacts => ({ holder: 'eni-1', vpcId, securityGroupIds: groups });

describe('needsAdmission', () => {
  it.each([
    ['an address in the VPC', '10.0.1.5', ctx, true],
    ['an instance id', 'i-0123456789abcdef0', ctx, true],
    ['an address outside the VPC in a range named explicitly (no interface of the VPC vouches for it)', '192.168.4.4', ctx, false],
    ['anything when no admission is configured', '10.0.1.5', { routing, policy }, false],
    ['a loopback agent when local mode admits loopback', '127.0.0.1', { ...ctx, routing: { ...routing, allowLoopback: true, admitLoopback: true } }, false],
    ['a loopback address when loopback admission is off', '127.0.0.1', { ...ctx, routing: { ...routing, allowLoopback: true } }, true],
  ] as const)('%s: %s', (_what, address, context, expected) => {
    expect(needsAdmission(address, context as AdmissionContext)).toBe(expected);
  });
});

describe('decideAdmission', () => {
  it.each([
    ['speech from an interface in the agents\' group', 'speech', eni([AGENTS, 'sg-other']), 'admitted', undefined],
    ['vision from an interface in its own admitted group', 'vision', eni([VISION_ONLY]), 'admitted', undefined],
    ['vision from the agents\' group, which vision does not admit', 'vision', eni([AGENTS]), 'not-admitted', /carries sg-agents, none of the admitted sg-vision/],
    ['speech from an interface outside every admitted group', 'speech', eni(['sg-db']), 'not-admitted', /carries sg-db, none of the admitted sg-agents/],
    ['speech from an interface with no group', 'speech', eni([]), 'not-admitted', /carries no security group/],
    ['speech from an interface in another VPC', 'speech', eni([AGENTS], 'vpc-2'), 'not-admitted', /eni-1 is in vpc-2, not vpc-1/],
    ['an address no interface of the VPC holds', 'speech', null, 'not-admitted', /EC2 shows no network interface in vpc-1 holding it/],
    ['an address EC2 gave no answer for', 'speech', undefined, 'unknown', undefined],
  ] as const)('%s', (_what, capability, facts, kind, message) => {
    const decision = decideAdmission(candidate(capability, '10.0.1.5'), facts, ctx);
    expect(decision.kind).toBe(kind);
    if (decision.kind === 'not-admitted') {
      expect(decision.rejection).toMatchObject({ reason: 'NOT_ADMITTED', target: '10.0.1.5:8080', capability });
      expect(decision.rejection.message).toMatch(message!);
    }
  });

  it('judges an instance target by the instance\'s groups, and names a missing instance', () => {
    const c = candidate('ec2', 'i-0123456789abcdef0');
    expect(decideAdmission(c, { holder: 'i-0123456789abcdef0', vpcId: VPC, securityGroupIds: [AGENTS] }, ctx).kind).toBe('admitted');
    const missing = decideAdmission(c, null, ctx);
    expect(missing.kind === 'not-admitted' && missing.rejection.message).toMatch(/instance "i-0123456789abcdef0" .*EC2 shows no such instance in vpc-1/);
  });

  it('quotes the address it refuses (a lease\'s text is untrusted)', () => {
    const decision = decideAdmission(candidate('speech', '10.0.1.5'), null, ctx);
    expect(decision.kind === 'not-admitted' && decision.rejection.message).toContain('address "10.0.1.5"');
  });
});

describe('admittedGroupsFor', () => {
  it('a capability with its own list admits only those; the others the agents\' groups', () => {
    expect(admittedGroupsFor('vision', admission)).toEqual([VISION_ONLY]);
    expect(admittedGroupsFor('speech', admission)).toEqual([AGENTS]);
    // "constructor" is a valid capability name: own properties only.
    expect(admittedGroupsFor('constructor', admission)).toEqual([AGENTS]);
  });
});

describe('addressesToLookUp and splitByAdmission', () => {
  it('asks about each address needing admission once, and splits the batch by the answers', () => {
    const candidates = [
      candidate('speech', '10.0.1.1'),
      candidate('vision', '10.0.1.1'),
      candidate('speech', '10.0.1.2'),
      candidate('speech', '192.168.4.4'),
      candidate('speech', '10.0.1.3'),
    ];
    expect(addressesToLookUp(candidates, ctx)).toEqual(['10.0.1.1', '10.0.1.2', '10.0.1.3']);
    const facts = new Map<string, HolderFacts | null>([
      ['10.0.1.1', eni([AGENTS])],
      ['10.0.1.2', null],
    ]);
    const split = splitByAdmission(candidates, facts, ctx);
    expect(split.admitted.map((c) => `${c.capability} ${c.target.id}`)).toEqual(['speech 10.0.1.1', 'speech 192.168.4.4']);
    expect(split.notAdmitted.map((n) => `${n.candidate.capability} ${n.candidate.target.id}`)).toEqual(['vision 10.0.1.1', 'speech 10.0.1.2']);
    expect(split.unknown.map((c) => c.target.id)).toEqual(['10.0.1.3']);
  });
});

describe('planAdmissionRemovals: two passes must agree', () => {
  const registered = [candidate('speech', '10.0.1.1'), candidate('speech', '10.0.1.2'), candidate('speech', '10.0.1.3')];
  const key = (id: string) => `tg/speech ${id}:8080`;

  it.each([
    ['refused for the first time: suspected, not removed', new Map([['10.0.1.1', null]]), [], [], ['10.0.1.1'], [key('10.0.1.1')]],
    ['refused again: removed', new Map([['10.0.1.1', null]]), [key('10.0.1.1')], ['10.0.1.1'], [], [key('10.0.1.1')]],
    ['admitted again: the suspicion is cleared', new Map([['10.0.1.1', eni([AGENTS])]]), [key('10.0.1.1')], [], [], []],
    ['no answer (an EC2 error): nothing removed, the suspicion stands', new Map(), [key('10.0.1.1')], [], [], [key('10.0.1.1')]],
  ] as const)('%s', (_what, facts, last, removed, suspected, next) => {
    const all = new Map<string, HolderFacts | null>([['10.0.1.2', eni([AGENTS])], ['10.0.1.3', eni([AGENTS])], ...facts]);
    if (facts.size === 0) all.delete('10.0.1.1');
    const plan = planAdmissionRemovals(registered, all, ctx, new Set(last));
    expect(plan.remove.map((r) => r.candidate.target.id)).toEqual(removed);
    expect(plan.suspect.map((r) => r.candidate.target.id)).toEqual(suspected);
    expect([...plan.suspectsNow]).toEqual(next);
  });
});
