/**
 * A DNS name per capability (Route 53 alias) when a hosted zone is given: the record points at
 * the load balancer that routes the capability (a later load balancer's records sit in its nested
 * stack), the catalog names it in `route.host`, and the rules match the header or the path, not
 * the Host header. Refusals name the capability or setting and what is allowed.
 */
import { App, NestedStack, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as route53 from 'aws-cdk-lib/aws-route53';
import { describe, expect, it } from 'vitest';
import { addAgentLbStack, AgentLb, AgentLbStack, AgentLbStackProps, CONTEXT_KEY } from '../../lib/constructs';
import { CONFIG_ENV, parseRuntimeSettings } from '../../lib/core/runtime-config';
import { appWithoutBundling, renderJoin, validationError } from './fixtures';

type Resource = { Type: string; Properties: Record<string, any> };
const ZONE = { hostedZoneId: 'Z0123456789ABCDEFGHIJ', zoneName: 'example.com' };

const stackWith = (props: Partial<AgentLbStackProps>, capabilities: AgentLbStackProps['capabilities'] = [{ name: 'vision' }, { name: 'speech-to-text' }]) =>
  new AgentLbStack(appWithoutBundling(), 'Dns', { capabilities, ...ZONE, ...props });

const logicalIdOf = (stack: Stack, construct: { node: { defaultChild?: unknown } }) => stack.getLogicalId(construct.node.defaultChild as never);

/** The registry's AGENT_LB_CONFIG as the handlers parse it (the VPC's CIDR, an attribute, stands in as 10.0.0.0/16). */
function registryConfig(template: Template) {
  const fn = Object.values(template.toJSON().Resources as Record<string, Resource>).find((r) => r.Type === 'AWS::Lambda::Function' && r.Properties.Environment?.Variables?.[CONFIG_ENV] !== undefined)!;
  return parseRuntimeSettings(renderJoin(fn.Properties.Environment.Variables[CONFIG_ENV], (i) => ((i['Fn::GetAtt'] as string[] | undefined)?.[1] === 'CidrBlock' ? '10.0.0.0/16' : undefined)));
}

describe('AgentLbStack with hostedZoneId and zoneName', () => {
  const stack = stackWith({ dnsSubdomain: 'agents' });
  const template = Template.fromStack(stack);
  const lb = logicalIdOf(stack, stack.loadBalancer);

  it('gives each capability an alias A record <capability>.<dnsSubdomain>.<zone> to its load balancer', () => {
    for (const name of ['vision', 'speech-to-text']) {
      template.hasResourceProperties('AWS::Route53::RecordSet', {
        HostedZoneId: ZONE.hostedZoneId,
        Name: `${name}.agents.example.com.`,
        Type: 'A',
        AliasTarget: {
          DNSName: { 'Fn::Join': ['', ['dualstack.', { 'Fn::GetAtt': [lb, 'DNSName'] }]] },
          HostedZoneId: { 'Fn::GetAtt': [lb, 'CanonicalHostedZoneID'] },
        },
      });
    }
    // An IPv4 load balancer: no AAAA.
    template.resourcePropertiesCountIs('AWS::Route53::RecordSet', { Type: 'AAAA' }, 0);
    template.resourceCountIs('AWS::Route53::RecordSet', 2);
    template.hasOutput('CapabilityDomain', { Value: 'agents.example.com' });
  });

  it('tells the catalog the domain, so route.host shows <capability>.agents.example.com', () => {
    expect(registryConfig(template).catalog).toMatchObject({ dnsDomain: 'agents.example.com' });
  });

  it('matches the capability header or path on any Host: no rule has a host-header condition', () => {
    const rules = Object.values(template.findResources('AWS::ElasticLoadBalancingV2::ListenerRule')) as Resource[];
    expect(rules.length).toBeGreaterThan(0);
    for (const rule of rules) expect(rule.Properties.Conditions.map((c: { Field: string }) => c.Field)).not.toContain('host-header');
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', { Conditions: [{ Field: 'http-header', HttpHeaderConfig: { HttpHeaderName: 'X-Agent-Capability', Values: ['vision'] } }] });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', { Conditions: [{ Field: 'path-pattern', PathPatternConfig: { Values: ['/agents/vision', '/agents/vision/*'] } }] });
  });
});

