import { CreateNetworkInterfaceCommand, DescribeSubnetsCommand, EC2Client, EC2ClientConfig } from '@aws-sdk/client-ec2';
import { ConfigError } from '../core/errors';
import type { AdmissionConfig } from '../core/runtime-config';

/**
 * Local mode admits agents as AWS does: by the network interface holding their address. Loopback
 * agents are admitted as local processes; an agent at any other address needs an interface in
 * moto's VPC carrying the agents' security group, as an ECS task or an instance would have.
 * This puts such interfaces there (one per address, in the VPC's first subnet).
 */
export async function createAgentInterfaces(
  clientConfig: EC2ClientConfig,
  admission: AdmissionConfig | undefined,
  addresses: readonly string[],
  securityGroupIds?: readonly string[],
): Promise<string[]> {
  if (admission === undefined) throw new ConfigError('this deployment admits addresses without EC2 (no admission in its configuration): no interface is needed');
  const ec2 = new EC2Client(clientConfig);
  try {
    const subnets = await ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: 'vpc-id', Values: [admission.vpcId] }] }));
    const subnetId = subnets.Subnets?.[0]?.SubnetId;
    if (subnetId === undefined) throw new ConfigError(`the local VPC ${admission.vpcId} has no subnet to put agents' interfaces in`);
    const ids: string[] = [];
    for (const address of addresses) {
      const out = await ec2.send(new CreateNetworkInterfaceCommand({ SubnetId: subnetId, PrivateIpAddress: address, Groups: [...(securityGroupIds ?? admission.securityGroups)] }));
      ids.push(out.NetworkInterface?.NetworkInterfaceId ?? '');
    }
    return ids;
  } finally {
    ec2.destroy();
  }
}
