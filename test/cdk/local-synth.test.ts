import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { synthesizeTemplate } from '../../lib/local/synth-template';
import { localSubset } from '../../lib/local/template-subset';

/** `agent-lb local --app-dir <dir>`: local mode provisions the user's own configuration, not agent-lb's example. */
describe('the template local mode provisions', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'agent-lb-app-dir-'));
    writeFileSync(
      join(dir, 'cdk.json'),
      JSON.stringify({
        app: 'npx ts-node bin/my-app.ts',
        context: {
          'agent-lb': {
            stackName: 'MyAgents',
            // Settings about the real account: meaningless in the emulators, and left out there.
            account: '123456789012',
            region: 'eu-west-1',
            vpcId: 'vpc-0123456789abcdef0',
            certificateArn: 'arn:aws:acm:eu-west-1:123456789012:certificate/0e6ad1f3-8d6b-4f8e-9a8e-123456789abc',
            hostedZoneId: 'Z0123456789ABCDEFGHIJ',
            zoneName: 'example.com',
            dnsSubdomain: 'agents',
            capabilities: [{ name: 'ocr', port: 9000 }, { name: 'translate', targetType: 'instance', maxRequestDurationSeconds: 900 }],
          },
          // A setting given the way `-c agent-lb.<setting>=<value>` gives it.
          'agent-lb.headerName': 'X-Skill',
        },
      }),
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("comes from the given app's cdk.json: its stack name, capabilities and settings", () => {
    const { stackName, template } = synthesizeTemplate({ cdkJsonPath: join(dir, 'cdk.json') });
    expect(stackName).toBe('MyAgents');
    const groups = Object.values(template.Resources).filter((r) => r.Type === 'AWS::ElasticLoadBalancingV2::TargetGroup' && r.Properties?.TargetType !== 'lambda');
    const tagOf = (tags: unknown, key: string) => (tags as { Key: string; Value: string }[]).find((t) => t.Key === key)?.Value;
    expect(groups.map((g) => [tagOf(g.Properties?.Tags, 'agent-lb:capability'), tagOf(g.Properties?.Tags, 'agent-lb:max-request-seconds'), g.Properties?.TargetType, g.Properties?.Port])).toEqual([
      // The longest request of each (the default 5 minutes, or the app's), tagged for the sidecar's leave deadline.
      ['ocr', '300', 'ip', 9000],
      ['translate', '900', 'instance', 80],
    ]);
    const headers = Object.values(template.Resources)
      .filter((r) => r.Type === 'AWS::ElasticLoadBalancingV2::ListenerRule')
      .flatMap((r) => (r.Properties?.Conditions as { HttpHeaderConfig?: { HttpHeaderName: string } }[]).map((c) => c.HttpHeaderConfig?.HttpHeaderName))
      .filter(Boolean);
    expect(new Set(headers)).toEqual(new Set(['X-Skill']));
    // Plain HTTP on a new VPC: no lookup, no certificate.
    const listeners = Object.values(template.Resources).filter((r) => r.Type === 'AWS::ElasticLoadBalancingV2::Listener');
    expect(listeners.map((l) => l.Properties?.Protocol)).toEqual(['HTTP']);
    // No hosted zone: no records, and the catalog names the local load balancer, not the deployed names.
    expect(Object.values(template.Resources).filter((r) => r.Type === 'AWS::Route53::RecordSet')).toEqual([]);
    expect(JSON.stringify(template)).not.toContain('dnsDomain');
  });
});

/** A quota that puts search on a second load balancer, whose groups and rules the stack keeps in a nested stack. */
describe('the template local mode provisions for two load balancers', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'agent-lb-two-lbs-synth-'));
    const capabilities = ['vision', 'speech', 'search'].map((name) => ({ name, healthCheck: { path: '/health' } }));
    writeFileSync(join(dir, 'cdk.json'), JSON.stringify({ context: { 'agent-lb': { capabilities, loadBalancerQuotas: { targetGroupsPerLoadBalancer: 3 } } } }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("holds the nested stack's resources in place of the stack, and every load balancer with its capabilities", () => {
    const { template } = synthesizeTemplate({ cdkJsonPath: join(dir, 'cdk.json') });
    expect(Object.values(template.Resources).filter((r) => r.Type === 'AWS::CloudFormation::Stack')).toEqual([]);
    const subset = localSubset(template);
    expect(Object.values(subset.capabilityGroups).sort()).toEqual(['search', 'speech', 'vision']);
    expect(subset.loadBalancers.map((lb) => lb.capabilities)).toEqual([['vision', 'speech'], ['search']]);
  });
});

