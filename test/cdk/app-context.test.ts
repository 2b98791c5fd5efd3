import { Duration } from 'aws-cdk-lib';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { describe, expect, it, test } from 'vitest';
import { CONTEXT_KEY, addAgentLbStack, parseAgentLbContext, stackEnvironment, stackPropsFromContext } from '../../lib/constructs';
import { ConfigError } from '../../lib/core/errors';
import { appWithoutBundling, cdkJsonContext } from './fixtures';

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

  test.each<[string, unknown, string]>([
    ['a missing context', undefined, 'context "agent-lb" is missing: add it to cdk.json or pass -c agent-lb=\'{"capabilities":[...]}\''],
    ['invalid JSON', '{capabilities', 'context "agent-lb" is not valid JSON: {capabilities'],
    ['a list', [], 'context "agent-lb" must be an object, got []'],
    ['no capabilities', {}, 'agent-lb.capabilities is required: a list of { "name": ... } objects'],
    ['a misspelt key', { capabilites: [] }, 'agent-lb.capabilites is not a known setting; known: stackName, account, region, capabilities, vpcId, vpcCidr, maxAzs, natGateways, internetFacing, certificateArn, accessLogsBucketName, accessLogsPrefix, allowedCidrs, ingressCidrs, leaseTtlSeconds, headerName, pathPrefix, tableRemovalPolicy, safetyValveShare, reconcileIntervalMinutes, reconcileRepeatSeconds, batchSize, maxBatchingWindowSeconds, retryAttempts, maxRecordAgeSeconds'],
    ['capabilities as names', { capabilities: ['vision'] }, 'agent-lb.capabilities must be a list of objects, got ["vision"]'],
    ['a capability without a name', { capabilities: [{ port: 80 }] }, 'agent-lb.capabilities[0].name is required'],
    ['a port as a string', { capabilities: [{ name: 'vision', port: '80' }] }, 'agent-lb.capabilities[0].port must be a number, got "80"'],
    ['an unknown target type', { capabilities: [{ name: 'vision', targetType: 'lambda' }] }, 'agent-lb.capabilities[0].targetType must be one of "ip", "instance", got "lambda"'],
    ['a duration key without unit', { capabilities: [{ name: 'vision', healthCheck: { interval: 10 } }] }, 'agent-lb.capabilities[0].healthCheck.interval is not a known setting; known: path, port, healthyThresholdCount, unhealthyThresholdCount, intervalSeconds, timeoutSeconds, healthyHttpCodes'],
    ['internetFacing as a string', { capabilities: [], internetFacing: 'yes' }, 'agent-lb.internetFacing must be a boolean, got "yes"'],
    ['a CIDR list as a string', { capabilities: [], allowedCidrs: '10.0.0.0/8' }, 'agent-lb.allowedCidrs must be a list of strings, got "10.0.0.0/8"'],
    ['an unknown removal policy', { capabilities: [], tableRemovalPolicy: 'RETAIN' }, 'agent-lb.tableRemovalPolicy must be one of "retain", "destroy", "snapshot", got "RETAIN"'],
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

  it('reports range errors through the constructs, quoting the value', () => {
    const app = appWithoutBundling({ [CONTEXT_KEY]: { capabilities: [{ name: 'vision', deregistrationDelaySeconds: 4000 }] } });
    expect(() => addAgentLbStack(app, {})).toThrow(new Error('Capability "vision": deregistration delay 4000 seconds is out of range 0–3600 seconds'));
  });
});
