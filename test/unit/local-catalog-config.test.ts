import { describe, expect, it } from 'vitest';
import { buildCatalogCapability } from '../../lib/core/catalog-document';
import { LOCAL_LOAD_BALANCER_HOST } from '../../lib/local/local-data-plane';
import { localCatalogConfig } from '../../lib/local/local-catalog';
import type { LocalDeployment } from '../../lib/local/provision';

const LB = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/agentlb/50dc6c495c0c9188';

/** A provisioned local stack with a catalog: vision with a canary, and speech, on the one load balancer. */
const deployment = {
  loadBalancerArn: LB,
  targetGroups: { vision: 'arn:tg/vision', 'vision-canary': 'arn:tg/canary', speech: 'arn:tg/speech' },
  variantWeights: { 'vision-canary': 20 },
  capabilityTags: { 'vision-canary': { 'agent-lb:variant-of': 'vision', 'agent-lb:variant-weight': '20' } },
  registryTableName: 'local-registry-state',
  registryConfig: JSON.stringify({ catalog: { tableName: '<RegistryStateTable>', headerName: 'X-Agent-Capability', pathPrefix: 'agents' } }),
} as unknown as LocalDeployment;

describe('localCatalogConfig: the host the local catalog names', () => {
  it.each<[string, string | undefined, Record<string, string> | undefined]>([
    ['the local load balancer\'s host for every capability (local mode has one load balancer), none for variants', LOCAL_LOAD_BALANCER_HOST, { speech: '127.0.0.1', vision: '127.0.0.1' }],
    ['moto\'s DNS name without a data plane', 'agentlb-1.us-east-1.elb.amazonaws.com', { speech: 'agentlb-1.us-east-1.elb.amazonaws.com', vision: 'agentlb-1.us-east-1.elb.amazonaws.com' }],
    ['nothing resolved: no hosts', undefined, undefined],
  ])('%s', (_, host, expected) => {
    const config = localCatalogConfig(deployment, host)!;
    expect(config.hosts).toEqual(expected);
    expect(Object.keys(config.capabilities).sort()).toEqual(['speech', 'vision']);
  });

  it('puts it in each route: a client asks the local load balancer on the port it fetched the catalog from', () => {
    const config = localCatalogConfig(deployment, LOCAL_LOAD_BALANCER_HOST)!;
    expect(buildCatalogCapability(config, 'vision', () => undefined).route).toEqual({ header: 'X-Agent-Capability: vision', path: '/agents/vision/', host: '127.0.0.1' });
  });

  it('has no catalog for a stack without one', () => {
    expect(localCatalogConfig({ ...deployment, registryTableName: undefined } as LocalDeployment, LOCAL_LOAD_BALANCER_HOST)).toBeUndefined();
  });
});
