import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { App, Duration } from 'aws-cdk-lib';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentLbStack, addAgentLbStack } from '../../lib/constructs';
import { cdkJsonContext } from './fixtures';

/**
 * What a user deploys, checked by the tools a reviewer would run: the cdk.json stack bundled for
 * real (as `cdk synth` does) and a stack with every option switched on, each through cfn-lint
 * and the cdk-nag AwsSolutions pack.
 */
const ACCOUNT = '123456789012';
const REGION = 'eu-west-1';

const cfnLintProbe = spawnSync('cfn-lint', ['--version'], { encoding: 'utf8' });
const hasCfnLint = !cfnLintProbe.error && cfnLintProbe.status === 0;

let outdir: string;
let fullOutdir: string;
let defaultStack: AgentLbStack;
let fullStack: AgentLbStack;
let dnsOutdir: string;
let dnsStack: AgentLbStack;

beforeAll(() => {
  outdir = mkdtempSync(path.join(tmpdir(), 'agent-lb-cdk-'));
  fullOutdir = mkdtempSync(path.join(tmpdir(), 'agent-lb-cdk-full-'));

  const app = new App({ outdir, context: cdkJsonContext() });
  defaultStack = addAgentLbStack(app, {});
  app.synth();

  const fullApp = new App({
    outdir: fullOutdir,
    context: {
      'aws:cdk:bundling-stacks': [],
      [`availability-zones:account=${ACCOUNT}:region=${REGION}`]: [`${REGION}a`, `${REGION}b`, `${REGION}c`],
    },
  });
  fullStack = new AgentLbStack(fullApp, 'AgentLbFull', {
    env: { account: ACCOUNT, region: REGION },
    maxAzs: 3,
    natGateways: 2,
    vpcCidr: '10.42.0.0/16',
    internetFacing: true,
    certificateArn: `arn:aws:acm:${REGION}:${ACCOUNT}:certificate/0e6ad1f3-8d6b-4f8e-9a8e-123456789abc`,
    accessLogsBucketName: 'agent-lb-access-logs',
    accessLogsPrefix: 'alb',
    allowedCidrs: ['10.0.0.0/8', '100.64.0.0/10'],
    ingressCidrs: ['203.0.113.0/24'],
    leaseTtl: Duration.seconds(20),
    headerName: 'X-Skill',
    variantHeaderName: 'X-Skill-Variant',
    pathPrefix: 'v1/skills',
    capabilities: [
      { name: 'vision', priority: 100, stickiness: { type: 'lb_cookie', duration: Duration.hours(1) }, variants: [{ name: 'canary', weight: 10 }, { name: 'next', weight: 5 }] },
      { name: 'chat', stickiness: { type: 'app_cookie', cookieName: 'conversation', duration: Duration.minutes(30) } },
      { name: 'search', algorithm: 'weighted_random', anomalyMitigation: true, variants: [{ name: 'v2', weight: 50 }], variantStickiness: Duration.minutes(10) },
      {
        name: 'gpu-batch',
        targetType: 'instance',
        port: 8443,
        protocol: elbv2.ApplicationProtocol.HTTPS,
        healthCheck: { path: '/ready', port: 9000, interval: Duration.seconds(30), timeout: Duration.seconds(10), healthyThresholdCount: 3, unhealthyThresholdCount: 3 },
        deregistrationDelay: Duration.seconds(120),
        slowStart: Duration.seconds(60),
      },
      { name: 'speech_to_text', deregistrationDelay: Duration.seconds(0) },
    ],
    registrySync: { reconcileRepeat: Duration.seconds(15), safetyValveShare: 0.3, batchSize: 250, maxBatchingWindow: Duration.seconds(2) },
  });
  fullApp.synth();

  // Two load balancers (60 capabilities) with a DNS name each in a hosted zone: records in the top and the nested stack.
  dnsOutdir = mkdtempSync(path.join(tmpdir(), 'agent-lb-cdk-dns-'));
  const dnsApp = new App({ outdir: dnsOutdir, context: { 'aws:cdk:bundling-stacks': [] } });
  dnsStack = new AgentLbStack(dnsApp, 'AgentLbDns', {
    capabilities: Array.from({ length: 60 }, (_, i) => ({ name: `skill-${i}` })),
    hostedZoneId: 'Z0123456789ABCDEFGHIJ',
    zoneName: 'example.com',
    dnsSubdomain: 'agents',
  });
  dnsApp.synth();
});

