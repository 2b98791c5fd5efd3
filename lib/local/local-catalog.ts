import type { DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import type { ALBEvent } from 'aws-lambda';
import type { CatalogConfig } from '../core/catalog-document';
import { catalogHosts } from '../core/catalog-hosts';
import { CATALOG_ENV, parseCatalogServeConfig } from '../core/catalog-request';
import { ConfigError, RegistryStateError } from '../core/errors';
import { catalogConfigOf, parseCatalogSettings } from '../core/runtime-config';
import { createDynamoClient } from '../aws/dynamo-client';
import { LeaseStore } from '../aws/lease-store';
import { RegistryStateStore } from '../aws/registry-state-store';
import { CatalogReport, NO_CATALOG_CHANGE, RegistryCatalog, repairCatalog } from '../registry/catalog-update';
import { createCatalogHandler } from '../handlers/catalog-handler';
import type { AddressPolicy } from '../core/address-policy';
import type { RoutingConfig } from '../core/lease-schema';
import type { LambdaInvoker } from './data-plane';
import type { LocalDeployment } from './provision';

/**
 * The capability catalog in local mode, as the stack deploys it: its configuration read from the
 * registry functions' `AGENT_LB_CONFIG` and the groups' tags in the synthesized template, the
 * registry state table in DynamoDB Local, and the catalog function (the Lambda handler itself)
 * invoked in-process by the local load balancer through the ARN its Lambda target group names.
 */

/** Where a client reaches one local load balancer: its host, and its port when load balancers differ in ports. */
export interface LocalLoadBalancerAddress {
  readonly host: string;
  readonly port?: number;
}

/**
 * The catalog's configuration for the sync and reconcile handlers; `undefined` when the stack has
 * no catalog. `addresses`: where each load balancer (by ARN) is reached, which the catalog names
 * in the route of every capability it serves (local mode's load balancers are one host, each on
 * a port of its own). @default - none: the entries name no host
 */
export function localCatalogConfig(deployment: LocalDeployment, addresses?: ReadonlyMap<string, LocalLoadBalancerAddress>): CatalogConfig | undefined {
  if (deployment.registryTableName === undefined || deployment.registryConfig === undefined) return undefined;
  let raw: { catalog?: unknown };
  try {
    raw = JSON.parse(deployment.registryConfig) as { catalog?: unknown };
  } catch (cause) {
    throw new ConfigError(`the template's registry configuration is not JSON: ${(cause as Error).message}`, { cause });
  }
  if (raw.catalog === undefined) return undefined;
  // Local mode has one load balancer and no DNS names: a deployed zone's names are not its host.
  const { dnsDomain: _deployedNames, ...settings } = parseCatalogSettings({ ...(raw.catalog as object), tableName: deployment.registryTableName });
  const tagged = Object.entries(deployment.capabilityTags).map(([capability, tags]) => ({ capability, tags }));
  const capabilities = Object.keys(deployment.targetGroups);
  const placement = Object.fromEntries(deployment.loadBalancers.flatMap((lb) => lb.capabilities.map((c) => [c, [lb.loadBalancerArn]])));
  const hosts = addresses === undefined ? undefined : catalogHosts(placement, new Map([...addresses].map(([arn, a]) => [arn, a.host])));
  const ports = Object.fromEntries(
    Object.entries(placement).flatMap(([c, [arn]]) => {
      const port = addresses?.get(arn)?.port;
      return port === undefined ? [] : [[c, port]];
    }),
  );
  const config = catalogConfigOf(settings, capabilities, Object.keys(deployment.variantWeights), tagged, hosts);
  return Object.keys(ports).length === 0 ? config : { ...config, ports: Object.fromEntries(Object.keys(config.capabilities).filter((c) => Object.hasOwn(ports, c)).map((c) => [c, ports[c]])) };
}

/** The catalog of a local stack: its configuration, its function run in-process, and its first build. */
export interface LocalCatalog {
  /** For the sync and reconcile handlers; `undefined` when the stack has no catalog. */
  readonly config?: CatalogConfig;
  /** The functions the stack's Lambda target groups name, by ARN: what the local load balancer invokes. */
  readonly invoke: LambdaInvoker;
  /** Builds the first revision from the lease table as it is (a reconcile pass's catalog step), so `GET /agents` answers from the start. */
  build(routing: RoutingConfig, policy: AddressPolicy): Promise<CatalogReport | undefined>;
  /** Ends the functions' blocking queries and closes their client. */
  stop(): void;
}

/** The catalog of `deployment`, over DynamoDB Local (its own client, as the catalog function has its own); see {@link localCatalogConfig} for `addresses`. */
export function openLocalCatalog(deployment: LocalDeployment, dynamodbConfig: DynamoDBClientConfig, addresses?: ReadonlyMap<string, LocalLoadBalancerAddress>): LocalCatalog {
  const config = localCatalogConfig(deployment, addresses);
  const client = createDynamoClient({ ...dynamodbConfig });
  const stopping = new AbortController();
  const handlers = new Map<string, (event: ALBEvent) => Promise<unknown>>();
  for (const fn of Object.values(deployment.lambdaFunctions)) {
    const env = fn.environment[CATALOG_ENV];
    if (env === undefined || deployment.registryTableName === undefined) continue;
    const { cacheMs } = parseCatalogServeConfig(env.replace(/<[A-Za-z0-9.]+>/g, 'local'));
    handlers.set(fn.functionArn, createCatalogHandler({ config: { tableName: deployment.registryTableName, cacheMs }, dynamoClient: client, signal: stopping.signal }));
  }
  return {
    ...(config ? { config } : {}),
    invoke: async (functionArn, event) => {
      const handler = handlers.get(functionArn);
      if (handler === undefined) throw new Error(`no local handler for function ${functionArn}`);
      return handler(event);
    },
    build: async (routing, policy) => {
      if (config === undefined) return undefined;
      const store = new LeaseStore(client, deployment.tableName);
      const registry: RegistryCatalog = { state: new RegistryStateStore(client, config.tableName), catalog: config };
      const readAt = Date.now();
      try {
        const { items } = await store.scanAll(true);
        return await repairCatalog({ ...registry, store, routing, policy }, items, readAt);
      } catch (error) {
        return { ...NO_CATALOG_CHANGE, error: new RegistryStateError(`building the capability catalog failed: ${(error as Error).message}`, { cause: error }) };
      }
    },
    stop: () => {
      stopping.abort();
      client.destroy();
    },
  };
}
