import { Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { describe, expect, it } from 'vitest';
import { AgentLb, AgentLbProps, AgentLbStack, addAgentLbStack, CapabilityProps } from '../../lib/constructs';
import { CATALOG_ENV, parseCatalogServeConfig } from '../../lib/core/catalog-request';
import { CONFIG_ENV, parseRuntimeSettings } from '../../lib/core/runtime-config';
import { appWithoutBundling, cdkJsonContext, renderJoin, validationError } from './fixtures';

type Resource = { Type: string; Properties: Record<string, any>; DependsOn?: string[] };
const resourcesOf = (template: Template, type: string) => Object.entries(template.toJSON().Resources as Record<string, Resource>).filter(([, r]) => r.Type === type);

/** A user's stack with its own ALB and listener (bundling skipped: only the template is read). */
function userStack(props: Partial<AgentLbProps> = {}) {
  const stack = new Stack(appWithoutBundling(), 'UserStack', { env: { account: '123456789012', region: 'eu-west-1' } });
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 0 });
  const listener = new elbv2.ApplicationLoadBalancer(stack, 'Alb', { vpc }).addListener('Http', { port: 80, open: false, defaultAction: elbv2.ListenerAction.fixedResponse(404) });
  const agents = new AgentLb(stack, 'Agents', { vpc, listener, capabilities: [{ name: 'vision', variants: [{ name: 'canary', weight: 10 }] }, { name: 'speech' }], priorityRange: { min: 1000, max: 1999 }, ...props });
  return {
    stack,
    agents,
    get template() {
      return Template.fromStack(stack);
    },
  };
}

