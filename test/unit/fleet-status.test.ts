import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeTargetHealthCommand, ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { ElbTargets } from '../../lib/aws/elb-targets';
import { LeaseStore } from '../../lib/aws/lease-store';
import { formatAge, renderStatus } from '../../lib/cli/fleet-render';
import { fleetStatus } from '../../lib/registry/fleet-status';
import { FakeLeaseTable } from '../support/fake-lease-table';
import { leaseItem, T0, testConfig, TG } from '../support/lease-fixtures';

const elbMock = mockClient(ElasticLoadBalancingV2Client);
const ddbMock = mockClient(DynamoDBClient);
const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };

beforeEach(() => {
  elbMock.reset();
  ddbMock.reset();
});

describe('agent-lb status counts what is in rotation', () => {
  it('a draining target is not registered: gone for a dead lease, missing (reconcile registers it again) for a live one', async () => {
    // Prepare: vision holds a healthy live target, a draining released one and a draining one whose lease is live again
    new FakeLeaseTable().put(leaseItem({ address: '10.0.0.1' }), leaseItem({ address: '10.0.0.3' })).install(ddbMock);
    elbMock.on(DescribeTargetHealthCommand).resolves({ TargetHealthDescriptions: [] });
    elbMock.on(DescribeTargetHealthCommand, { TargetGroupArn: TG.vision }).resolves({
      TargetHealthDescriptions: [
        { Target: { Id: '10.0.0.1', Port: 8080 }, TargetHealth: { State: 'healthy' } },
        { Target: { Id: '10.0.0.2', Port: 8080 }, TargetHealth: { State: 'draining', Reason: 'Target.DeregistrationInProgress' } },
        { Target: { Id: '10.0.0.3', Port: 8080 }, TargetHealth: { State: 'draining', Reason: 'Target.DeregistrationInProgress' } },
      ],
    });
    const sources = {
      elb: new ElbTargets(new ElasticLoadBalancingV2Client({ region: 'us-east-1', credentials })),
      store: new LeaseStore(new DynamoDBClient({ region: 'us-east-1', credentials }), 'leases'),
      routing: testConfig().routing,
      now: () => T0 * 1000,
    };

    // Act
    const status = await fleetStatus(sources);

    // Assess
    const vision = status.capabilities.find((c) => c.capability === 'vision')!;
    expect(vision).toMatchObject({ liveLeases: 2, registered: 1, draining: 2, missing: ['10.0.0.3:8080'], stale: [] });
    expect(vision.health).toEqual({ healthy: 1, draining: 2 });
    expect(status.drift).toBe(true);
    expect(renderStatus(status)).toMatch(/vision\s+2\s+1\s+healthy=1 draining=2\s+\+10\.0\.0\.3:8080/);
  });
});

