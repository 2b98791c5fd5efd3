import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import {
  DescribeListenersCommand,
  DescribeRulesCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  ModifyRuleCommand,
  type Rule,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { RECONCILE_METRICS } from '../../lib/core/metric-names';
import { parseRuntimeSettings, completeRuntimeConfig } from '../../lib/core/runtime-config';
import type { RuntimeConfig } from '../../lib/core/runtime-config';
import { createReconcileHandler } from '../../lib/handlers/reconcile-handler';
import { ALLOWED_CIDRS, captureMetrics, leaseItem, silentLogger, T0, TG } from '../support/lease-fixtures';

/**
 * The reconcile Lambda's guard for empty variants, through the handler as deployed: the weighted
 * rules as DescribeRules shows them, the groups' health as DescribeTargetHealth shows it, and the
 * ModifyRule it sends.
 */
const elbMock = mockClient(ElasticLoadBalancingV2Client);
const ddbMock = mockClient(DynamoDBClient);
const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };
const elbClient = new ElasticLoadBalancingV2Client({ region: 'us-east-1', credentials, maxAttempts: 1 });
const dynamoClient = new DynamoDBClient({ region: 'us-east-1', credentials });

const CANARY = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/vision-canary/4';
const LB = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/agents/50dc6c495c0c9188';
const LISTENER = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/agents/50dc6c495c0c9188/f2f7dc8efc522ab2';
const RULE = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/agents/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee';

const config: RuntimeConfig = {
  tableName: 'leases',
  routing: {
    capabilities: { vision: { targetGroupArn: TG.vision, targetType: 'ip' }, 'vision-canary': { targetGroupArn: CANARY, targetType: 'ip' } },
    allowedCidrs: ALLOWED_CIDRS,
  },
  safetyValveShare: 0.5,
  reconcileRepeatSeconds: 0,
  variants: { weights: { 'vision-canary': 10 }, loadBalancerArn: LB },
};

/** The header rule as the router deploys it: stable 90, canary 10, group stickiness on. */
function weightedRule(stable: number, canary: number): Rule {
  return {
    RuleArn: RULE,
    Priority: '12',
    IsDefault: false,
    Conditions: [{ Field: 'http-header', HttpHeaderConfig: { HttpHeaderName: 'X-Agent-Capability', Values: ['vision'] } }],
    Actions: [
      {
        Type: 'forward',
        Order: 1,
        ForwardConfig: {
          TargetGroups: [
            { TargetGroupArn: TG.vision, Weight: stable },
            { TargetGroupArn: CANARY, Weight: canary },
          ],
          TargetGroupStickinessConfig: { Enabled: true, DurationSeconds: 3600 },
        },
      },
    ],
  };
}

let health: Record<string, string[]>;
let rules: Rule[];

beforeEach(() => {
  elbMock.reset();
  ddbMock.reset();
  health = { [TG.vision]: ['healthy'], [CANARY]: [] };
  rules = [weightedRule(90, 10), { RuleArn: `${RULE}-default`, IsDefault: true, Actions: [{ Type: 'fixed-response' }] }];
  elbMock.on(DescribeTargetHealthCommand).callsFake(async (input: { TargetGroupArn: string }) => ({
    TargetHealthDescriptions: (health[input.TargetGroupArn] ?? []).map((State, i) => ({ Target: { Id: `10.0.${input.TargetGroupArn === CANARY ? 1 : 0}.${i + 1}`, Port: 8080 }, TargetHealth: { State } })),
  }));
  elbMock.on(DescribeListenersCommand).resolves({ Listeners: [{ ListenerArn: LISTENER, LoadBalancerArn: LB }] });
  elbMock.on(DescribeRulesCommand).callsFake(async () => ({ Rules: rules }));
  elbMock.on(ModifyRuleCommand).resolves({});
  // Leases for every target the groups hold, so the pass itself changes no target.
  ddbMock.on(ScanCommand).callsFake(async () => {
    const items = Object.entries(health).flatMap(([arn, states]) =>
      states.map((_, i) => leaseItem({ address: `10.0.${arn === CANARY ? 1 : 0}.${i + 1}`, capabilities: [arn === CANARY ? 'vision-canary' : 'vision'] })),
    );
    return { Items: items, Count: items.length };
  });
});

function handler() {
  const emf = captureMetrics();
  return { run: createReconcileHandler({ config, elbClient, dynamoClient, logger: silentLogger(), metrics: emf.metrics, now: () => T0 * 1000 }), emf };
}

