import { Token } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import { CATALOG_ATTRIBUTE_KEY, MAX_CATALOG_ATTRIBUTES } from '../core/catalog-document';
import type { CatalogSettingsJson } from '../core/runtime-config';
import type { RegistryStateTable } from './registry-state-table';
import { AgentLbValidationError } from './validation-error';

/** The capability catalog as the registry functions keep it. */
export interface RegistrySyncCatalog {
  /** The registry state table. */
  readonly table: RegistryStateTable;
  /** Request header that selects a capability. */
  readonly headerName: string;
  /** First path segment(s) of capability paths. */
  readonly pathPrefix: string;
  /**
   * Public metadata keys, at most 10: the catalog lists each capability's distinct values of them.
   *
   * @default - none
   */
  readonly attributes?: readonly string[];
  /**
   * The domain capabilities have DNS names under (`agents.example.com`: `vision.agents.example.com`):
   * the catalog's `route.host` shows `<capability>.<dnsDomain>` instead of the load balancer's name.
   *
   * @default - no DNS names: each capability's load balancer's DNS name
   */
  readonly dnsDomain?: string;
}

/** `catalogAttributes`: at most 10 metadata keys, each a plain key (the catalog shows their values publicly). */
export function checkCatalogAttributes(scope: IConstruct, keys: readonly string[]): void {
  if (keys.length > MAX_CATALOG_ATTRIBUTES) {
    throw new AgentLbValidationError(scope, `catalogAttributes lists ${keys.length} metadata keys; at most ${MAX_CATALOG_ATTRIBUTES} fit the functions' environment`);
  }
  for (const key of keys) {
    if (!Token.isUnresolved(key) && !CATALOG_ATTRIBUTE_KEY.test(key)) throw new AgentLbValidationError(scope, `catalogAttributes: ${JSON.stringify(key)} must match ${CATALOG_ATTRIBUTE_KEY.source}`);
  }
}

/** The `catalog` part of the functions' `AGENT_LB_CONFIG` (lib/core/runtime-config.ts). */
export function catalogSettingsJson(catalog: RegistrySyncCatalog): CatalogSettingsJson {
  return {
    tableName: catalog.table.tableName,
    headerName: catalog.headerName,
    pathPrefix: catalog.pathPrefix,
    ...(catalog.attributes && catalog.attributes.length > 0 ? { attributes: [...catalog.attributes] } : {}),
    ...(catalog.dnsDomain !== undefined ? { dnsDomain: catalog.dnsDomain } : {}),
  };
}