describe('agent-lb status shows each target\'s rotation state and its age', () => {
  it('per lease and capability: the state the registry wrote, for how long, and what ELB says now', async () => {
    // Prepare: one lease reported healthy 65 s ago in vision and nothing yet in speech; one expired lease (not shown)
    const reported = {
      ...leaseItem({ address: '10.0.0.1', capabilities: ['vision', 'speech'] }),
      rotation: { M: { vision: { M: { state: { S: 'healthy' }, since: { N: String(T0 * 1000 - 65_000) } } } } },
    };
    new FakeLeaseTable().put(reported, leaseItem({ address: '10.0.0.9', expiresAt: T0 - 5 })).install(ddbMock);
    elbMock.on(DescribeTargetHealthCommand).resolves({ TargetHealthDescriptions: [] });
    elbMock.on(DescribeTargetHealthCommand, { TargetGroupArn: TG.vision }).resolves({
      TargetHealthDescriptions: [{ Target: { Id: '10.0.0.1', Port: 8080 }, TargetHealth: { State: 'healthy' } }],
    });
    const status = await fleetStatus({
      elb: new ElbTargets(new ElasticLoadBalancingV2Client({ region: 'us-east-1', credentials })),
      store: new LeaseStore(new DynamoDBClient({ region: 'us-east-1', credentials }), 'leases'),
      routing: testConfig().routing,
      now: () => T0 * 1000,
    });

    expect(status.rotation).toEqual([
      { target: '10.0.0.1:8080', capability: 'speech', elbState: 'absent' },
      { target: '10.0.0.1:8080', capability: 'vision', state: 'healthy', since: T0 * 1000 - 65_000, ageSeconds: 65, elbState: 'healthy' },
    ]);
    const text = renderStatus(status);
    expect(text).toMatch(/^TARGET\s+CAPABILITY\s+ROTATION\s+FOR\s+ELB NOW$/m);
    expect(text).toMatch(/^10\.0\.0\.1:8080\s+speech\s+unreported\s+-\s+absent$/m);
    expect(text).toMatch(/^10\.0\.0\.1:8080\s+vision\s+healthy\s+1m05s\s+healthy$/m);
  });

  it.each([
    [0, '0s'],
    [59, '59s'],
    [65, '1m05s'],
    [3_600 + 7 * 60, '1h07m'],
    [2 * 86_400 + 3 * 3600, '2d03h'],
  ])('formatAge(%i) = %s', (seconds, text) => expect(formatAge(seconds)).toBe(text));
});

describe('agent-lb status shows why the registry refuses what it refuses', () => {
  it('per target: the reason, the capabilities refused, whether the lease holds it yet, and the message', async () => {
    // Prepare: an unrouted capability already told, an invalid item not yet told, an expired refused lease (not shown)
    const told = {
      ...leaseItem({ address: '10.0.0.2', capabilities: ['ocr', 'vision'] }),
      rejection: { M: { reason: { S: 'unknown-capability' }, message: { S: 'capability "ocr" is not routed by this deployment (known: ec2, speech, vision)' }, since: { N: String(T0 * 1000 - 5_000) }, capabilities: { SS: ['ocr'] } } },
    };
    const invalid = leaseItem({ address: '10.0.0.3' }, { port: { S: '8080' } });
    const forged = leaseItem({ address: '10.0.0.4' }, { target: { S: '\u001b[2Jx' } });
    new FakeLeaseTable().put(told, invalid, forged, leaseItem({ address: '10.0.0.9', capabilities: ['ocr'], expiresAt: T0 - 5 })).install(ddbMock);
    elbMock.on(DescribeTargetHealthCommand).resolves({ TargetHealthDescriptions: [] });

    // Act
    const status = await fleetStatus({
      elb: new ElbTargets(new ElasticLoadBalancingV2Client({ region: 'us-east-1', credentials })),
      store: new LeaseStore(new DynamoDBClient({ region: 'us-east-1', credentials }), 'leases'),
      routing: testConfig().routing,
      now: () => T0 * 1000,
    });

    // Assess
    expect(status.rejections.map((r) => [r.target, r.reason, r.capabilities, r.told])).toEqual([
      ['\u001b[2Jx', 'invalid', undefined, false],
      ['10.0.0.2:8080', 'unknown-capability', ['ocr'], true],
      ['10.0.0.3:8080', 'invalid', undefined, false],
    ]);
    const text = renderStatus(status);
    expect(text).toMatch(/^REFUSED\s+REASON\s+CAPABILITIES\s+TOLD\s+WHY$/m);
    expect(text).toMatch(/^10\.0\.0\.2:8080\s+unknown-capability\s+ocr\s+yes\s+capability "ocr" is not routed by this deployment/m);
    expect(text).toMatch(/^10\.0\.0\.3:8080\s+invalid\s+\(all\)\s+not yet\s+attribute "port" must be Number \(N\), got S$/m);
    expect(text).not.toContain('\u001b');
    expect(text).toContain('\\u001b[2Jx');
  });
});

