import { describe, expect, it } from 'vitest';
import { buildCatalogCapability } from '../../lib/core/catalog-document';
import { LOCAL_LOAD_BALANCER_HOST } from '../../lib/local/local-data-plane';
import { localCatalogConfig, LocalLoadBalancerAddress } from '../../lib/local/local-catalog';
import type { LocalDeployment } from '../../lib/local/provision';

const LB = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/agentlb/50dc6c495c0c9188';
const LB2 = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/agentlb2/60dc6c495c0c9188';

/** A provisioned local stack with a catalog: vision with a canary, and speech, on the first load balancer; search on the second. */
const deployment = {
  loadBalancerArn: LB,
  loadBalancers: [
    { loadBalancerArn: LB, listenerArn: 'arn:listener/1', capabilities: ['vision', 'vision-canary', 'speech'] },
    { loadBalancerArn: LB2, listenerArn: 'arn:listener/2', capabilities: ['search'] },
  ],
  targetGroups: { vision: 'arn:tg/vision', 'vision-canary': 'arn:tg/canary', speech: 'arn:tg/speech', search: 'arn:tg/search' },
  variantWeights: { 'vision-canary': 20 },
  capabilityTags: { 'vision-canary': { 'agent-lb:variant-of': 'vision', 'agent-lb:variant-weight': '20' } },
  registryTableName: 'local-registry-state',
  registryConfig: JSON.stringify({ catalog: { tableName: '<RegistryStateTable>', headerName: 'X-Agent-Capability', pathPrefix: 'agents' } }),
} as unknown as LocalDeployment;

const DNS1 = 'agentlb-1.us-east-1.elb.amazonaws.com';
const DNS2 = 'agentlb2-2.us-east-1.elb.amazonaws.com';

describe('localCatalogConfig: where the local catalog says each capability is reached', () => {
  it.each<[string, Map<string, LocalLoadBalancerAddress> | undefined, Record<string, string> | undefined, Record<string, number> | undefined]>([
    [
      "each local load balancer's host and port for the capabilities it serves, none for variants",
      new Map([
        [LB, { host: LOCAL_LOAD_BALANCER_HOST, port: 8701 }],
        [LB2, { host: LOCAL_LOAD_BALANCER_HOST, port: 8702 }],
      ]),
      { speech: '127.0.0.1', vision: '127.0.0.1', search: '127.0.0.1' },
      { speech: 8701, vision: 8701, search: 8702 },
    ],
    [
      "moto's DNS names without a data plane, and no ports",
      new Map([
        [LB, { host: DNS1 }],
        [LB2, { host: DNS2 }],
      ]),
      { speech: DNS1, vision: DNS1, search: DNS2 },
      undefined,
    ],
    ['nothing resolved: no hosts', undefined, undefined, undefined],
  ])('%s', (_, addresses, hosts, ports) => {
    const config = localCatalogConfig(deployment, addresses)!;
    expect(config.hosts).toEqual(hosts);
    expect(config.ports).toEqual(ports);
    expect(Object.keys(config.capabilities).sort()).toEqual(['search', 'speech', 'vision']);
  });

  it('puts them in each route: a client reaches search on the second load balancer from the catalog of the first', () => {
    const config = localCatalogConfig(deployment, new Map([[LB, { host: '127.0.0.1', port: 8701 }], [LB2, { host: '127.0.0.1', port: 8702 }]]))!;
    expect(buildCatalogCapability(config, 'search', () => undefined).route).toEqual({ header: 'X-Agent-Capability: search', path: '/agents/search/', host: '127.0.0.1', port: 8702 });
    expect(buildCatalogCapability(config, 'vision', () => undefined).route).toEqual({ header: 'X-Agent-Capability: vision', path: '/agents/vision/', host: '127.0.0.1', port: 8701 });
  });

  it('has no catalog for a stack without one', () => {
    expect(localCatalogConfig({ ...deployment, registryTableName: undefined } as LocalDeployment, new Map())).toBeUndefined();
  });
});
