import { DescribeInstancesCommand, DescribeNetworkInterfacesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { createEc2Client, Ec2Holders, MAX_ADDRESSES_PER_CALL } from '../../lib/aws/ec2-holders';
import { Ec2LookupError } from '../../lib/core/errors';
import { awsError, privateIp } from '../support/lease-fixtures';

const ec2Mock = mockClient(EC2Client);
const client = new EC2Client({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' }, maxAttempts: 1 });

beforeEach(() => {
  ec2Mock.reset();
  ec2Mock.on(DescribeNetworkInterfacesCommand).resolves({ NetworkInterfaces: [] });
  ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [] });
});

describe('createEc2Client', () => {
  it('uses the standard retry mode', () => {
    expect(createEc2Client({ region: 'us-east-1' }).config.retryMode).toBe('standard');
  });
});

describe('Ec2Holders.lookUp', () => {
  it('asks once, filtered on the VPC and the addresses, and maps every address an interface holds (secondary ones too)', async () => {
    // Prepare
    ec2Mock.on(DescribeNetworkInterfacesCommand).resolves({
      NetworkInterfaces: [
        {
          NetworkInterfaceId: 'eni-a',
          VpcId: 'vpc-1',
          PrivateIpAddress: '10.0.0.1',
          PrivateIpAddresses: [{ PrivateIpAddress: '10.0.0.1' }, { PrivateIpAddress: '10.0.0.2' }],
          Groups: [{ GroupId: 'sg-agents' }, { GroupId: 'sg-x' }],
        },
      ],
    });
    const holders = new Ec2Holders(client);

    // Act
    const facts = await holders.lookUp('vpc-1', ['10.0.0.1', '10.0.0.2', '10.0.0.3']);

    // Assess
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeNetworkInterfacesCommand, 1);
    expect(ec2Mock).toHaveReceivedCommandWith(DescribeNetworkInterfacesCommand, {
      Filters: [
        { Name: 'vpc-id', Values: ['vpc-1'] },
        { Name: 'addresses.private-ip-address', Values: ['10.0.0.1', '10.0.0.2', '10.0.0.3'] },
      ],
      MaxResults: 1000,
    });
    expect(Object.fromEntries(facts)).toEqual({
      '10.0.0.1': { holder: 'eni-a', vpcId: 'vpc-1', securityGroupIds: ['sg-agents', 'sg-x'] },
      '10.0.0.2': { holder: 'eni-a', vpcId: 'vpc-1', securityGroupIds: ['sg-agents', 'sg-x'] },
      '10.0.0.3': null,
    });
    expect(holders.calls).toBe(1);
  });

  it('chunks at MAX_ADDRESSES_PER_CALL addresses and follows NextToken', async () => {
    ec2Mock
      .on(DescribeNetworkInterfacesCommand)
      .resolvesOnce({ NetworkInterfaces: [], NextToken: 'more' })
      .resolves({ NetworkInterfaces: [] });
    const holders = new Ec2Holders(client);
    const addresses = Array.from({ length: MAX_ADDRESSES_PER_CALL + 1 }, (_, i) => privateIp(i + 1));

    await holders.lookUp('vpc-1', addresses);

    const calls = ec2Mock.commandCalls(DescribeNetworkInterfacesCommand);
    expect(calls.map((c) => c.args[0].input.Filters![1].Values!.length).sort((a, b) => a - b)).toEqual([1, 200, 200]);
    expect(calls.some((c) => c.args[0].input.NextToken === 'more')).toBe(true);
    expect(holders.calls).toBe(3);
  });

  it('asks about IPv6 addresses by their own filter and matches EC2\'s spelling to the canonical one', async () => {
    ec2Mock.on(DescribeNetworkInterfacesCommand).resolves({
      NetworkInterfaces: [{ NetworkInterfaceId: 'eni-6', VpcId: 'vpc-1', Ipv6Addresses: [{ Ipv6Address: 'FD00:0:0::1' }], Groups: [{ GroupId: 'sg-agents' }] }],
    });
    const facts = await new Ec2Holders(client).lookUp('vpc-1', ['fd00::1']);
    expect(ec2Mock).toHaveReceivedCommandWith(DescribeNetworkInterfacesCommand, { Filters: [{ Name: 'vpc-id', Values: ['vpc-1'] }, { Name: 'ipv6-addresses.ipv6-address', Values: ['fd00::1'] }] });
    expect(facts.get('fd00::1')).toEqual({ holder: 'eni-6', vpcId: 'vpc-1', securityGroupIds: ['sg-agents'] });
  });

  it('judges an instance by the groups of all its interfaces', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({
      Reservations: [
        {
          Instances: [
            {
              InstanceId: 'i-0123456789abcdef0',
              VpcId: 'vpc-1',
              SecurityGroups: [{ GroupId: 'sg-a' }],
              NetworkInterfaces: [{ Groups: [{ GroupId: 'sg-a' }] }, { Groups: [{ GroupId: 'sg-agents' }] }],
            },
          ],
        },
      ],
    });
    const facts = await new Ec2Holders(client).lookUp('vpc-1', ['i-0123456789abcdef0', 'i-00000000000000001']);
    expect(ec2Mock).not.toHaveReceivedCommand(DescribeNetworkInterfacesCommand);
    expect(Object.fromEntries(facts)).toEqual({
      'i-0123456789abcdef0': { holder: 'i-0123456789abcdef0', vpcId: 'vpc-1', securityGroupIds: ['sg-a', 'sg-agents'] },
      'i-00000000000000001': null,
    });
  });

  it.each([
    ['throttling', awsError('RequestLimitExceeded', 503), true],
    ['a missing permission', awsError('UnauthorizedOperation', 403), false],
  ])('maps %s to an Ec2LookupError (transient: %s), never a partial answer', async (_what, error, transient) => {
    ec2Mock.on(DescribeNetworkInterfacesCommand).rejects(error);
    const failure = await new Ec2Holders(client).lookUp('vpc-1', ['10.0.0.1']).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(Ec2LookupError);
    expect(failure).toMatchObject({ code: 'EC2_LOOKUP', transient, awsErrorName: (error as Error).name });
    expect((failure as Error).message).toMatch(/^EC2 DescribeNetworkInterfaces failed: /);
  });

  it('gives up at its deadline', async () => {
    ec2Mock.on(DescribeNetworkInterfacesCommand).callsFake(() => new Promise(() => undefined));
    const failure = await new Ec2Holders(client).lookUp('vpc-1', ['10.0.0.1'], { abortSignal: AbortSignal.timeout(20) }).catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: 'EC2_LOOKUP', transient: true, awsErrorName: 'AbortError' });
  });
});
