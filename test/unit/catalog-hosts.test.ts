import { describe, expect, it } from 'vitest';
import { CapabilityPlacement, catalogHosts, hostOf, placementLoadBalancers } from '../../lib/core/catalog-hosts';
import { buildCatalogCapability, CatalogConfig, catalogRoute, mergeCatalogCapabilities, nextCatalog } from '../../lib/core/catalog-document';

const LB1 = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/agents/1';
const LB2 = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/agents2/2';
const DNS1 = 'internal-agents-1.eu-west-1.elb.amazonaws.com';
const DNS2 = 'internal-agents2-2.eu-west-1.elb.amazonaws.com';
const dns = new Map([
  [LB1, DNS1],
  [LB2, DNS2],
]);

describe('catalogHosts: the one load balancer serving each capability', () => {
  it.each<[string, CapabilityPlacement, ReadonlyMap<string, string>, Record<string, string>]>([
    ['one load balancer: every capability on it', { vision: [LB1], speech: [LB1] }, dns, { vision: DNS1, speech: DNS1 }],
    ['several: each capability on its own', { vision: [LB1], speech: [LB2] }, dns, { vision: DNS1, speech: DNS2 }],
    ['a group on no load balancer yet (named by ARN, no rule forwards to it): none', { vision: [], speech: [LB2] }, dns, { speech: DNS2 }],
    ['a group on two load balancers (a hand-made configuration): none, which one cannot be told', { vision: [LB1, LB2], speech: [LB2] }, dns, { speech: DNS2 }],
    ['the same load balancer listed twice is still one', { vision: [LB1, LB1] }, dns, { vision: DNS1 }],
    ['a load balancer ELB did not return: none', { vision: [LB1], speech: ['arn:gone'] }, dns, { vision: DNS1 }],
    ['a DNS name that is empty: none', { vision: [LB1] }, new Map([[LB1, '']]), {}],
    ['nothing placed', {}, dns, {}],
  ])('%s', (_, placement, names, expected) => {
    expect(catalogHosts(placement, names)).toEqual(expected);
  });
});

describe('placementLoadBalancers: what one DescribeLoadBalancers call asks for', () => {
  it.each<[string, CapabilityPlacement, string[]]>([
    ['each load balancer once, in code-unit order', { vision: [LB2], speech: [LB1], ocr: [LB2] }, [LB1, LB2]],
    ['groups on none add nothing; an empty ARN is not asked for', { vision: [], speech: [''] }, []],
    ['a group on two asks for both', { vision: [LB2, LB1] }, [LB1, LB2]],
  ])('%s', (_, placement, expected) => {
    expect(placementLoadBalancers(placement)).toEqual(expected);
  });
});

describe('hostOf: resolved hosts are authoritative, unresolved ones keep what the document showed', () => {
  it.each<[string, Record<string, string> | undefined, string | undefined, string | undefined]>([
    ['resolved: its host', { vision: DNS1 }, undefined, DNS1],
    ['resolved: its host wins over the previous one (the capability moved)', { vision: DNS2 }, DNS1, DNS2],
    ['resolved without it: none, even if the previous document showed one', { speech: DNS1 }, DNS1, undefined],
    ['not resolved (the lookup failed): the previous host stays', undefined, DNS1, DNS1],
    ['not resolved and never shown: none', undefined, undefined, undefined],
  ])('%s', (_, hosts, previous, expected) => {
    expect(hostOf(hosts, 'vision', previous)).toBe(expected);
  });

  it('does not take a host from the prototype chain of the map', () => {
    expect(hostOf({}, 'constructor', undefined)).toBeUndefined();
  });
});

const config: CatalogConfig = {
  tableName: 'state',
  headerName: 'X-Agent-Capability',
  pathPrefix: 'agents',
  attributes: [],
  capabilities: {
    vision: { algorithm: 'least_outstanding_requests', stickiness: 'off', variants: [] },
    speech: { algorithm: 'round_robin', stickiness: 'off', variants: [] },
  },
};