afterAll(() => {
  for (const dir of [outdir, fullOutdir, dnsOutdir]) if (dir) rmSync(dir, { recursive: true, force: true });
});

function cfnLint(templateFile: string): void {
  if (!hasCfnLint) {
    if (process.env.CI) throw new Error('cfn-lint is not on PATH; CI must run it (pip install cfn-lint)');
    console.warn(`cfn-lint is not on PATH: skipped linting ${templateFile}`);
    return;
  }
  const run = spawnSync('cfn-lint', ['--format', 'parseable', '--', templateFile], { encoding: 'utf8' });
  const output = `${run.stdout}${run.stderr}`.trim();
  // cfn-lint exit status is a bit mask: 2 = error, 4 = warning, 8 = informational; 1 = cfn-lint itself failed.
  if (run.status === null || (run.status & 0b11) !== 0) {
    throw new Error(`cfn-lint failed (exit ${run.status}) on ${path.basename(templateFile)}:\n${output}`);
  }
  if (output) console.warn(`cfn-lint warnings for ${path.basename(templateFile)} (allowed):\n${output}`);
}

function nagViolations(stack: AgentLbStack): string[] {
  const report = new AwsSolutionsChecks(undefined, { verbose: true }).validateScope(stack);
  return report.violations.map((v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath ?? r.resourceLogicalId).join(', ')}: ${v.description}`);
}

describe('synthesized cdk.json stack', () => {
  it('bundles the four Lambdas (sync, catalog stream, reconcile, catalog) with local esbuild into modules that export `handler`', () => {
    const template = JSON.parse(readFileSync(path.join(outdir, 'AgentLb.template.json'), 'utf8'));
    const functions = Object.values(template.Resources as Record<string, { Type: string; Properties: { Code: { S3Key: string } } }>).filter(
      (r) => r.Type === 'AWS::Lambda::Function',
    );
    expect(functions).toHaveLength(4);
    const load = createRequire(__filename);
    for (const fn of functions) {
      const bundle = path.join(outdir, `asset.${fn.Properties.Code.S3Key.replace(/\.zip$/, '')}`, 'index.js');
      expect(existsSync(bundle)).toBe(true);
      expect(typeof (load(bundle) as { handler?: unknown }).handler).toBe('function');
    }
  });

  it.skipIf(!hasCfnLint && !process.env.CI)('passes cfn-lint with no error', () => {
    cfnLint(path.join(outdir, 'AgentLb.template.json'));
  });

  it('has no unacknowledged cdk-nag AwsSolutions finding', () => {
    expect(nagViolations(defaultStack)).toEqual([]);
  });
});

describe('synthesized stack with every option', () => {
  it.skipIf(!hasCfnLint && !process.env.CI)('passes cfn-lint with no error', () => {
    cfnLint(path.join(fullOutdir, 'AgentLbFull.template.json'));
  });

  it('has no unacknowledged cdk-nag AwsSolutions finding', () => {
    expect(nagViolations(fullStack)).toEqual([]);
  });

  it('still reports real findings: an ingress open to the world is not silently acknowledged', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const open = new AgentLbStack(app, 'Open', { capabilities: [{ name: 'vision' }], internetFacing: true, ingressCidrs: ['0.0.0.0/0'] });
    app.synth();
    expect(nagViolations(open).map((v) => v.split(' ')[0])).toEqual(['AwsSolutions-EC23']);
  });
});

describe('synthesized stack with a hosted zone and two load balancers', () => {
  it.skipIf(!hasCfnLint && !process.env.CI)('passes cfn-lint with no error, the top stack and the nested one', () => {
    expect(dnsStack.layout).toHaveLength(2);
    const templates = readdirSync(dnsOutdir).filter((f) => f.startsWith('AgentLbDns') && f.endsWith('.template.json'));
    expect(templates).toHaveLength(2);
    for (const file of templates) cfnLint(path.join(dnsOutdir, file));
  });

  it('has no unacknowledged cdk-nag AwsSolutions finding', () => {
    expect(nagViolations(dnsStack)).toEqual([]);
  });
});
