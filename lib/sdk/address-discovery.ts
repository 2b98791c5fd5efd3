import { request } from 'node:http';
import { isIP, isIPv4 } from 'node:net';
import { ConfigError } from '../core/errors';
import { quoteUntrusted } from '../core/untrusted-text';
import { AddressDiscoveryAttempt, AddressDiscoverySource, AddressNotFoundError } from './errors';

/** Default time one metadata request may take: short, so a laptop (no metadata service) does not hang. */
export const DEFAULT_DISCOVERY_TIMEOUT_MS = 1000;
/** IMDSv2 session token lifetime requested; the token is used for two reads and dropped. */
const IMDS_TOKEN_TTL_SECONDS = 60;
const IMDS_IPV4_ENDPOINT = 'http://169.254.169.254';
const IMDS_IPV6_ENDPOINT = 'http://[fd00:ec2::254]';
/** Metadata answers are a few hundred bytes; anything this large is not a metadata service. */
const MAX_BODY_BYTES = 64 * 1024;

/** Where an agent runs, as its metadata service tells it. */
export interface DiscoveredAddress {
  /** Private IPv4 address (IPv6 when the task or instance has no IPv4), canonical text. */
  readonly address: string;
  /** Availability Zone of the task or instance (informational; never the lease's `availabilityZone`). */
  readonly availabilityZone?: string;
  readonly source: AddressDiscoverySource;
}

export interface AddressDiscoveryOptions {
  /**
   * Environment to read: `ECS_CONTAINER_METADATA_URI_V4`; `AWS_EC2_METADATA_DISABLED`,
   * `AWS_EC2_METADATA_SERVICE_ENDPOINT`, `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE` (`IPv4`/`IPv6`)
   * and `AWS_EC2_METADATA_V1_DISABLED`, with the meanings the AWS SDKs give them.
   * @default process.env
   */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Time each metadata request may take, in milliseconds. @default 1000 */
  readonly timeoutMs?: number;
  /** Where to look, in order. @default ['ecs-task-metadata', 'ec2-instance-metadata'] */
  readonly sources?: readonly AddressDiscoverySource[];
}

/** A source that could not give an address; `final` stops the search (a wrong address is worse than none). */
class NoAddress extends Error {
  public constructor(
    message: string,
    public readonly final = false,
  ) {
    super(message);
  }
}

interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

function call(method: 'GET' | 'PUT', url: string, headers: Record<string, string>, timeoutMs: number): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    // agent: false — one connection per request, nothing left open to keep the process alive.
    const req = request(url, { method, headers, agent: false, signal: AbortSignal.timeout(timeoutMs) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) req.destroy(new NoAddress(`${method} ${url}: answer larger than ${MAX_BODY_BYTES} bytes`));
        else chunks.push(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', (error: Error & { code?: string }) => {
      if (error instanceof NoAddress) reject(error);
      else if (error.name === 'AbortError' || error.name === 'TimeoutError') reject(new NoAddress(`${method} ${url}: no answer within ${timeoutMs} ms`));
      else reject(new NoAddress(`${method} ${url}: ${error.code ?? error.name}: ${error.message}`));
    });
    req.end();
  });
}

/** The canonical (RFC 5952) text of an IP address, or undefined when `text` is not one. */
function canonicalIp(text: unknown): string | undefined {
  if (typeof text !== 'string') return undefined;
  const family = isIP(text);
  if (family === 4) return text;
  if (family === 6 && !text.includes('%')) return new URL(`http://[${text}]/`).hostname.slice(1, -1);
  return undefined;
}

