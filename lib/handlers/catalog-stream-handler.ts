import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import type { DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { ConfigError } from '../core/errors';
import { addressPolicyFor, RuntimeConfig } from '../core/runtime-config';
import { createElbClient } from '../aws/clients';
import { createDynamoClient } from '../aws/dynamo-client';
import { LeaseStore } from '../aws/lease-store';
import { RegistryStateStore } from '../aws/registry-state-store';
import { toLeaseChange } from '../aws/stream-records';
import { CatalogStreamReport, syncCatalogBatch } from '../registry/catalog-stream';
import { runtimeOnce } from './runtime-config-loader';
import { publishCatalogStreamReport, publishInvocationFailure, publishResolutionWarning } from './telemetry';

export interface CatalogStreamHandlerOptions {
  readonly config?: RuntimeConfig;
  /** For a configuration that names capabilities only: their target groups are found on the load balancer. @default a client from the environment */
  readonly elbClient?: ElasticLoadBalancingV2Client;
  /** The lease table's (consistent reads of the changed leases) and the registry state table's client. @default a client from the environment */
  readonly dynamoClient?: DynamoDBClient;
  readonly logger?: Logger;
  readonly metrics?: Metrics;
  /** Epoch ms. @default Date.now */
  readonly now?: () => number;
}

/**
 * Builds the catalog's stream handler (lib/registry/catalog-stream.ts): the lease stream's second
 * reader, so that the member index's writes never delay the sync's next batch. Local mode and tests
 * inject clients, Lambda uses the environment.
 */
export function createCatalogStreamHandler(options: CatalogStreamHandlerOptions = {}) {
  const logger = options.logger ?? new Logger();
  const metrics = options.metrics ?? new Metrics();
  const now = options.now ?? Date.now;
  const elbClient = options.elbClient ?? createElbClient();
  const dynamoClient = options.dynamoClient ?? createDynamoClient();
  const ready = runtimeOnce(options.config, elbClient, (config) => {
    if (!config.catalog) throw new ConfigError('the catalog stream function needs a configuration with a `catalog` (AGENT_LB_CONFIG)');
    return {
      state: new RegistryStateStore(dynamoClient, config.catalog.tableName),
      catalog: config.catalog,
      store: new LeaseStore(dynamoClient, config.tableName),
      routing: config.routing,
      policy: addressPolicyFor(config.routing),
      now,
    };
  }, { onCatalogHostsUnknown: (error) => publishResolutionWarning(error, logger, metrics) });

  return async (event: DynamoDBStreamEvent): Promise<DynamoDBBatchResponse> => {
    const records = event.Records.map(toLeaseChange);
    let report: CatalogStreamReport;
    try {
      report = await syncCatalogBatch(records, await ready());
    } catch (error) {
      publishInvocationFailure(error, logger, metrics);
      throw error;
    }
    const oldest = records.reduce<number | undefined>((m, r) => (r.writtenAtSeconds === undefined || (m !== undefined && m <= r.writtenAtSeconds) ? m : r.writtenAtSeconds), undefined);
    publishCatalogStreamReport(report, oldest === undefined ? undefined : Math.max(0, now() - oldest * 1000), logger, metrics);
    return { batchItemFailures: report.firstFailedRecordId === undefined ? [] : [{ itemIdentifier: report.firstFailedRecordId }] };
  };
}
