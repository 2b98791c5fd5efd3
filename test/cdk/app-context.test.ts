import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Duration } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { afterAll, beforeAll, describe, expect, it, test } from 'vitest';
import { CONTEXT_KEY, addAgentLbStack, parseAgentLbContext, readAgentLbContext, stackEnvironment, stackPropsFromContext } from '../../lib/constructs';
import { ConfigError } from '../../lib/core/errors';
import { appWithoutBundling, cdkJsonContext, validationError } from './fixtures';

describe('the cdk.json context', () => {
  it('defines three example capabilities, so `cdk synth` shows a complete stack', () => {
    const ctx = parseAgentLbContext(cdkJsonContext()[CONTEXT_KEY]);
    expect(ctx.capabilities.map((c) => c.name)).toEqual(['vision', 'speech', 'search']);
    expect(ctx.vpcId).toBeUndefined();
    expect(stackEnvironment(ctx, {})).toBeUndefined();
  });

  it('turns seconds and names into construct props', () => {
    const props = stackPropsFromContext(
      parseAgentLbContext({
        capabilities: [{ name: 'gpu', protocol: 'HTTPS', targetType: 'instance', healthCheck: { intervalSeconds: 20, timeoutSeconds: 4 }, slowStartSeconds: 60, priority: 9 }],
        leaseTtlSeconds: 45,
        reconcileIntervalMinutes: 2,
        reconcileRepeatSeconds: 30,
      }),
      {},
    );
    expect(props.capabilities[0]).toMatchObject({
      name: 'gpu',
      protocol: elbv2.ApplicationProtocol.HTTPS,
      targetType: 'instance',
      priority: 9,
    });
    expect(props.capabilities[0].healthCheck?.interval?.toSeconds()).toBe(20);
    expect(props.capabilities[0].slowStart?.toSeconds()).toBe(60);
    expect(props.leaseTtl?.toSeconds()).toBe(45);
    expect(props.registrySync?.reconcileInterval?.toMinutes()).toBe(2);
    expect(props.registrySync?.reconcileRepeat).toEqual(Duration.seconds(30));
  });

  it('accepts the context as a JSON string, as `-c agent-lb=...` passes it', () => {
    const stack = addAgentLbStack(appWithoutBundling({ [CONTEXT_KEY]: '{"stackName":"Agents2","capabilities":[{"name":"ocr"}]}' }), {});
    expect(stack.stackName).toBe('Agents2');
    expect(Object.keys(stack.router.targetGroups)).toEqual(['ocr']);
  });

  it('takes a capability by its name alone, with every setting at its default', () => {
    expect(parseAgentLbContext({ capabilities: ['vision', { name: 'ocr', port: 8080 }] }).capabilities).toEqual([{ name: 'vision' }, { name: 'ocr', port: 8080 }]);
  });

  test.each<[string, unknown, string]>([
    ['a missing context', undefined, 'context "agent-lb" is missing: add it to cdk.json or pass -c agent-lb=\'{"capabilities":[...]}\''],
    ['invalid JSON', '{capabilities', 'context "agent-lb" is not valid JSON: {capabilities'],
    ['a list', [], 'context "agent-lb" must be an object, got []'],
    ['no capabilities', {}, 'agent-lb.capabilities is required: a list of names or { "name": ... } objects'],
    ['a misspelt key', { capabilites: [] }, 'agent-lb.capabilites is not a known setting; known: stackName, account, region, capabilities, vpcId, vpcCidr, maxAzs, natGateways, internetFacing, certificateArn, accessLogsBucketName, accessLogsPrefix, allowedCidrs, ingressCidrs, leaseTtlSeconds, headerName, variantHeaderName, pathPrefix, tableRemovalPolicy, safetyValveShare, reconcileIntervalMinutes, reconcileRepeatSeconds, batchSize, maxBatchingWindowSeconds, retryAttempts, maxRecordAgeSeconds, maxLeaseTtlSeconds, targetQuota, agentSecurityGroupId, catalog, catalogAttributes, loadBalancerQuotas, hostedZoneId, zoneName, dnsSubdomain'],
    ['a misspelt quota', { capabilities: ['vision'], loadBalancerQuotas: { rulesPerAlb: 200 } }, 'agent-lb.loadBalancerQuotas.rulesPerAlb is not a known setting; known: targetGroupsPerLoadBalancer, rulesPerLoadBalancer, targetsPerLoadBalancer, targetsPerTargetGroup, loadBalancersPerRegion'],
    ['a quota that is not a number', { capabilities: ['vision'], loadBalancerQuotas: { rulesPerLoadBalancer: '200' } }, 'agent-lb.loadBalancerQuotas.rulesPerLoadBalancer must be a number, got "200"'],
    ['a capability that is neither a name nor an object', { capabilities: ['vision', 7] }, 'agent-lb.capabilities must be a list of objects, got [{"name":"vision"},7]'],
    ['a capability without a name', { capabilities: [{ port: 80 }] }, 'agent-lb.capabilities[0].name is required'],
    ['a port as a string', { capabilities: [{ name: 'vision', port: '80' }] }, 'agent-lb.capabilities[0].port must be a number, got "80"'],
    ['an unknown target type', { capabilities: [{ name: 'vision', targetType: 'lambda' }] }, 'agent-lb.capabilities[0].targetType must be one of "ip", "instance", got "lambda"'],
    ['a duration key without unit', { capabilities: [{ name: 'vision', healthCheck: { interval: 10 } }] }, 'agent-lb.capabilities[0].healthCheck.interval is not a known setting; known: path, port, healthyThresholdCount, unhealthyThresholdCount, intervalSeconds, timeoutSeconds, healthyHttpCodes'],
    ['internetFacing as a string', { capabilities: [], internetFacing: 'yes' }, 'agent-lb.internetFacing must be a boolean, got "yes"'],
    ['a CIDR list as a string', { capabilities: [], allowedCidrs: '10.0.0.0/8' }, 'agent-lb.allowedCidrs must be a list of strings, got "10.0.0.0/8"'],
    ['an unknown removal policy', { capabilities: [], tableRemovalPolicy: 'RETAIN' }, 'agent-lb.tableRemovalPolicy must be one of "retain", "destroy", "snapshot", got "RETAIN"'],
    ['a negative slow start', { capabilities: [{ name: 'vision', slowStartSeconds: -30 }] }, 'agent-lb.capabilities[0].slowStartSeconds must be 0 or more seconds, got -30'],
    ['a negative stickiness duration', { capabilities: [{ name: 'vision', stickiness: { type: 'lb_cookie', durationSeconds: -5 } }] }, 'agent-lb.capabilities[0].stickiness.durationSeconds must be 0 or more seconds, got -5'],
    ['a negative variant stickiness', { capabilities: [{ name: 'vision', variantStickinessSeconds: -1 }] }, 'agent-lb.capabilities[0].variantStickinessSeconds must be 0 or more seconds, got -1'],
    ['a cookie name on lb_cookie', { capabilities: [{ name: 'vision', stickiness: { type: 'lb_cookie', cookieName: 'session' } }] }, 'agent-lb.capabilities[0].stickiness.cookieName is only for "app_cookie" (the load balancer names its own cookie with "lb_cookie"), got "session"'],
  ])('rejects %s', (_, raw, message) => {
    expect(() => parseAgentLbContext(raw)).toThrow(new ConfigError(message));
  });

  it('needs an account and region for a VPC lookup, from the context or the CLI environment', () => {
    const ctx = parseAgentLbContext({ capabilities: [], vpcId: 'vpc-0123' });
    expect(() => stackEnvironment(ctx, {})).toThrow(
      new ConfigError('agent-lb.vpcId needs an account and region: set agent-lb.account and agent-lb.region, or run with AWS credentials and a default region'),
    );
    expect(stackEnvironment(ctx, { CDK_DEFAULT_ACCOUNT: '123456789012', CDK_DEFAULT_REGION: 'eu-west-1' })).toEqual({ account: '123456789012', region: 'eu-west-1' });
    expect(stackEnvironment({ ...ctx, account: '210987654321', region: 'us-east-2' }, {})).toEqual({ account: '210987654321', region: 'us-east-2' });
  });

  it('packs capabilities onto load balancers by the expected targets and raised quotas it names (issue 22), and refuses what breaks them', () => {
    const capabilities = ['a', 'b', 'c'].map((name) => ({ name, expectedTargets: 600 }));
    const stack = addAgentLbStack(appWithoutBundling({ [CONTEXT_KEY]: { capabilities } }), {});
    // 600 targets each, 1 000 a load balancer by default: one capability per load balancer.
    expect(stack.loadBalancers).toHaveLength(3);
    const raised = addAgentLbStack(appWithoutBundling({ [CONTEXT_KEY]: { capabilities, loadBalancerQuotas: { targetsPerLoadBalancer: 1500 } } }), {});
    expect(raised.loadBalancers).toHaveLength(2);
    const props = stackPropsFromContext(parseAgentLbContext({ capabilities, loadBalancerQuotas: { rulesPerLoadBalancer: 200 } }), {});
    expect(props.expectedTargets).toEqual({ a: 600, b: 600, c: 600 });
    expect(props.loadBalancerQuotas).toEqual({ rulesPerLoadBalancer: 200 });
    expect(() => addAgentLbStack(appWithoutBundling({ [CONTEXT_KEY]: { capabilities: [{ name: 'big', expectedTargets: 1500 }] } }), {})).toThrow(/big.*1500.*1000|1500.*big/);
  });

  it('reports range errors through the constructs, quoting the value', () => {
    const app = appWithoutBundling({ [CONTEXT_KEY]: { capabilities: [{ name: 'vision', deregistrationDelaySeconds: 4000 }] } });
    expect(() => addAgentLbStack(app, {})).toThrow(validationError('Capability "vision": deregistration delay 4000 seconds is out of range 0–3600 seconds'));
  });
});