describe('the capability catalog on the load balancer (GET /agents)', () => {
  // GIVEN / WHEN
  const { agents, template } = userStack({ catalogAttributes: ['model', 'region'] }) as { agents: AgentLb; template: Template };
  const rules = resourcesOf(template, 'AWS::ElasticLoadBalancingV2::ListenerRule');
  const [catalogRuleId, catalogRule] = rules.find(([, r]) => r.Properties.Conditions.some((c: any) => c.Field === 'http-request-method'))!;
  const [lambdaGroupId, lambdaGroup] = resourcesOf(template, 'AWS::ElasticLoadBalancingV2::TargetGroup').find(([, g]) => g.Properties.TargetType === 'lambda')!;
  const [functionId] = resourcesOf(template, 'AWS::Lambda::Function').find(([, f]) => f.Properties.Environment.Variables[CATALOG_ENV] !== undefined)!;

  it('forwards GET and HEAD of exactly /agents to a Lambda target group, with one rule inside the priority range', () => {
    expect(catalogRule.Properties).toEqual({
      ListenerArn: expect.anything(),
      Priority: expect.any(Number),
      Conditions: [
        { Field: 'path-pattern', PathPatternConfig: { Values: ['/agents'] } },
        { Field: 'http-request-method', HttpRequestMethodConfig: { Values: ['GET', 'HEAD'] } },
      ],
      Actions: [{ Type: 'forward', TargetGroupArn: { Ref: lambdaGroupId } }],
    });
    expect(agents.router.catalogRule?.node.defaultChild).toBeDefined();
    const priority = catalogRule.Properties.Priority as number;
    expect(priority).toBeGreaterThanOrEqual(1000);
    expect(priority).toBeLessThanOrEqual(1999);
  });

  it('sits behind every header rule (a request naming a capability still reaches it) and on no priority of another rule', () => {
    const priority = catalogRule.Properties.Priority as number;
    const others = rules.filter(([id]) => id !== catalogRuleId).map(([, r]) => r);
    const headerRules = others.filter((r) => r.Properties.Conditions[0].Field === 'http-header').map((r) => r.Properties.Priority as number);
    expect(Math.max(...headerRules)).toBeLessThan(priority);
    expect(others.map((r) => r.Properties.Priority)).not.toContain(priority);
    // Its path matches no capability's: never shadows /agents/<capability>/….
    const paths = others.flatMap((r) => r.Properties.Conditions.flatMap((c: any) => c.PathPatternConfig?.Values ?? []));
    expect(paths).not.toContain('/agents');
  });

  it('lets ELB invoke the function from that target group only, in this account', () => {
    expect(lambdaGroup.Properties).toEqual({ Name: expect.stringMatching(/^[A-Za-z0-9-]{1,32}$/), TargetType: 'lambda', Targets: [{ Id: { 'Fn::GetAtt': [functionId, 'Arn'] } }] });
    const [[permissionId, permission]] = resourcesOf(template, 'AWS::Lambda::Permission');
    expect(lambdaGroup.DependsOn).toContain(permissionId);
    expect(permission.Properties).toEqual({
      Action: 'lambda:InvokeFunction',
      FunctionName: { 'Fn::GetAtt': [functionId, 'Arn'] },
      Principal: 'elasticloadbalancing.amazonaws.com',
      SourceAccount: '123456789012',
      SourceArn: expect.anything(),
    });
    expect(renderJoin(permission.Properties.SourceArn)).toBe(`arn:<AWS::Partition>:elasticloadbalancing:eu-west-1:123456789012:targetgroup/${lambdaGroup.Properties.Name}/*`);
  });

  it('runs a function that may read the catalog item and nothing else, long enough for a 20 s blocking query', () => {
    const fn = template.toJSON().Resources[functionId] as Resource;
    expect(fn.Properties).toMatchObject({ Runtime: 'nodejs22.x', Architectures: ['arm64'], Timeout: 30, Handler: 'index.handler' });
    expect(parseCatalogServeConfig(renderJoin(fn.Properties.Environment.Variables[CATALOG_ENV]))).toEqual({ tableName: expect.stringMatching(/^<AgentsRegistryStateTable/), cacheMs: 1000 });
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: Match.stringLikeRegexp('AgentsCatalogRole') }],
      PolicyDocument: {
        Statement: [
          Match.objectLike({ Action: ['logs:CreateLogStream', 'logs:PutLogEvents'] }),
          { Effect: 'Allow', Action: 'dynamodb:GetItem', Resource: Match.anyValue(), Condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['catalog'] } } },
        ],
      },
    });
  });

  it('tells the registry where the catalog lives, how capabilities are asked for and which metadata is public', () => {
    for (const [, fn] of resourcesOf(template, 'AWS::Lambda::Function').filter(([, f]) => f.Properties.Environment.Variables[CONFIG_ENV] !== undefined)) {
      const text = renderJoin(fn.Properties.Environment.Variables[CONFIG_ENV], (i) => ((i['Fn::GetAtt'] as string[] | undefined)?.[1] === 'CidrBlock' ? '10.0.0.0/16' : undefined));
      expect(parseRuntimeSettings(text).catalog).toEqual({ tableName: expect.stringMatching(/^<AgentsRegistryStateTable/), headerName: 'X-Agent-Capability', pathPrefix: 'agents', attributes: ['model', 'region'] });
    }
  });

  it('keeps the catalog on its own reader of the lease stream, so its writes never delay the sync: same batching, bisect, item failures, a few retries, no failure queue', () => {
    const mappings = resourcesOf(template, 'AWS::Lambda::EventSourceMapping');
    expect(mappings).toHaveLength(2);
    const [leaseTable] = Object.keys(template.findResources('AWS::DynamoDB::Table')).filter((id) => id.includes('Leases'));
    for (const [, m] of mappings) expect(m.Properties.EventSourceArn).toEqual({ 'Fn::GetAtt': [leaseTable, 'StreamArn'] });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: Match.stringLikeRegexp('AgentsRegistryCatalogStream') },
      BatchSize: 10_000,
      MaximumBatchingWindowInSeconds: 1,
      StartingPosition: 'TRIM_HORIZON',
      BisectBatchOnFunctionError: true,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      MaximumRetryAttempts: 3,
      ParallelizationFactor: 1,
      DestinationConfig: Match.absent(),
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('capability catalog current from the lease table stream'),
      Environment: { Variables: Match.objectLike({ POWERTOOLS_SERVICE_NAME: 'agent-lb-catalog-stream' }) },
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'IteratorAge', Dimensions: [{ Name: 'FunctionName', Value: { Ref: Match.stringLikeRegexp('AgentsRegistryCatalogStream') } }] });
  });

  it('keeps the registry state table apart from the lease table: no stream, registry-owned, agents get nothing on it', () => {
    const [[, table]] = resourcesOf(template, 'AWS::DynamoDB::Table').filter(([id]) => id.includes('RegistryState'));
    expect(table.Properties.StreamSpecification).toBeUndefined();
    expect(table.Properties.KeySchema).toEqual([
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
    const agentPolicy = JSON.stringify(template.findResources('AWS::IAM::ManagedPolicy'));
    expect(agentPolicy).not.toContain('RegistryState');
  });

  it('tags each capability group with the policy the catalog shows', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      Tags: [
        { Key: 'agent-lb:algorithm', Value: 'least_outstanding_requests' },
        { Key: 'agent-lb:capability', Value: 'vision-canary' },
        { Key: 'agent-lb:max-request-seconds', Value: '300' },
        { Key: 'agent-lb:stickiness', Value: 'off' },
        { Key: 'agent-lb:variant-of', Value: 'vision' },
        { Key: 'agent-lb:variant-weight', Value: '10' },
      ],
    });
  });

  it('grants trusted discovery Query of the member index and GetItem of the catalog, nothing more', () => {
    const { stack, agents: a } = userStack();
    const role = new iam.Role(stack, 'Orchestrator', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
    a.grantDiscovery(role);
    Template.fromStack(stack).hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: Match.stringLikeRegexp('Orchestrator') }],
      PolicyDocument: { Statement: [{ Effect: 'Allow', Action: ['dynamodb:Query', 'dynamodb:GetItem'], Resource: Match.anyValue(), Condition: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['members#*', 'catalog'] } } }] },
    });
  });
});