describe('agent-lb status shows weighted variants', () => {
  const CANARY = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/vision-canary/4';

  it('shows each variant\'s weight, the share the rules give it now, and its live, registered and healthy counts', async () => {
    // Prepare: the canary has one live lease whose target is still unhealthy, so the rules hold it at 0
    new FakeLeaseTable().put(leaseItem({ address: '10.0.0.1' }), leaseItem({ address: '10.0.1.1', capabilities: ['vision-canary'] })).install(ddbMock);
    elbMock.on(DescribeTargetHealthCommand).resolves({ TargetHealthDescriptions: [] });
    elbMock.on(DescribeTargetHealthCommand, { TargetGroupArn: TG.vision }).resolves({ TargetHealthDescriptions: [{ Target: { Id: '10.0.0.1', Port: 8080 }, TargetHealth: { State: 'healthy' } }] });
    elbMock.on(DescribeTargetHealthCommand, { TargetGroupArn: CANARY }).resolves({
      TargetHealthDescriptions: [{ Target: { Id: '10.0.1.1', Port: 8080 }, TargetHealth: { State: 'unhealthy', Reason: 'Target.ResponseCodeMismatch' } }],
    });
    const routing = testConfig().routing;
    const sources = {
      elb: new ElbTargets(new ElasticLoadBalancingV2Client({ region: 'us-east-1', credentials })),
      store: new LeaseStore(new DynamoDBClient({ region: 'us-east-1', credentials }), 'leases'),
      routing: { ...routing, capabilities: { vision: routing.capabilities.vision, 'vision-canary': { targetGroupArn: CANARY, targetType: 'ip' as const } } },
      now: () => T0 * 1000,
      variants: { [CANARY]: { variantOf: 'vision', weight: 10 } },
      weightedRules: [{ ruleArn: 'rule/header', groups: [{ targetGroupArn: TG.vision, weight: 100 }, { targetGroupArn: CANARY, weight: 0 }] }],
    };

    // Act
    const status = await fleetStatus(sources);

    // Assess
    const byName = Object.fromEntries(status.capabilities.map((c) => [c.capability, c]));
    expect(byName['vision-canary']).toMatchObject({ liveLeases: 1, registered: 1, health: { unhealthy: 1 }, weight: { configured: 10, routed: 0, variantOf: 'vision' } });
    expect(byName.vision.weight).toEqual({ configured: 90, routed: 100 });
    const table = renderStatus(status);
    expect(table).toMatch(/^CAPABILITY\s+WEIGHT\s+LIVE\s+REGISTERED\s+HEALTH\s+DRIFT/);
    expect(table).toMatch(/vision-canary\s+0% of vision \(10% once healthy\)\s+1\s+1\s+unhealthy=1/);
    expect(table).toMatch(/vision\s+100% \(90% with every variant healthy\)\s+1\s+1\s+healthy=1/);
  });

  it('shows the configured weights when the rules were not read, and no weight column without variants', async () => {
    new FakeLeaseTable().install(ddbMock);
    elbMock.on(DescribeTargetHealthCommand).resolves({ TargetHealthDescriptions: [] });
    const base = {
      elb: new ElbTargets(new ElasticLoadBalancingV2Client({ region: 'us-east-1', credentials })),
      store: new LeaseStore(new DynamoDBClient({ region: 'us-east-1', credentials }), 'leases'),
      routing: { ...testConfig().routing, capabilities: { vision: testConfig().routing.capabilities.vision, 'vision-canary': { targetGroupArn: CANARY, targetType: 'ip' as const } } },
      now: () => T0 * 1000,
    };
    expect(renderStatus(await fleetStatus({ ...base, variants: { [CANARY]: { variantOf: 'vision', weight: 10 } } }))).toMatch(/vision-canary\s+10% of vision\s+0/);
    expect(renderStatus(await fleetStatus(base))).not.toContain('WEIGHT');
  });
});