describe('reconcile holds an empty variant out of its weighted rules', () => {
  it('sets an empty canary to weight 0 and gives its share to the stable group, keeping the rule\'s group stickiness', async () => {
    const { run, emf } = handler();
    const [report] = await run();
    expect(report.variantsHeldOut).toEqual(['vision-canary']);
    expect(report.variantRuleChanges).toBe(1);
    expect(elbMock).toHaveReceivedCommandWith(DescribeListenersCommand, { LoadBalancerArn: LB });
    expect(elbMock).toHaveReceivedCommandTimes(ModifyRuleCommand, 1);
    expect(elbMock).toHaveReceivedCommandWith(ModifyRuleCommand, {
      RuleArn: RULE,
      Actions: [
        {
          Type: 'forward',
          Order: 1,
          ForwardConfig: {
            TargetGroups: [
              { TargetGroupArn: TG.vision, Weight: 100 },
              { TargetGroupArn: CANARY, Weight: 0 },
            ],
            TargetGroupStickinessConfig: { Enabled: true, DurationSeconds: 3600 },
          },
        },
      ],
    });
    expect(emf.last(RECONCILE_METRICS.variantsHeldOut)).toBe(1);
  });

  it.each([['initial'], ['unhealthy'], ['draining']])('keeps it out while its only target is %s', async (state) => {
    health[CANARY] = [state];
    rules = [weightedRule(100, 0)];
    const [report] = await handler().run();
    expect(report.variantsHeldOut).toEqual(['vision-canary']);
    expect(elbMock).toHaveReceivedCommandTimes(ModifyRuleCommand, 0);
  });

  it('puts the configured weight back once the canary has a healthy target', async () => {
    health[CANARY] = ['unhealthy', 'healthy'];
    rules = [weightedRule(100, 0)];
    const [report] = await handler().run();
    expect(report.variantsHeldOut).toEqual([]);
    expect(elbMock).toHaveReceivedCommandWith(ModifyRuleCommand, {
      RuleArn: RULE,
      Actions: [expect.objectContaining({ ForwardConfig: expect.objectContaining({ TargetGroups: [{ TargetGroupArn: TG.vision, Weight: 90 }, { TargetGroupArn: CANARY, Weight: 10 }] }) })],
    });
  });

  it('sends nothing when the weights already agree', async () => {
    health[CANARY] = ['healthy'];
    const [report] = await handler().run();
    expect(report.variantRuleChanges).toBe(0);
    expect(elbMock).toHaveReceivedCommandTimes(ModifyRuleCommand, 0);
  });

  it('reports a refused ModifyRule as an error of the pass, whose repairs still run', async () => {
    elbMock.on(ModifyRuleCommand).rejects(Object.assign(new Error('User is not authorized to perform: elasticloadbalancing:ModifyRule'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }));
    const [report] = await handler().run();
    expect(report.variantRuleChanges).toBe(0);
    expect(report.errors.map((e) => [e.code, e.targetGroupArn, e.awsErrorName])).toEqual([['ELB_PERMANENT', RULE, 'AccessDenied']]);
  });

  it('reads no rules when no variant is configured', async () => {
    const run = createReconcileHandler({ config: { ...config, variants: undefined }, elbClient, dynamoClient, logger: silentLogger(), metrics: captureMetrics().metrics, now: () => T0 * 1000 });
    const [report] = await run();
    expect(report.variantsHeldOut).toEqual([]);
    expect(elbMock).toHaveReceivedCommandTimes(DescribeRulesCommand, 0);
  });
});

describe('AGENT_LB_CONFIG variantWeights', () => {
  const base = { tableName: 'leases', loadBalancerArn: LB, capabilities: ['vision', 'vision-canary'] };

  it('becomes the variants the reconcile pass guards, on the load balancer the groups are found on', () => {
    const settings = parseRuntimeSettings(JSON.stringify({ ...base, variantWeights: { 'vision-canary': 10 } }));
    const found = { vision: { targetGroupArn: TG.vision, targetType: 'ip' as const }, 'vision-canary': { targetGroupArn: CANARY, targetType: 'ip' as const } };
    expect(completeRuntimeConfig(settings, found).variants).toEqual({ weights: { 'vision-canary': 10 }, loadBalancerArn: LB });
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['a weight over 100', { ...base, variantWeights: { 'vision-canary': 101 } }, 'AGENT_LB_CONFIG: variantWeights "vision-canary" 101 must be a whole percent, 0–100'],
    ['a variant that is not a capability', { ...base, variantWeights: { 'vision-next': 5 } }, 'AGENT_LB_CONFIG: variantWeights names "vision-next", which is not among capabilities'],
    [
      'variants without a load balancer to find their rules on',
      { tableName: 'leases', capabilities: { 'vision-canary': { targetGroupArn: CANARY } }, variantWeights: { 'vision-canary': 5 } },
      'AGENT_LB_CONFIG: variantWeights needs loadBalancerArn or listenerArn: where the weighted listener rules are',
    ],
  ])('refuses %s', (_, raw, message) => {
    expect(() => parseRuntimeSettings(JSON.stringify(raw))).toThrow(message);
  });
});