describe('AgentLbStack with a zone and several load balancers', () => {
  const capabilities = Array.from({ length: 60 }, (_, i) => ({ name: `c${String(i).padStart(3, '0')}` }));
  const stack = stackWith({}, capabilities);
  const template = Template.fromStack(stack);

  it("puts each capability's record beside its groups and points it at the load balancer that routes it", () => {
    expect(stack.layout).toHaveLength(2);
    const first = stack.layout[0].capabilities[0];
    const later = stack.layout[1].capabilities.at(-1)!;
    template.hasResourceProperties('AWS::Route53::RecordSet', { Name: `${first}.example.com.`, AliasTarget: { HostedZoneId: { 'Fn::GetAtt': [logicalIdOf(stack, stack.loadBalancers[0]), 'CanonicalHostedZoneID'] } } });
    template.resourcePropertiesCountIs('AWS::Route53::RecordSet', { Name: `${later}.example.com.` }, 0);
    const nested = stack.node.findAll().find((c): c is NestedStack => NestedStack.isNestedStack(c))!;
    const inner = Template.fromStack(nested);
    inner.resourceCountIs('AWS::Route53::RecordSet', stack.layout[1].capabilities.length);
    const record = Object.values(inner.findResources('AWS::Route53::RecordSet', { Properties: { Name: `${later}.example.com.` } }))[0] as Resource;
    // The alias target is a parameter of the nested stack, which the top stack fills from load balancer 2.
    const parameter = record.Properties.AliasTarget.HostedZoneId.Ref as string;
    const nestedResource = Object.values(template.findResources('AWS::CloudFormation::Stack'))[0] as Resource;
    expect(nestedResource.Properties.Parameters[parameter]).toEqual({ 'Fn::GetAtt': [logicalIdOf(stack, stack.loadBalancers[1]), 'CanonicalHostedZoneID'] });
  });
});

describe('AgentLb with dnsZone on a dual-stack load balancer', () => {
  it('adds an AAAA alias beside the A alias', () => {
    const stack = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'User');
    const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 0, ipProtocol: ec2.IpProtocol.DUAL_STACK });
    const alb = new elbv2.ApplicationLoadBalancer(stack, 'Alb', { vpc, ipAddressType: elbv2.IpAddressType.DUAL_STACK });
    const listener = alb.addListener('Http', { port: 80, open: false, defaultAction: elbv2.ListenerAction.fixedResponse(404) });
    const zone = route53.HostedZone.fromHostedZoneAttributes(stack, 'Zone', ZONE);
    new AgentLb(stack, 'Agents', { vpc, listener, capabilities: [{ name: 'vision' }], dnsZone: zone });
    const template = Template.fromStack(stack);
    for (const type of ['A', 'AAAA']) {
      template.hasResourceProperties('AWS::Route53::RecordSet', { Name: 'vision.example.com.', Type: type, AliasTarget: { DNSName: Match.anyValue() } });
    }
  });
});

describe('DNS names refused', () => {
  it.each<[string, Partial<AgentLbStackProps>, AgentLbStackProps['capabilities'] | undefined, string]>([
    [
      'a capability name with "_"',
      {},
      [{ name: 'speech_to_text' }],
      'capability "speech_to_text" is not a DNS label (1–63 lowercase letters, digits and "-", not starting or ending with "-"; no "_"), so it cannot have a DNS name: rename it or leave dnsZone unset',
    ],
    ['a capability name ending with "-"', {}, [{ name: 'vision-' }], 'capability "vision-" is not a DNS label (1–63 lowercase letters, digits and "-", not starting or ending with "-"; no "_"), so it cannot have a DNS name: rename it or leave dnsZone unset'],
    ['a subdomain that is not DNS labels', { dnsSubdomain: 'my_agents' }, undefined, 'dnsSubdomain "my_agents" must be DNS labels separated by "." (each 1–63 lowercase letters, digits and "-", not starting or ending with "-")'],
    ['a zone id without a zone name', { zoneName: undefined }, undefined, 'hostedZoneId and zoneName go together: set both, or neither'],
    ['a malformed zone id', { hostedZoneId: 'zone-1' }, undefined, 'hostedZoneId "zone-1" must be a Route 53 hosted zone id: "Z" and 1–31 uppercase letters and digits'],
    ['a malformed zone name', { zoneName: 'Example..com' }, undefined, 'zoneName "Example..com" must be a domain name of lowercase DNS labels (letters, digits, "-"), at most 253 characters'],
    ['a subdomain without a zone', { hostedZoneId: undefined, zoneName: undefined, dnsSubdomain: 'agents' }, undefined, 'dnsSubdomain "agents" needs dnsZone: the zone the names go in'],
  ])('%s', (_, props, capabilities, message) => {
    expect(() => stackWith(props, capabilities)).toThrow(validationError(message));
  });

  it('a zone imported by id alone, which has no name to give', () => {
    const app = appWithoutBundling();
    const holder = new Stack(app, 'Zones');
    const dnsZone = route53.HostedZone.fromHostedZoneId(holder, 'Zone', ZONE.hostedZoneId);
    expect(() => new AgentLbStack(app, 'Dns', { capabilities: [{ name: 'vision' }], dnsZone })).toThrow(
      validationError('dnsZone has no zone name: import it with HostedZone.fromHostedZoneAttributes({ hostedZoneId, zoneName }) or fromLookup'),
    );
  });
});

describe('the context', () => {
  it('hostedZoneId, zoneName and dnsSubdomain in cdk.json give each capability its name', () => {
    const stack = addAgentLbStack(appWithoutBundling({ [CONTEXT_KEY]: { capabilities: ['vision'], hostedZoneId: ZONE.hostedZoneId, zoneName: 'example.com', dnsSubdomain: 'agents' } }), {});
    Template.fromStack(stack).hasResourceProperties('AWS::Route53::RecordSet', { HostedZoneId: ZONE.hostedZoneId, Name: 'vision.agents.example.com.', Type: 'A' });
  });
});