describe('the catalog switched off', () => {
  it('adds no function, target group or rule, and tells the registry nothing of it; the registry state table stays, for the ELB budget alone', () => {
    const { template, agents } = userStack({ catalog: false });
    expect(resourcesOf(template, 'AWS::DynamoDB::Table').map(([id]) => id)).toEqual([expect.stringMatching(/^AgentsLeases/), expect.stringMatching(/^AgentsRegistryState/)]);
    const [, fn] = resourcesOf(template, 'AWS::Lambda::Function')[0];
    const config = parseRuntimeSettings(renderJoin(fn.Properties.Environment.Variables[CONFIG_ENV], (i) => ((i['Fn::GetAtt'] as string[] | undefined)?.[1] === 'CidrBlock' ? '10.0.0.0/16' : undefined)));
    expect(config.catalog).toBeUndefined();
    expect(config.sharedElbBudget).toEqual({ tableName: expect.stringMatching(/^<AgentsRegistryStateTable/), fallbackDivisor: 4 });
    expect(resourcesOf(template, 'AWS::ElasticLoadBalancingV2::TargetGroup').filter(([, g]) => g.Properties.TargetType === 'lambda')).toEqual([]);
    expect(resourcesOf(template, 'AWS::Lambda::Function')).toHaveLength(2);
    expect(resourcesOf(template, 'AWS::Lambda::EventSourceMapping')).toHaveLength(1);
    expect(JSON.stringify(template.toJSON())).not.toContain('http-request-method');
    expect(agents.catalog).toBeUndefined();
    expect(() => agents.grantDiscovery(new iam.Role(Stack.of(agents), 'R', { assumedBy: new iam.AccountRootPrincipal() }))).toThrow(
      validationError('grantDiscovery needs the catalog (catalog: true), whose member index discovery reads'),
    );
  });

  it('from the app\'s context too', () => {
    const stack = addAgentLbStack(appWithoutBundling({ ...cdkJsonContext(), 'agent-lb.catalog': 'false' }), {});
    expect(Object.keys(Template.fromStack(stack).findOutputs('*'))).not.toContain('CatalogUrl');
  });
});

describe('the catalog, refused', () => {
  it.each<[string, Partial<AgentLbProps>, string]>([
    ['catalogAttributes without the catalog', { catalog: false, catalogAttributes: ['model'] }, 'catalogAttributes needs the catalog; remove catalogAttributes or leave catalog on'],
    ['a metadata key that is not one', { catalogAttributes: ['model', 'my key'] }, 'catalogAttributes: "my key" must match ^[A-Za-z0-9_.:-]{1,64}$'],
    ['more than 10 keys', { catalogAttributes: Array.from({ length: 11 }, (_, i) => `k${i}`) }, "catalogAttributes lists 11 metadata keys; at most 10 fit the functions' environment"],
  ])('refuses %s', (_, props, message) => {
    expect(() => userStack(props)).toThrow(validationError(message));
  });

  it('counts its target group against the 100 of a load balancer, naming the capability that goes over', () => {
    const capabilities: CapabilityProps[] = Array.from({ length: 100 }, (_, i) => ({ name: `cap-${i}` }));
    expect(() => userStack({ capabilities, priorityRange: undefined })).toThrow(
      validationError(
        "The capabilities need 101 target groups (one per capability and one per variant, and the capability catalog's); an ALB routes to at most 100, not adjustable. " +
          'Capability "cap-99" takes the count from 100 to 101; remove capabilities or variants, or put some on another load balancer',
      ),
    );
    expect(() => userStack({ capabilities, priorityRange: undefined, catalog: false })).not.toThrow();
  });
});

describe('AgentLbStack outputs', () => {
  it('names the registry state table and the catalog URL', () => {
    const stack: AgentLbStack = addAgentLbStack(appWithoutBundling(cdkJsonContext()), {});
    const outputs = Template.fromStack(stack).findOutputs('*');
    expect(outputs.RegistryStateTableName.Value).toEqual({ Ref: expect.stringMatching(/^RegistryStateTable/) });
    expect(JSON.stringify(outputs.CatalogUrl.Value)).toContain('/agents');
  });
});
