import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { App, CfnElement, NestedStack, Stack } from 'aws-cdk-lib';
import { addAgentLbStack, AgentLbCapabilityContext, CONTEXT_KEY, parseAgentLbContext } from '../constructs/app-context';
import { AgentLbError, ConfigError } from '../core/errors';
import { inlineNestedStacks, NestedTemplates } from './nested-stacks';
import { CfnTemplate } from './template-subset';

/** The project's cdk.json, the same file `cdk deploy` reads (from the sources, or from the build in dist/). */
export const CDK_JSON = [resolve(__dirname, '..', '..', 'cdk.json'), resolve(__dirname, '..', '..', '..', 'cdk.json')].find((p) => existsSync(p)) ?? resolve(__dirname, '..', '..', 'cdk.json');

/** Context settings local mode leaves out; see {@link synthesizeTemplate}. */
export const LOCAL_IGNORED_SETTINGS = ['account', 'region', 'vpcId', 'certificateArn', 'accessLogsBucketName', 'accessLogsPrefix', 'hostedZoneId', 'zoneName', 'dnsSubdomain'] as const;

export interface SynthOptions {
  /** Replace the context's capability list by these names (keeping each one's settings when it is already configured). */
  readonly capabilities?: readonly string[];
  readonly cdkJsonPath?: string;
  /** Replace the context's `targetQuota` (the load balancer's raised quota a benchmark models). */
  readonly targetQuota?: number;
}

/**
 * Synthesizes the stack users deploy, from the same cdk.json context, and returns its
 * CloudFormation template. Lambda bundling is skipped (`aws:cdk:bundling-stacks: []`): local
 * mode runs the handlers in-process, so their assets are never uploaded. The nested stacks of
 * the second and later load balancers are inlined ({@link inlineNestedStacks}): every load
 * balancer's capabilities are in the one template returned.
 */
export function synthesizeTemplate(options: SynthOptions = {}): { stackName: string; template: CfnTemplate } {
  const cdkJson = JSON.parse(readFileSync(options.cdkJsonPath ?? CDK_JSON, 'utf8')) as { context?: Record<string, unknown> };
  const context = { ...(cdkJson.context?.[CONTEXT_KEY] as Record<string, unknown>) };
  // Settings about the account the stack deploys to have no meaning in the emulators, which get a
  // new VPC and plain HTTP: a lookup or a certificate would only make synth or provisioning fail,
  // and a hosted zone's names would point the local catalog at the deployed load balancers.
  for (const key of LOCAL_IGNORED_SETTINGS) delete context[key];
  if (options.capabilities) {
    const known = (context.capabilities as AgentLbCapabilityContext[] | undefined) ?? [];
    context.capabilities = options.capabilities.map((name) => known.find((c) => c.name === name) ?? { name });
  }
  if (options.targetQuota !== undefined) {
    // One quota, two settings (the stack refuses them differing): the override replaces both.
    context.targetQuota = options.targetQuota;
    const quotas = context.loadBalancerQuotas as Record<string, unknown> | undefined;
    if (quotas?.targetsPerLoadBalancer !== undefined) context.loadBalancerQuotas = { ...quotas, targetsPerLoadBalancer: options.targetQuota };
  }
  const outdir = mkdtempSync(join(tmpdir(), 'agent-lb-synth-'));
  try {
    // Synthesized once, here: with CDK_OUTDIR set (a CDK CLI or a test setup), App would also
    // register a beforeExit listener to synthesize again at exit, into the outdir removed below.
    const app = new App({ outdir, autoSynth: false, context: { ...cdkJson.context, [CONTEXT_KEY]: context, 'aws:cdk:bundling-stacks': [] } });
    const stack = addAgentLbStack(app, {});
    const assembly = app.synth();
    const parent = assembly.getStackByName(stack.stackName).template as CfnTemplate;
    return { stackName: stack.stackName, template: inlineNestedStacks(parent, nestedTemplates(stack, assembly.directory)) };
  } catch (error) {
    // A construct refusing a setting is the configuration's fault, not local mode's.
    if (error instanceof AgentLbError) throw error;
    throw new ConfigError(`${options.cdkJsonPath ?? CDK_JSON}: ${(error as Error).message.split('\n')[0]}`, { cause: error });
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

/** The templates of `stack`'s nested stacks, read from the assembly in `directory`, by their resource's logical id in `stack`. */
function nestedTemplates(stack: Stack, directory: string): NestedTemplates {
  const out: Record<string, CfnTemplate> = {};
  for (const child of stack.node.findAll()) {
    if (!NestedStack.isNestedStack(child) || Stack.of(child.node.scope!) !== stack || child.nestedStackResource === undefined) continue;
    const id = stack.resolve((child.nestedStackResource as CfnElement).logicalId) as string;
    out[id] = JSON.parse(readFileSync(join(directory, child.templateFile), 'utf8')) as CfnTemplate;
  }
  return out;
}

/**
 * The shape of the `agent-lb` context in `cdkJsonPath` (known keys, JSON types), checked in
 * milliseconds, before any server starts; ranges are the constructs' to check at synth.
 */
export function checkLocalContext(cdkJsonPath: string = CDK_JSON): void {
  const cdkJson = JSON.parse(readFileSync(cdkJsonPath, 'utf8')) as { context?: Record<string, unknown> };
  try {
    parseAgentLbContext(cdkJson.context?.[CONTEXT_KEY]);
  } catch (error) {
    throw new ConfigError(`${cdkJsonPath}: ${(error as Error).message}`, { cause: error });
  }
}
