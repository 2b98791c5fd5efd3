import { describe, expect, it } from 'vitest';
import { completeRuntimeConfig, CONFIG_ENV, ConfigError, parseRuntimeConfig, parseRuntimeSettings } from '../../lib/core';

const ok = { tableName: 't', capabilities: { vision: { targetGroupArn: 'arn:tg', targetType: 'ip' } } };

describe('parseRuntimeConfig', () => {
  it('applies defaults for allowed CIDRs (a hand-written configuration knows no VPC), the maximum TTL, the quota, the safety valve and repeat', () => {
    expect(parseRuntimeConfig(JSON.stringify(ok))).toEqual({
      tableName: 't',
      routing: {
        capabilities: { vision: { targetGroupArn: 'arn:tg', targetType: 'ip' } },
        allowedCidrs: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'],
        maxLeaseTtlSeconds: 3600,
      },
      targetQuota: 1000,
      safetyValveShare: 0.5,
      reconcileRepeatSeconds: 0,
    });
  });

  it('with the VPC\'s CIDRs, allows those only unless more are named', () => {
    const config = parseRuntimeConfig(JSON.stringify({ ...ok, vpcCidrs: ['10.0.0.0/16'] }));
    expect(config.routing).toMatchObject({ vpcCidrs: ['10.0.0.0/16'], allowedCidrs: [] });
  });

  it('reads declared ports per capability, admission and the quota', () => {
    const config = parseRuntimeConfig(
      JSON.stringify({
        ...ok,
        capabilities: { vision: { targetGroupArn: 'arn:tg', targetType: 'ip', ports: '8080' }, batch: { targetGroupArn: 'arn:tg2', targetType: 'ip' } },
        ports: { batch: '9000-9099,8080' },
        admission: { vpcId: 'vpc-1', securityGroups: ['sg-agents'], byCapability: { vision: ['sg-vision'] } },
        targetQuota: 50,
        maxLeaseTtlSeconds: 120,
      }),
    );
    expect(config.routing.capabilities).toEqual({
      vision: { targetGroupArn: 'arn:tg', targetType: 'ip', ports: [{ from: 8080, to: 8080 }] },
      batch: { targetGroupArn: 'arn:tg2', targetType: 'ip', ports: [{ from: 9000, to: 9099 }, { from: 8080, to: 8080 }] },
    });
    expect(config.admission).toEqual({ vpcId: 'vpc-1', securityGroups: ['sg-agents'], byCapability: { vision: ['sg-vision'] } });
    expect(config.targetQuota).toBe(50);
    expect(config.routing.maxLeaseTtlSeconds).toBe(120);
  });

  it('reads the shared ELB budget: its table and fallback divisor (4 unless set)', () => {
    expect(parseRuntimeConfig(JSON.stringify({ ...ok, sharedElbBudget: { tableName: 'state' } })).sharedElbBudget).toEqual({ tableName: 'state', fallbackDivisor: 4 });
    expect(parseRuntimeConfig(JSON.stringify({ ...ok, sharedElbBudget: { tableName: 'state', fallbackDivisor: 2 } })).sharedElbBudget).toEqual({ tableName: 'state', fallbackDivisor: 2 });
    expect(parseRuntimeConfig(JSON.stringify(ok)).sharedElbBudget).toBeUndefined();
    // The catalog's table unless named: the stack writes the name once.
    const catalog = { tableName: 'state', headerName: 'X-Agent-Capability', pathPrefix: 'agents' };
    expect(parseRuntimeConfig(JSON.stringify({ ...ok, catalog, sharedElbBudget: {} })).sharedElbBudget).toEqual({ tableName: 'state', fallbackDivisor: 4 });
  });

  it.each([
    [undefined, `${CONFIG_ENV}: is not set`],
    [JSON.stringify({ ...ok, sharedElbBudget: 'state' }), `${CONFIG_ENV}: sharedElbBudget must be an object { tableName?, fallbackDivisor? }, got "state"`],
    [JSON.stringify({ ...ok, sharedElbBudget: { tableName: '' } }), `${CONFIG_ENV}: sharedElbBudget.tableName must be a non-empty string (or the catalog's, when there is one), got ""`],
    [JSON.stringify({ ...ok, sharedElbBudget: {} }), `${CONFIG_ENV}: sharedElbBudget.tableName must be a non-empty string (or the catalog's, when there is one), got undefined`],
    [JSON.stringify({ ...ok, sharedElbBudget: { tableName: 's', fallbackDivisor: 0 } }), `${CONFIG_ENV}: sharedElbBudget.fallbackDivisor 0 must be a whole number in 1–100`],
    ['{', `${CONFIG_ENV}: is not valid JSON`],
    [JSON.stringify({ ...ok, tableName: '' }), `${CONFIG_ENV}: tableName must be a non-empty string, got ""`],
    [JSON.stringify({ ...ok, capabilities: { Vision: { targetGroupArn: 'a' } } }), `${CONFIG_ENV}: capability name "Vision" must match ^[a-z0-9][a-z0-9_-]{0,62}$`],
    [JSON.stringify({ ...ok, capabilities: { v: { targetGroupArn: 'a', targetType: 'lambda' } } }), `${CONFIG_ENV}: capability "v" targetType "lambda" must be "ip" or "instance"`],
    [JSON.stringify({ ...ok, allowedCidrs: ['10.0.0.0/33'] }), `${CONFIG_ENV}: allowedCidrs: invalid CIDR "10.0.0.0/33": expected <IPv4>/<0-32> or <IPv6>/<0-128>`],
    [JSON.stringify({ ...ok, maxLeaseTtlSeconds: 4 }), `${CONFIG_ENV}: maxLeaseTtlSeconds 4 must be an integer in 5–86400`],
    [JSON.stringify({ ...ok, targetQuota: 0 }), `${CONFIG_ENV}: targetQuota 0 must be an integer in 1–100000`],
    [JSON.stringify({ ...ok, ports: { ocr: '80' } }), `${CONFIG_ENV}: ports names "ocr", which is not among capabilities`],
    [JSON.stringify({ ...ok, ports: { vision: '80-70' } }), `${CONFIG_ENV}: capability "vision" ports "80-70": port range 80-70 runs backwards`],
    [JSON.stringify({ ...ok, admission: { vpcId: 'vpc-1', securityGroups: [] } }), `${CONFIG_ENV}: admission.securityGroups must be a non-empty array of security group ids (sg-…), got []`],
    [JSON.stringify({ ...ok, safetyValveShare: 0 }), `${CONFIG_ENV}: safetyValveShare 0 must be a number in (0, 1]`],
    [JSON.stringify({ ...ok, reconcileRepeatSeconds: 900 }), `${CONFIG_ENV}: reconcileRepeatSeconds 900 must be an integer in 0–600`],
  ])('rejects %s with a message naming the value', (text, message) => {
    expect(() => parseRuntimeConfig(text)).toThrow(ConfigError);
    expect(() => parseRuntimeConfig(text)).toThrow(message);
  });
});