describe('configuration from the CDK command line', () => {
  let dir: string;
  beforeAll(() => {
    // A project whose cdk.json holds the object `-c agent-lb='{...}'` is merged over.
    dir = mkdtempSync(join(tmpdir(), 'agent-lb-context-'));
    writeFileSync(join(dir, 'cdk.json'), JSON.stringify({ context: { [CONTEXT_KEY]: { stackName: 'FromFile', internetFacing: false, capabilities: [{ name: 'vision', port: 8080 }] } } }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** What `cdk synth -c k=v …` hands the app: cdk.json's context, then each -c as a string value. */
  const read = (cli: Record<string, string>, fromFile: Record<string, unknown> = { capabilities: [{ name: 'vision' }] }) =>
    readAgentLbContext(new App({ context: { [CONTEXT_KEY]: fromFile, ...cli } }), { cdkJsonDir: dir });

  it('-c agent-lb.<setting>=<value> sets one setting, read as its kind', () => {
    expect(read({ 'agent-lb.internetFacing': 'true' }).internetFacing).toBe(true);
    expect(read({ 'agent-lb.maxAzs': '3', 'agent-lb.safetyValveShare': '0.25' })).toMatchObject({ maxAzs: 3, safetyValveShare: 0.25 });
    expect(read({ 'agent-lb.allowedCidrs': '10.0.0.0/8, 192.168.0.0/16' }).allowedCidrs).toEqual(['10.0.0.0/8', '192.168.0.0/16']);
    expect(read({ 'agent-lb.allowedCidrs': '["10.0.0.0/8"]' }).allowedCidrs).toEqual(['10.0.0.0/8']);
    expect(read({ 'agent-lb.capabilities': 'ocr,translate' }).capabilities).toEqual([{ name: 'ocr' }, { name: 'translate' }]);
    expect(read({ 'agent-lb.capabilities': '[{"name":"ocr","port":9000}]' }).capabilities).toEqual([{ name: 'ocr', port: 9000 }]);
    expect(read({ 'agent-lb.stackName': 'Agents2' }).stackName).toBe('Agents2');
  });

  it('takes the routing policy of the README from the command line, down to target group attributes and weighted rules', () => {
    // The README's example, as the shell hands it to cdk
    const ctx = read({
      'agent-lb.capabilities':
        '[{"name":"chat","stickiness":{"type":"lb_cookie","durationSeconds":1800}},{"name":"vision","variants":[{"name":"canary","weight":10}]},{"name":"search","algorithm":"weighted_random","anomalyMitigation":true}]',
      'agent-lb.variantHeaderName': 'X-Canary',
    });
    const stack = addAgentLbStack(appWithoutBundling({ [CONTEXT_KEY]: ctx }), {});
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      TargetGroupAttributes: Match.arrayWith([{ Key: 'stickiness.lb_cookie.duration_seconds', Value: '1800' }]),
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      TargetGroupAttributes: Match.arrayWith([{ Key: 'load_balancing.algorithm.anomaly_mitigation', Value: 'on' }]),
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
      Conditions: Match.arrayWith([{ Field: 'http-header', HttpHeaderConfig: { HttpHeaderName: 'X-Canary', Values: ['canary'] } }]),
    });
    expect(stack.router.routes.find((r) => r.name === 'vision')?.stableWeight).toBe(90);
    expect(Object.keys(stack.router.targetGroups)).toEqual(['chat', 'vision', 'vision-canary', 'search']);
  });

  test.each<[string, Record<string, string>, string]>([
    ['stickiness without a type', { 'agent-lb.capabilities': '[{"name":"chat","stickiness":{"durationSeconds":60}}]' }, 'agent-lb.capabilities[0].stickiness.type is required: "lb_cookie" or "app_cookie"'],
    ['a variant without a weight', { 'agent-lb.capabilities': '[{"name":"vision","variants":[{"name":"canary"}]}]' }, 'agent-lb.capabilities[0].variants[0].weight is required'],
    ['an unknown algorithm', { 'agent-lb.capabilities': '[{"name":"vision","algorithm":"fastest"}]' }, 'agent-lb.capabilities[0].algorithm must be one of "round_robin", "least_outstanding_requests", "weighted_random", got "fastest"'],
  ])('refuses %s in one line', (_, cli, message) => {
    expect(() => read(cli)).toThrow(new ConfigError(message));
  });

  it('-c agent-lb.<setting> overrides cdk.json and leaves its other settings', () => {
    expect(read({ 'agent-lb.internetFacing': 'true' }, { stackName: 'S', internetFacing: false, capabilities: [{ name: 'vision' }] })).toEqual({
      stackName: 'S',
      internetFacing: true,
      capabilities: [{ name: 'vision' }],
    });
  });

  it("-c agent-lb='{...}' is merged over cdk.json's object, setting by setting", () => {
    // The CLI's -c replaces the cdk.json value in the app's context: the app reads the file itself.
    const app = new App({ context: { [CONTEXT_KEY]: '{"internetFacing":true,"stackName":"Cli"}' } });
    expect(readAgentLbContext(app, { cdkJsonDir: dir })).toEqual({ stackName: 'Cli', internetFacing: true, capabilities: [{ name: 'vision', port: 8080 }] });
  });

  test.each<[string, Record<string, string>, string]>([
    ['a boolean that is not one', { 'agent-lb.internetFacing': 'yes' }, 'agent-lb.internetFacing must be true or false, got "yes"'],
    ['a number that is not one', { 'agent-lb.maxAzs': 'three' }, 'agent-lb.maxAzs must be a number, got "three"'],
    ['broken JSON for a list of objects', { 'agent-lb.capabilities': '[{"name":' }, 'agent-lb.capabilities must be JSON here, got "[{\\"name\\":"'],
    [
      'a misspelt setting',
      { 'agent-lb.internetfacing': 'true' },
      '-c agent-lb.internetfacing: "internetfacing" is not a known setting; known: stackName, account, region, capabilities, vpcId, vpcCidr, maxAzs, natGateways, internetFacing, certificateArn, accessLogsBucketName, accessLogsPrefix, allowedCidrs, ingressCidrs, leaseTtlSeconds, headerName, variantHeaderName, pathPrefix, tableRemovalPolicy, safetyValveShare, reconcileIntervalMinutes, reconcileRepeatSeconds, batchSize, maxBatchingWindowSeconds, retryAttempts, maxRecordAgeSeconds, maxLeaseTtlSeconds, targetQuota, agentSecurityGroupId, catalog, catalogAttributes, loadBalancerQuotas, hostedZoneId, zoneName, dnsSubdomain',
    ],
    ['an enum value it does not know', { 'agent-lb.tableRemovalPolicy': 'forever' }, 'agent-lb.tableRemovalPolicy must be one of "retain", "destroy", "snapshot", got "forever"'],
  ])('refuses %s with a ConfigError naming it', (_, cli, message) => {
    expect(() => read(cli)).toThrow(new ConfigError(message));
  });

  it('builds the stack cdk synth would from dotted settings alone', () => {
    const stack = addAgentLbStack(appWithoutBundling({ 'agent-lb.capabilities': 'ocr', 'agent-lb.stackName': 'OnlyCli' }), {}, { cdkJsonDir: dir });
    expect(stack.stackName).toBe('OnlyCli');
    expect(Object.keys(stack.router.targetGroups)).toEqual(['ocr']);
  });
});
