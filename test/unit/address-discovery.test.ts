/**
 * Address discovery against local stand-ins of the ECS task metadata endpoint v4 and the EC2
 * instance metadata service (IMDSv2 with tokens, IMDSv1 only, refusing, slow, malformed).
 */
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AddressNotFoundError, AgentLease, ConfigError, discoverAddress } from '../../lib/sdk';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
const servers: Server[] = [];

/** A local HTTP server answering with `handler`; resolves to its base URL. */
async function standIn(handler: Handler): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

const json = (res: ServerResponse, body: unknown, status = 200) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
};

/** The ECS agent's answers for an awsvpc task (shapes from the task metadata endpoint v4 docs). */
function ecsAgent(container: unknown = { Networks: [{ NetworkMode: 'awsvpc', IPv4Addresses: ['10.0.2.106'] }] }, task: unknown = { AvailabilityZone: 'eu-west-1b' }): Handler {
  return (req, res) => {
    if (req.url === '/v4/abc') return json(res, container);
    if (req.url === '/v4/abc/task') return json(res, task);
    json(res, { error: 'not found' }, 404);
  };
}

interface ImdsOptions {
  /** Status of the token PUT: 200 (IMDSv2), 404/405 (a service without tokens). */
  readonly tokenStatus?: number;
  /** GETs without a valid token get 401 (what `HttpTokens: required` does). */
  readonly requireToken?: boolean;
  readonly localIpv4?: string | null;
  readonly ipv6?: string;
  readonly zone?: string;
}

function imds(o: ImdsOptions = {}): Handler & { seen: string[] } {
  const seen: string[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    seen.push(`${req.method} ${req.url} ttl=${req.headers['x-aws-ec2-metadata-token-ttl-seconds'] ?? '-'} token=${req.headers['x-aws-ec2-metadata-token'] ?? '-'}`);
    if (req.method === 'PUT' && req.url === '/latest/api/token') {
      res.statusCode = o.tokenStatus ?? 200;
      res.end(res.statusCode === 200 ? 'TOKEN-1' : '');
      return;
    }
    if (o.requireToken && req.headers['x-aws-ec2-metadata-token'] !== 'TOKEN-1') {
      res.statusCode = 401;
      res.end();
      return;
    }
    const answers: Record<string, string | null | undefined> = {
      '/latest/meta-data/local-ipv4': o.localIpv4 === undefined ? '10.0.7.42' : o.localIpv4,
      '/latest/meta-data/ipv6': o.ipv6,
      '/latest/meta-data/placement/availability-zone': o.zone ?? 'eu-west-1c',
    };
    const answer = answers[req.url ?? ''];
    res.statusCode = answer == null ? 404 : 200;
    res.end(answer ?? '');
  };
  return Object.assign(handler, { seen });
}