describe('parseRuntimeSettings: capabilities to discover on the load balancer', () => {
  const compact = { tableName: 't', loadBalancerArn: 'arn:lb', capabilities: ['vision', 'speech'] };

  it('keeps the names and the load balancer, and needs discovery before use', () => {
    const settings = parseRuntimeSettings(JSON.stringify(compact));
    expect(settings.discover).toEqual({ loadBalancerArn: 'arn:lb', capabilities: ['vision', 'speech'] });
    expect(settings.capabilities).toEqual({});
    expect(() => parseRuntimeConfig(JSON.stringify(compact))).toThrow('lists capabilities to discover on a load balancer');
  });

  it('keeps the deployment\'s other load balancers', () => {
    expect(parseRuntimeSettings(JSON.stringify({ ...compact, moreLoadBalancerArns: ['arn:lb2', 'arn:lb3'] })).discover).toEqual({ loadBalancerArn: 'arn:lb', moreLoadBalancerArns: ['arn:lb2', 'arn:lb3'], capabilities: ['vision', 'speech'] });
  });

  it('completes with the discovered groups, and names any capability left without one', () => {
    const settings = parseRuntimeSettings(JSON.stringify(compact));
    const vision = { targetGroupArn: 'arn:tg/v', targetType: 'ip' as const };
    const speech = { targetGroupArn: 'arn:tg/s', targetType: 'instance' as const };
    expect(completeRuntimeConfig(settings, { vision, speech }).routing.capabilities).toEqual({ vision, speech });
    expect(() => completeRuntimeConfig(settings, { vision })).toThrow(`${CONFIG_ENV}: no target group found for "speech"`);
  });

  it.each([
    [{ ...compact, loadBalancerArn: undefined }, 'a capabilities list needs exactly one of loadBalancerArn or listenerArn: the load balancer their target groups are found on'],
    [{ ...compact, capabilities: ['vision', 'Vision'] }, 'capability name "Vision" must match'],
    [{ ...compact, capabilities: ['vision', 'vision'] }, 'capabilities lists a name twice'],
    [{ ...compact, moreLoadBalancerArns: 'arn:lb2' }, 'moreLoadBalancerArns must be a list of load balancer ARNs, got "arn:lb2"'],
    [{ ...compact, moreLoadBalancerArns: [''] }, 'moreLoadBalancerArns must be a list of load balancer ARNs, got [""]'],
    [{ ...compact, loadBalancerArn: undefined, listenerArn: 'arn:l', moreLoadBalancerArns: ['arn:lb2'] }, 'moreLoadBalancerArns needs loadBalancerArn'],
  ])('rejects %j', (config, message) => {
    expect(() => parseRuntimeSettings(JSON.stringify(config))).toThrow(message);
  });
});