describe('the host in the document', () => {
  it('is part of the route, after header and path, and absent when unknown', () => {
    expect(catalogRoute({ ...config, hosts: { vision: DNS1 } }, 'vision')).toEqual({ header: 'X-Agent-Capability: vision', path: '/agents/vision/', host: DNS1 });
    expect(catalogRoute({ ...config, hosts: { vision: DNS1 } }, 'speech')).toEqual({ header: 'X-Agent-Capability: speech', path: '/agents/speech/' });
    expect(Object.keys(buildCatalogCapability({ ...config, hosts: { vision: DNS1 } }, 'vision', () => undefined).route)).toEqual(['header', 'path', 'host']);
  });

  it('reaches entries the step did not recount: a registry that resolved hosts adds them to every entry at its next publication', () => {
    const before = mergeCatalogCapabilities(config, undefined, new Map());
    expect(before.map((c) => c.route.host)).toEqual([undefined, undefined]);
    const resolved = { ...config, hosts: { vision: DNS1, speech: DNS2 } };
    const vision = buildCatalogCapability(resolved, 'vision', () => undefined);
    expect(mergeCatalogCapabilities(resolved, before, new Map([['vision', vision]])).map((c) => [c.name, c.route.host])).toEqual([
      ['speech', DNS2],
      ['vision', DNS1],
    ]);
  });

  it('survives a container that could not look its load balancers up: no revision for a host it does not know', () => {
    const resolved = { ...config, hosts: { vision: DNS1, speech: DNS2 } };
    const first = nextCatalog(undefined, mergeCatalogCapabilities(resolved, undefined, new Map()), 1)!;
    // `config` has no `hosts`: this container's DescribeLoadBalancers failed. It recounts vision.
    const recounted = buildCatalogCapability(config, 'vision', () => undefined);
    const merged = mergeCatalogCapabilities(config, first.capabilities, new Map([['vision', recounted]]));
    expect(merged.map((c) => c.route.host)).toEqual([DNS2, DNS1]);
    expect(nextCatalog(first, merged, 2)).toBeUndefined();
  });

  it('moves the revision when a capability moves to another load balancer, and drops a host the registry no longer finds', () => {
    const first = nextCatalog(undefined, mergeCatalogCapabilities({ ...config, hosts: { vision: DNS1, speech: DNS1 } }, undefined, new Map()), 1)!;
    const moved = nextCatalog(first, mergeCatalogCapabilities({ ...config, hosts: { vision: DNS2 } }, first.capabilities, new Map()), 2)!;
    expect(moved.revision).toBe(2);
    expect(moved.capabilities.map((c) => [c.name, c.route.host])).toEqual([
      ['speech', undefined],
      ['vision', DNS2],
    ]);
  });
});

describe('the port in the route (local mode: each load balancer on a port of its own)', () => {
  it.each([
    ['host and port named: both in the route', { hosts: { vision: '127.0.0.1' }, ports: { vision: 8702 } }, { host: '127.0.0.1', port: 8702 }],
    ['a host without a port (AWS: every load balancer has the same listeners)', { hosts: { vision: DNS1 } }, { host: DNS1 }],
    ['a port without a host is not shown: it would name no endpoint', { hosts: {}, ports: { vision: 8702 } }, {}],
    ['another capability\'s port is not taken', { hosts: { vision: '127.0.0.1' }, ports: { speech: 8703 } }, { host: '127.0.0.1' }],
  ])('%s', (_, where, expected) => {
    expect(catalogRoute({ ...config, ...where }, 'vision')).toEqual({ header: 'X-Agent-Capability: vision', path: '/agents/vision/', ...expected });
  });

  it('moves the revision when a capability\'s port changes', () => {
    const first = nextCatalog(undefined, mergeCatalogCapabilities({ ...config, hosts: { vision: '127.0.0.1', speech: '127.0.0.1' }, ports: { vision: 8702, speech: 8702 } }, undefined, new Map()), 1)!;
    const moved = nextCatalog(first, mergeCatalogCapabilities({ ...config, hosts: { vision: '127.0.0.1', speech: '127.0.0.1' }, ports: { vision: 8702, speech: 8703 } }, first.capabilities, new Map()), 2)!;
    expect(moved.revision).toBe(2);
    expect(moved.capabilities.map((c) => [c.name, c.route.port])).toEqual([
      ['speech', 8703],
      ['vision', 8702],
    ]);
  });
});