describe('discoverAddress on ECS (task metadata endpoint v4)', () => {
  it("reads the container's private IPv4 and the task's Availability Zone", async () => {
    // Prepare
    const base = await standIn(ecsAgent());

    // Act
    const found = await discoverAddress({ env: { ECS_CONTAINER_METADATA_URI_V4: `${base}/v4/abc` } });

    // Assess
    expect(found).toEqual({ address: '10.0.2.106', availabilityZone: 'eu-west-1b', source: 'ecs-task-metadata' });
  });

  it('keeps the address when the task document has no zone or is malformed', async () => {
    // Prepare
    const base = await standIn(ecsAgent(undefined, '{"Cluster": '));

    // Act
    const found = await discoverAddress({ env: { ECS_CONTAINER_METADATA_URI_V4: `${base}/v4/abc` } });

    // Assess
    expect(found).toEqual({ address: '10.0.2.106', source: 'ecs-task-metadata' });
  });

  it('takes the IPv6 address of an IPv6-only task, in canonical form', async () => {
    const base = await standIn(ecsAgent({ Networks: [{ NetworkMode: 'awsvpc', IPv6Addresses: ['FD00:0:0::7'] }] }));
    const found = await discoverAddress({ env: { ECS_CONTAINER_METADATA_URI_V4: `${base}/v4/abc` }, sources: ['ecs-task-metadata'] });
    expect(found.address).toBe('fd00::7');
  });

  it('refuses a bridge-mode container address and does not fall back to the instance address (the port would be wrong)', async () => {
    // Prepare
    const base = await standIn(ecsAgent({ Networks: [{ NetworkMode: 'bridge', IPv4Addresses: ['172.17.0.2'] }] }));
    const ec2 = imds();
    const imdsBase = await standIn(ec2);

    // Act
    const error = await discoverAddress({ env: { ECS_CONTAINER_METADATA_URI_V4: `${base}/v4/abc`, AWS_EC2_METADATA_SERVICE_ENDPOINT: imdsBase } }).catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(AddressNotFoundError);
    expect((error as AddressNotFoundError).attempts).toEqual([
      {
        source: 'ecs-task-metadata',
        reason:
          "network mode bridge: the container's address 172.17.0.2 is on the Docker bridge, which the load balancer cannot reach; pass the instance's address and the mapped host port",
      },
    ]);
    expect(ec2.seen).toEqual([]);
  });

  it('falls through to EC2 instance metadata in host network mode', async () => {
    const base = await standIn(ecsAgent({ Networks: [{ NetworkMode: 'host' }] }));
    const imdsBase = await standIn(imds());
    const found = await discoverAddress({ env: { ECS_CONTAINER_METADATA_URI_V4: `${base}/v4/abc`, AWS_EC2_METADATA_SERVICE_ENDPOINT: imdsBase } });
    expect(found).toEqual({ address: '10.0.7.42', availabilityZone: 'eu-west-1c', source: 'ec2-instance-metadata' });
  });

  it.each<[string, Handler, RegExp]>([
    ['malformed JSON', (_q, res) => json(res, '{"Networks": [', 200), /GET http:\/\/127\.0\.0\.1:\d+\/v4\/abc: not JSON \(/],
    ['a JSON array', (_q, res) => json(res, []), /: not a JSON object$/],
    ['no Networks', (_q, res) => json(res, { DockerId: 'x' }), /: no Networks in the container metadata$/],
    ['no address', (_q, res) => json(res, { Networks: [{ NetworkMode: 'awsvpc', IPv4Addresses: ['not-an-ip'] }] }), /: no IPv4Addresses or IPv6Addresses in Networks\[0\]/],
    ['HTTP 500', (_q, res) => json(res, 'oops', 500), /: HTTP 500$/],
  ])('explains an ECS answer with %s', async (_name, handler, reason) => {
    const base = await standIn(handler);
    const error = (await discoverAddress({ env: { ECS_CONTAINER_METADATA_URI_V4: `${base}/v4/abc` }, sources: ['ecs-task-metadata'] }).catch((e: unknown) => e)) as AddressNotFoundError;
    expect(error.code).toBe('ADDRESS_NOT_FOUND');
    expect(error.attempts[0].reason).toMatch(reason);
  });
});

describe('discoverAddress on EC2 (instance metadata)', () => {
  it('gets an IMDSv2 token, then reads local-ipv4 and the placement zone with it', async () => {
    // Prepare
    const service = imds({ requireToken: true });
    const base = await standIn(service);

    // Act
    const found = await discoverAddress({ env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: `${base}/` } });

    // Assess
    expect(found).toEqual({ address: '10.0.7.42', availabilityZone: 'eu-west-1c', source: 'ec2-instance-metadata' });
    expect(service.seen).toEqual([
      'PUT /latest/api/token ttl=60 token=-',
      'GET /latest/meta-data/local-ipv4 ttl=- token=TOKEN-1',
      'GET /latest/meta-data/placement/availability-zone ttl=- token=TOKEN-1',
    ]);
  });

  it('reads without a token from a service that has none (IMDSv1 only), as the AWS SDKs do', async () => {
    const service = imds({ tokenStatus: 404 });
    const base = await standIn(service);
    const found = await discoverAddress({ env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: base } });
    expect(found.address).toBe('10.0.7.42');
    expect(service.seen[1]).toBe('GET /latest/meta-data/local-ipv4 ttl=- token=-');
  });

  it('does not fall back to IMDSv1 when AWS_EC2_METADATA_V1_DISABLED=true', async () => {
    const base = await standIn(imds({ tokenStatus: 405 }));
    const error = (await discoverAddress({ env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: base, AWS_EC2_METADATA_V1_DISABLED: 'true' } }).catch((e: unknown) => e)) as AddressNotFoundError;
    expect(error.attempts.at(-1)).toEqual({ source: 'ec2-instance-metadata', reason: `PUT ${base}/latest/api/token: HTTP 405` });
  });

  it('explains a 401: the instance requires tokens the service did not give', async () => {
    const base = await standIn(imds({ tokenStatus: 403, requireToken: true }));
    const error = (await discoverAddress({ env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: base } }).catch((e: unknown) => e)) as AddressNotFoundError;
    expect(error.attempts.at(-1)!.reason).toBe(`GET ${base}/latest/meta-data/local-ipv4: HTTP 401 (the instance requires IMDSv2 tokens)`);
  });

  it('takes the IPv6 address of an IPv6-only instance', async () => {
    const base = await standIn(imds({ localIpv4: null, ipv6: '2600:1f18:0:0::5' }));
    const found = await discoverAddress({ env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: base } });
    expect(found.address).toBe('2600:1f18::5');
  });

  it('refuses an answer that is not an IP address', async () => {
    const base = await standIn(imds({ localIpv4: '<html>captive portal</html>' }));
    const error = (await discoverAddress({ env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: base } }).catch((e: unknown) => e)) as AddressNotFoundError;
    expect(error.attempts.at(-1)!.reason).toBe('not an IP address: "<html>captive portal</html>"');
  });

  it('gives up on a service that does not answer within the timeout', async () => {
    // Prepare: accepts the connection, never answers
    const base = await standIn(() => undefined);
    const started = Date.now();

    // Act
    const error = (await discoverAddress({ env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: base }, timeoutMs: 200 }).catch((e: unknown) => e)) as AddressNotFoundError;

    // Assess
    expect(error.attempts.at(-1)!.reason).toBe(`PUT ${base}/latest/api/token: no answer within 200 ms`);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('lists every source tried and why each failed', async () => {
    // Prepare: nothing listens on this port any more
    const base = await standIn(() => undefined);
    servers.pop()!.close();

    // Act
    const error = (await discoverAddress({ env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: base } }).catch((e: unknown) => e)) as AddressNotFoundError;

    // Assess
    expect(error.message).toBe(
      `no address to register: pass one explicitly (tried ecs-task-metadata: ECS_CONTAINER_METADATA_URI_V4 is not set (not an ECS task); ec2-instance-metadata: PUT ${base}/latest/api/token: ECONNREFUSED: connect ECONNREFUSED ${base.slice(7)})`,
    );
  });

  it('does not ask the instance metadata service when AWS_EC2_METADATA_DISABLED=true', async () => {
    const error = (await discoverAddress({ env: { AWS_EC2_METADATA_DISABLED: 'TRUE' } }).catch((e: unknown) => e)) as AddressNotFoundError;
    expect(error.attempts.at(-1)).toEqual({ source: 'ec2-instance-metadata', reason: 'disabled by AWS_EC2_METADATA_DISABLED=true' });
  });

  it('refuses bad options', async () => {
    await expect(discoverAddress({ timeoutMs: 0 })).rejects.toThrow(new ConfigError('discoverAddress: timeoutMs must be a number of milliseconds > 0, got 0'));
    await expect(discoverAddress({ sources: ['k8s' as never] })).rejects.toThrow('discoverAddress: sources must be ecs-task-metadata and/or ec2-instance-metadata, got ["k8s"]');
  });
});