describe('parseRuntimeSettings: the capability catalog', () => {
  const withCatalog = {
    tableName: 't',
    loadBalancerArn: 'arn:lb',
    capabilities: ['vision', 'vision-canary', 'speech'],
    variantWeights: { 'vision-canary': 10 },
    catalog: { tableName: 'state', headerName: 'X-Agent-Capability', pathPrefix: 'agents', attributes: ['model'] },
  };
  const route = (n: string) => ({ targetGroupArn: `arn:tg/${n}`, targetType: 'ip' as const });

  it('completes the catalog with each capability\'s policy and variants from its groups\' tags', () => {
    const settings = parseRuntimeSettings(JSON.stringify(withCatalog));
    const config = completeRuntimeConfig(settings, { vision: route('v'), 'vision-canary': route('c'), speech: route('s') }, [
      { capability: 'vision', tags: { 'agent-lb:algorithm': 'round_robin', 'agent-lb:stickiness': 'lb_cookie' } },
      { capability: 'vision-canary', tags: { 'agent-lb:variant-of': 'vision', 'agent-lb:variant-weight': '10' } },
      { capability: 'speech', tags: {} },
    ]);
    expect(config.catalog).toEqual({
      tableName: 'state',
      headerName: 'X-Agent-Capability',
      pathPrefix: 'agents',
      attributes: ['model'],
      capabilities: {
        vision: { algorithm: 'round_robin', stickiness: 'lb_cookie', variants: [{ name: 'canary', capability: 'vision-canary', weight: 10 }] },
        speech: { algorithm: 'least_outstanding_requests', stickiness: 'off', variants: [] },
      },
    });
  });

  it('gives the catalog the resolved hosts of its own capabilities (not of variants, which are listed under theirs); none when unresolved', () => {
    const settings = parseRuntimeSettings(JSON.stringify(withCatalog));
    const found = { vision: route('v'), 'vision-canary': route('c'), speech: route('s') };
    const hosts = { vision: 'lb-1.elb.amazonaws.com', 'vision-canary': 'lb-1.elb.amazonaws.com' };
    expect(completeRuntimeConfig(settings, found, [], hosts).catalog?.hosts).toEqual({ vision: 'lb-1.elb.amazonaws.com' });
    expect(completeRuntimeConfig(settings, found, [], {}).catalog?.hosts).toEqual({});
    expect(completeRuntimeConfig(settings, found).catalog).not.toHaveProperty('hosts');
  });

  it('has no catalog unless configured', () => {
    const { catalog: _catalog, ...without } = withCatalog;
    expect(parseRuntimeSettings(JSON.stringify(without)).catalog).toBeUndefined();
  });

  it.each([
    [{ tableName: '' }, 'catalog.tableName must be a non-empty string, got ""'],
    [{ headerName: 'X Agent' }, 'catalog.headerName must be an HTTP header name, got "X Agent"'],
    [{ pathPrefix: '/agents' }, 'catalog.pathPrefix must be path segments without leading or trailing "/", got "/agents"'],
    [{ attributes: ['model', 'bad key'] }, 'catalog.attributes: "bad key" must match'],
    [{ attributes: Array.from({ length: 11 }, (_, i) => `k${i}`) }, 'catalog.attributes must be a list of at most 10 metadata keys'],
  ])('refuses catalog %j', (patch, message) => {
    expect(() => parseRuntimeSettings(JSON.stringify({ ...withCatalog, catalog: { ...withCatalog.catalog, ...patch } }))).toThrow(message);
  });
});