function parseJson(body: string, url: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (cause) {
    throw new NoAddress(`GET ${url}: not JSON (${(cause as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new NoAddress(`GET ${url}: not a JSON object`);
  return value as Record<string, unknown>;
}

/**
 * ECS task metadata endpoint v4: the container's private address from `${uri}` (Networks[] of
 * an `awsvpc` task — Fargate always), the Availability Zone from `${uri}/task`.
 */
async function fromEcs(env: AddressDiscoveryOptions['env'] & object, timeoutMs: number): Promise<DiscoveredAddress> {
  const uri = env.ECS_CONTAINER_METADATA_URI_V4;
  if (uri === undefined || uri === '') throw new NoAddress('ECS_CONTAINER_METADATA_URI_V4 is not set (not an ECS task)');
  const container = await call('GET', uri, {}, timeoutMs);
  if (container.status !== 200) throw new NoAddress(`GET ${uri}: HTTP ${container.status}`);
  const networks = parseJson(container.body, uri).Networks;
  if (!Array.isArray(networks) || networks.length === 0) throw new NoAddress(`GET ${uri}: no Networks in the container metadata`);
  const network = networks[0] as Record<string, unknown>;
  const mode = typeof network?.NetworkMode === 'string' ? network.NetworkMode : 'unknown';
  if (mode === 'host') throw new NoAddress('network mode host: the task has the instance address');
  const v4 = Array.isArray(network?.IPv4Addresses) ? network.IPv4Addresses.map(canonicalIp).find((a) => a !== undefined && isIPv4(a)) : undefined;
  const v6 = Array.isArray(network?.IPv6Addresses) ? network.IPv6Addresses.map(canonicalIp).find((a) => a !== undefined && !isIPv4(a)) : undefined;
  const address = v4 ?? v6;
  if (mode === 'bridge') {
    throw new NoAddress(
      `network mode bridge: the container's address ${address ?? '(none)'} is on the Docker bridge, which the load balancer cannot reach; pass the instance's address and the mapped host port`,
      true,
    );
  }
  if (address === undefined) throw new NoAddress(`GET ${uri}: no IPv4Addresses or IPv6Addresses in Networks[0] (${quoteUntrusted(network)})`);
  let availabilityZone: string | undefined;
  try {
    const task = await call('GET', `${uri}/task`, {}, timeoutMs);
    const zone = task.status === 200 ? parseJson(task.body, `${uri}/task`).AvailabilityZone : undefined;
    if (typeof zone === 'string' && zone !== '') availabilityZone = zone;
  } catch {
    // The zone is informational: an address without it is still the right address.
  }
  return { address, source: 'ecs-task-metadata', ...(availabilityZone === undefined ? {} : { availabilityZone }) };
}

/** EC2 instance metadata: an IMDSv2 token, then local-ipv4 (or ipv6) and placement/availability-zone. */
async function fromEc2(env: AddressDiscoveryOptions['env'] & object, timeoutMs: number): Promise<DiscoveredAddress> {
  if (env.AWS_EC2_METADATA_DISABLED?.toLowerCase() === 'true') throw new NoAddress('disabled by AWS_EC2_METADATA_DISABLED=true');
  const mode = env.AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE?.toLowerCase();
  const endpoint = (env.AWS_EC2_METADATA_SERVICE_ENDPOINT || (mode === 'ipv6' ? IMDS_IPV6_ENDPOINT : IMDS_IPV4_ENDPOINT)).replace(/\/+$/, '');
  const tokenHeaders = { 'x-aws-ec2-metadata-token-ttl-seconds': String(IMDS_TOKEN_TTL_SECONDS), 'content-length': '0' };
  const token = await call('PUT', `${endpoint}/latest/api/token`, tokenHeaders, timeoutMs);
  const headers: Record<string, string> = {};
  if (token.status === 200 && token.body !== '') headers['x-aws-ec2-metadata-token'] = token.body;
  else if ([403, 404, 405].includes(token.status) && env.AWS_EC2_METADATA_V1_DISABLED?.toLowerCase() !== 'true') {
    // What the AWS SDKs do: a service without tokens (IMDSv1 only) is read without one.
  } else throw new NoAddress(`PUT ${endpoint}/latest/api/token: HTTP ${token.status}${token.status === 200 ? ' with an empty token' : ''}`);

  const read = async (path: string): Promise<string | undefined> => {
    const url = `${endpoint}/latest/meta-data/${path}`;
    const answer = await call('GET', url, headers, timeoutMs);
    if (answer.status === 404) return undefined;
    if (answer.status === 401) throw new NoAddress(`GET ${url}: HTTP 401 (${headers['x-aws-ec2-metadata-token'] ? 'token refused' : 'the instance requires IMDSv2 tokens'})`);
    if (answer.status !== 200) throw new NoAddress(`GET ${url}: HTTP ${answer.status}`);
    return answer.body.trim();
  };
  const v4 = await read('local-ipv4');
  const text = v4 ?? (await read('ipv6'));
  const address = canonicalIp(text);
  if (address === undefined) {
    throw new NoAddress(text === undefined ? 'neither local-ipv4 nor ipv6 in the instance metadata (HTTP 404)' : `not an IP address: ${quoteUntrusted(text)}`);
  }
  let availabilityZone: string | undefined;
  try {
    availabilityZone = (await read('placement/availability-zone')) || undefined;
  } catch {
    // Informational only, as for ECS.
  }
  return { address, source: 'ec2-instance-metadata', ...(availabilityZone === undefined ? {} : { availabilityZone }) };
}

const SOURCES: Record<AddressDiscoverySource, typeof fromEcs> = { 'ecs-task-metadata': fromEcs, 'ec2-instance-metadata': fromEc2 };

/**
 * Finds the private address an agent should register, from the ECS task metadata endpoint v4
 * (`ECS_CONTAINER_METADATA_URI_V4`), then EC2 instance metadata (IMDSv2, falling back to
 * IMDSv1 where the service has no tokens, as the AWS SDKs do). Each request times out after
 * `timeoutMs`; a source that is not there fails fast.
 * @throws AddressNotFoundError (code `ADDRESS_NOT_FOUND`) listing every source tried and why
 *   it gave nothing
 * @throws ConfigError for a bad option
 */
export async function discoverAddress(options: AddressDiscoveryOptions = {}): Promise<DiscoveredAddress> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_DISCOVERY_TIMEOUT_MS;
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new ConfigError(`discoverAddress: timeoutMs must be a number of milliseconds > 0, got ${JSON.stringify(timeoutMs)}`);
  }
  const sources: readonly AddressDiscoverySource[] = options.sources ?? (Object.keys(SOURCES) as AddressDiscoverySource[]);
  if (!Array.isArray(sources as unknown) || sources.length === 0 || !sources.every((s) => typeof s === 'string' && Object.hasOwn(SOURCES, s))) {
    throw new ConfigError(`discoverAddress: sources must be ${Object.keys(SOURCES).join(' and/or ')}, got ${JSON.stringify(sources)}`);
  }
  const env = options.env ?? process.env;
  const attempts: AddressDiscoveryAttempt[] = [];
  for (const source of sources) {
    try {
      return await SOURCES[source](env, timeoutMs);
    } catch (error) {
      attempts.push({ source, reason: (error as Error).message });
      if (error instanceof NoAddress && error.final) break;
    }
  }
  throw new AddressNotFoundError(attempts);
}
