// A user's own CDK app with agent-lb installed from the tarball next to its own aws-cdk-lib.
// Compiled with the user's TypeScript settings (NodeNext, no skipLibCheck) and synthesized by the packaging test.
import { App, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AgentLb, AgentLbProps, CapabilityRouter, LeaseTable, RegistrySync } from 'agent-lb';

export const LISTENER_ARN = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/shared/0123456789abcdef/fedcba9876543210';

// The output directory comes from CDK_OUTDIR, as the CDK CLI sets it.
const app = new App();

// 1. A listener that lives elsewhere (another stack, another team), imported by ARN.
const imported = new Stack(app, 'ImportedListener', { env: { account: '123456789012', region: 'eu-west-1' } });
const sharedVpc = ec2.Vpc.fromVpcAttributes(imported, 'Vpc', {
  vpcId: 'vpc-0123456789abcdef0',
  vpcCidrBlock: '10.1.0.0/16',
  availabilityZones: ['eu-west-1a', 'eu-west-1b'],
});
const sharedListener = elbv2.ApplicationListener.fromApplicationListenerAttributes(imported, 'Listener', {
  listenerArn: LISTENER_ARN,
  securityGroup: ec2.SecurityGroup.fromSecurityGroupId(imported, 'AlbSecurityGroup', 'sg-0123456789abcdef0'),
});
const props: AgentLbProps = {
  vpc: sharedVpc,
  listener: sharedListener,
  capabilities: [{ name: 'vision' }, { name: 'speech', port: 8080 }],
  priorityRange: { min: 40001, max: 50000 },
};
const agents = new AgentLb(imported, 'Agents', props);
agents.grantAgentAccess(new iam.Role(imported, 'AgentRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') }));

// 2. The user's own load balancer and listener, whose default action is the user's own page.
const own = new Stack(app, 'OwnListener');
const vpc = new ec2.Vpc(own, 'Vpc', { maxAzs: 2, natGateways: 0 });
const alb = new elbv2.ApplicationLoadBalancer(own, 'Alb', { vpc });
const listener = alb.addListener('Http', {
  port: 80,
  open: false,
  defaultAction: elbv2.ListenerAction.fixedResponse(200, { contentType: 'text/plain', messageBody: 'my own app' }),
});
new AgentLb(own, 'Agents', { vpc, listener, capabilities: [{ name: 'vision' }], priorityRange: { min: 100, max: 199 } });

// The parts are exported too, with their types.
const parts: [typeof CapabilityRouter, typeof LeaseTable, typeof RegistrySync] = [CapabilityRouter, LeaseTable, RegistrySync];
if (parts.some((p) => typeof p !== 'function')) throw new Error('a construct class is missing');

app.synth();