describe('AgentLease.create', () => {
  const base = { tableName: 'leases', port: 8080, capabilities: ['vision'], clientConfig: { region: 'eu-west-1' } };

  it('uses the discovered address and records the zone in metadata, never in availabilityZone', async () => {
    // Prepare
    const ecs = await standIn(ecsAgent());

    // Act
    const lease = await AgentLease.create({ ...base, metadata: { build: '42' }, addressDiscovery: { env: { ECS_CONTAINER_METADATA_URI_V4: `${ecs}/v4/abc` } } });

    // Assess
    expect(lease.target).toBe('10.0.2.106:8080');
    expect(lease.discoveredAddress).toEqual({ address: '10.0.2.106', availabilityZone: 'eu-west-1b', source: 'ecs-task-metadata' });
    const options = (lease as unknown as { options: { metadata: unknown; availabilityZone?: string } }).options;
    expect(options.metadata).toEqual({ build: { S: '42' }, zone: { S: 'eu-west-1b' } });
    expect(options.availabilityZone).toBeUndefined();
  });

  it('an explicit address always wins: nothing is looked up', async () => {
    // Prepare
    const service = imds();
    const imdsBase = await standIn(service);

    // Act
    const lease = await AgentLease.create({ ...base, address: '10.0.9.9', addressDiscovery: { env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: imdsBase } } });

    // Assess
    expect(lease.target).toBe('10.0.9.9:8080');
    expect(lease.discoveredAddress).toBeUndefined();
    expect(service.seen).toEqual([]);
  });

  it('the constructor says where to go when the address is missing', () => {
    expect(() => new AgentLease(base as never)).toThrow(
      new ConfigError('AgentLease: address is missing: pass the private address to register, or create the lease with `await AgentLease.create(options)`, which finds it in ECS task or EC2 instance metadata'),
    );
  });
});
