import type { DynamoDBClient, DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import { DiscoveredAgent, discoverFrom, HealthFilter, parseHealthFilter } from '../core/agent-discovery';
import { ConfigError } from '../core/errors';
import { CAPABILITY_NAME } from '../core/lease-schema';
import { REGISTRY_TABLE_ENV } from '../core/registry-state';
import { createDynamoClient } from '../aws/dynamo-client';
import { RegistryStateStore } from '../aws/registry-state-store';

export interface DiscoverAgentsOptions {
  /**
   * Which agents: `healthy` (serving: active lease, healthy in the capability's target group),
   * `all` (every target the registry has registered; a lease it refused is never listed), or
   * `healthy-or-else-all` (the healthy ones, or all of those when none is healthy), as Cloud
   * Map's `DiscoverInstances`.
   * @default 'healthy'
   */
  readonly health?: HealthFilter;
  /** Metadata equalities every agent returned must satisfy (`{ model: 'large' }`); numbers and booleans compare by their text. @default none */
  readonly filter?: Readonly<Record<string, string>>;
  /** The registry state table (stack output `RegistryStateTableName`). @default process.env.AGENT_LB_REGISTRY_TABLE */
  readonly registryTableName?: string;
  /** Read the index strongly consistently (twice the read units). @default false */
  readonly consistent?: boolean;
  /** A DynamoDB client to use; give `client` or `clientConfig`, not both. @default - one from `clientConfig` */
  readonly client?: DynamoDBClient;
  readonly clientConfig?: DynamoDBClientConfig;
}

/**
 * The agents of a capability (the name agents list: `vision`, or a variant's `vision-canary`) with
 * their address, port, rotation state and metadata, for callers trusted by IAM (`AgentLb.grantDiscovery`)
 * rather than through the load balancer. One Query of the registry's member index for that
 * capability: its cost follows the capability's agents (0.5 read units per 4 KB of them,
 * eventually consistent), never the fleet's size, and no lease is read. What it shows is what the
 * registry last wrote: membership within the stream's latency, health within a reconcile (or
 * rotation-poll) interval.
 *
 * @throws ConfigError for a bad capability name, health filter or missing table name; RegistryStateError when DynamoDB fails
 */
export async function discoverAgents(capability: string, options: DiscoverAgentsOptions = {}): Promise<DiscoveredAgent[]> {
  if (!CAPABILITY_NAME.test(capability)) throw new ConfigError(`capability ${JSON.stringify(capability)} must match ${CAPABILITY_NAME.source}`);
  const health = parseHealthFilter(options.health ?? 'healthy');
  const tableName = options.registryTableName ?? process.env[REGISTRY_TABLE_ENV];
  if (!tableName) throw new ConfigError(`discoverAgents needs the registry state table: pass registryTableName or set ${REGISTRY_TABLE_ENV} (stack output RegistryStateTableName)`);
  if (options.client && options.clientConfig) throw new ConfigError('give client or clientConfig, not both');
  const client = options.client ?? createDynamoClient({ ...options.clientConfig });
  try {
    const { members } = await new RegistryStateStore(client, tableName).queryMembers(capability, options.consistent ?? false);
    return discoverFrom(members, { health, ...(options.filter ? { metadata: options.filter } : {}) });
  } finally {
    if (!options.client) client.destroy();
  }
}
