import { hostOf } from './catalog-hosts';
import { RawAttributeValue, VARIANT_OF_TAG, VARIANT_WEIGHT_TAG } from './lease-schema';
import { canonicalJson, CatalogMember } from './registry-state';

/**
 * The capability catalog: what `GET /agents` on the load balancer answers, declared once. A
 * small document the registry keeps current from its member index (registry-state.ts) and the
 * deployment's routing configuration; it names capabilities, counts and policies, never an
 * address, port, agent id or token (the endpoint may face the internet); the one host it names is
 * where a client asks for the capability: the capability's own DNS name when the deployment has a
 * hosted zone, else its load balancer's. Pure: building,
 * merging and the revision rule live here, the store and the handlers only carry it.
 */

/** Longest blocking query (`?revision=N&wait=S`), seconds. */
export const CATALOG_MAX_WAIT_SECONDS = 20;
/** Metadata keys a deployment may declare public (`catalogAttributes`). */
export const MAX_CATALOG_ATTRIBUTES = 10;
/** A public metadata key: what a lease's `metadata` map may use as a key and a catalog may show. */
export const CATALOG_ATTRIBUTE_KEY = /^[A-Za-z0-9_.:-]{1,64}$/;
/** Distinct values listed per key and capability (the smallest, in code-unit order). */
export const MAX_ATTRIBUTE_VALUES = 20;
/** Longest value listed; longer ones are cut to this many characters. */
export const MAX_ATTRIBUTE_VALUE_CHARS = 128;

/** Tags on each capability target group that tell the registry the group's routing policy (it reads them with the capability tag). */
export const ALGORITHM_TAG = 'agent-lb:algorithm';
export const STICKINESS_TAG = 'agent-lb:stickiness';
export type CatalogStickiness = 'off' | 'lb_cookie' | 'app_cookie';
const DEFAULT_ALGORITHM = 'least_outstanding_requests';

/** Targets of a capability (its stable group and its variants' groups together) by the state the registry last wrote into their leases. */
export interface CatalogTargets {
  /** In rotation: registered and not draining (`initial`, `healthy`, `unhealthy`, `unused`, `unavailable`). */
  readonly registered: number;
  readonly healthy: number;
  readonly initial: number;
  readonly unhealthy: number;
  /** Deregistered, finishing the requests they have (their lease says `draining`). */
  readonly draining: number;
}

export interface CatalogVariant {
  readonly name: string;
  /** Configured percent of the capability's requests. */
  readonly weight: number;
  /** What it gets now: 0 while it has no healthy target (the reconcile pass holds it out of the rules), else `weight`. */
  readonly effectiveWeight: number;
  readonly healthy: number;
}

export interface CatalogCapability {
  readonly name: string;
  /** A request for it would reach a healthy agent now. */
  readonly routable: boolean;
  readonly targets: CatalogTargets;
  readonly variants: readonly CatalogVariant[];
  /** How to ask for it. */
  readonly route: CatalogRoute;
  readonly policy: { readonly algorithm: string; readonly stickiness: CatalogStickiness };
  /** Distinct values of the public metadata keys among its agents in rotation, sorted. */
  readonly attributes: Readonly<Record<string, readonly string[]>>;
}

/**
 * How to ask for a capability: on which load balancer, with which header or path. A client sends
 * the request to `host` with the scheme and port it fetched the catalog with (every load balancer
 * of a deployment has the same listeners), or to the load balancer it asked when `host` is absent.
 */
export interface CatalogRoute {
  /** `<headerName>: <capability>`: the header that selects it on any path. */
  readonly header: string;
  /** `/<pathPrefix>/<capability>/`: the path prefix that selects it without the header. */
  readonly path: string;
  /**
   * With a hosted zone (`dnsZone`), the capability's own DNS name, `<capability>.<dnsDomain>`: an
   * alias of the load balancer that serves it, which still selects the capability by `header` or
   * `path`, not by this name. Otherwise the DNS name of the load balancer that serves it (in local
   * mode, the local load balancer's host), absent when the registry cannot tell: a configuration that names its target groups by
   * ARN whose group is on no load balancer or on several, or no container of the registry has
   * looked its load balancers up yet (one whose lookup fails keeps the host a previous revision showed).
   */
  readonly host?: string;
  /**
   * The port of `host` to send the request to, where the deployment's load balancers listen on
   * different ports: in local mode each load balancer is a local endpoint on a port of its own.
   * Absent on AWS (every load balancer has the same listeners: use the port the catalog was fetched on).
   */
  readonly port?: number;
}

/** The document `GET /agents` answers. */
export interface CatalogDocument {
  /** Moves by one on every change of `capabilities`, and only then. */
  readonly revision: number;
  /** Epoch ms the revision was built. */
  readonly generatedAt: number;
  readonly capabilities: readonly CatalogCapability[];
}

/** A variant as the catalog knows it from its group's tags. */
export interface CatalogVariantInfo {
  readonly name: string;
  /** The capability its agents list (`vision-canary`). */
  readonly capability: string;
  readonly weight: number;
}

/** What the catalog says of a capability that does not change between deployments. */
export interface CatalogCapabilityInfo {
  readonly algorithm: string;
  readonly stickiness: CatalogStickiness;
  readonly variants: readonly CatalogVariantInfo[];
}

/** The catalog's configuration in the registry: where it lives, how capabilities are asked for, which metadata is public. */
export interface CatalogConfig {
  /** The registry state table. */
  readonly tableName: string;
  readonly headerName: string;
  readonly pathPrefix: string;
  /** Public metadata keys (`catalogAttributes`). */
  readonly attributes: readonly string[];
  /** Each capability (not its variants) by name. */
  readonly capabilities: Readonly<Record<string, CatalogCapabilityInfo>>;
  /**
   * Capability → its host: its own DNS name under the deployment's `dnsDomain`, or the DNS name of
   * the load balancer that serves it (see lib/core/catalog-hosts.ts) as this container resolved
   * it: a capability not listed has no host.
   * @default - not resolved: each entry keeps the host the previous document showed
   */
  readonly hosts?: Readonly<Record<string, string>>;
  /**
   * Capability → the port its load balancer listens on, where load balancers differ in ports
   * (local mode's, each on its own port); named with the host in the capability's route.
   * @default - none: a client uses the port it fetched the catalog on
   */
  readonly ports?: Readonly<Record<string, number>>;
}

/** One group's share of a catalog entry. */
export interface GroupSummary {
  readonly targets: CatalogTargets;
  /** Distinct values per public key, sorted, at most {@link MAX_ATTRIBUTE_VALUES}. */
  readonly attributes: Readonly<Record<string, readonly string[]>>;
}

const NO_TARGETS: CatalogTargets = { registered: 0, healthy: 0, initial: 0, unhealthy: 0, draining: 0 };
const IN_ROTATION = new Set(['initial', 'healthy', 'unhealthy', 'unused', 'unavailable']);

/** `/<pathPrefix>`: where the catalog is served. */
export function catalogPath(pathPrefix: string): string {
  return `/${pathPrefix}`;
}

/**
 * A capability's route: its header and path from the configuration, its host from `config.hosts`
 * (or, when this container resolved none, `previousHost`: what the last document showed), and
 * with the host, its port from `config.ports` when the configuration names one.
 */
export function catalogRoute(config: Pick<CatalogConfig, 'headerName' | 'pathPrefix' | 'hosts' | 'ports'>, name: string, previousHost?: string): CatalogRoute {
  const host = hostOf(config.hosts, name, previousHost);
  // A port only beside the host it belongs to.
  const port = host !== undefined && config.ports !== undefined && Object.hasOwn(config.ports, name) ? config.ports[name] : undefined;
  return { header: `${config.headerName}: ${name}`, path: `/${config.pathPrefix}/${name}/`, ...(host === undefined ? {} : { host }), ...(port === undefined ? {} : { port }) };
}

/** A metadata value as the catalog shows it: strings, numbers and booleans; anything else is not shown. */
export function attributeText(value: RawAttributeValue | undefined): string | undefined {
  const text = value?.S ?? value?.N ?? (value?.BOOL !== undefined ? String(value.BOOL) : undefined);
  return text === undefined ? undefined : text.slice(0, MAX_ATTRIBUTE_VALUE_CHARS);
}

const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function distinctSorted(values: Iterable<string>): string[] {
  return [...new Set(values)].sort(byCodeUnit).slice(0, MAX_ATTRIBUTE_VALUES);
}

/**
 * Whether a metadata value names its own agent: holds its address (so its `address:port` too) or
 * is its agent id (or holds one of 8 characters or more). The catalog never shows such a value,
 * whatever key an agent puts it under: the endpoint may face the internet, and a key declared
 * public for model names must not become a way to publish where agents are.
 */
export function namesItsAgent(text: string, member: Pick<CatalogMember, 'address' | 'agentId'>): boolean {
  if (member.address !== '' && text.includes(member.address)) return true;
  return text === member.agentId || (member.agentId.length >= 8 && text.includes(member.agentId));
}

/** One group's members counted by the state their lease reports, and the public metadata of the healthy ones (never a value that names its agent). */
export function summarizeGroup(members: readonly CatalogMember[], publicKeys: readonly string[]): GroupSummary {
  const t = { ...NO_TARGETS };
  const values = new Map<string, string[]>(publicKeys.map((k) => [k, []]));
  for (const m of members) {
    if (m.state === 'draining') t.draining++;
    if (m.state === undefined || !IN_ROTATION.has(m.state)) continue;
    t.registered++;
    if (m.state === 'healthy') t.healthy++;
    else if (m.state === 'initial') t.initial++;
    else if (m.state === 'unhealthy') t.unhealthy++;
    // Only healthy members speak for the capability's attributes: leases that answer no health
    // check (anyone with the agent grant can write them) must not crowd real values out of the
    // 20 each list keeps.
    if (m.state !== 'healthy') continue;
    for (const key of publicKeys) {
      const text = m.metadata && Object.hasOwn(m.metadata, key) ? attributeText(m.metadata[key]) : undefined;
      if (text !== undefined && !namesItsAgent(text, m)) values.get(key)!.push(text);
    }
  }
  return { targets: t, attributes: Object.fromEntries([...values].map(([k, v]) => [k, distinctSorted(v)])) };
}

/** The groups whose members make up a catalog entry: the capability's own and its variants'. */
export function groupsOf(config: CatalogConfig, name: string): string[] {
  const info = config.capabilities[name];
  return info ? [name, ...info.variants.map((v) => v.capability)] : [];
}

/** Group capability (as agents list it) → the catalog entry it belongs to. */
export function catalogOwners(config: CatalogConfig): Map<string, string> {
  const owners = new Map<string, string>();
  for (const name of Object.keys(config.capabilities)) for (const group of groupsOf(config, name)) owners.set(group, name);
  return owners;
}

/** A catalog entry from its groups' summaries (a group not given counts as empty). */
export function buildCatalogCapability(config: CatalogConfig, name: string, summaryOf: (groupCapability: string) => GroupSummary | undefined): CatalogCapability {
  const info = config.capabilities[name] ?? { algorithm: DEFAULT_ALGORITHM, stickiness: 'off', variants: [] };
  const empty = (): GroupSummary => ({ targets: NO_TARGETS, attributes: {} });
  const stable = summaryOf(name) ?? empty();
  const variants = info.variants.map((v) => ({ info: v, summary: summaryOf(v.capability) ?? empty() }));
  const all = [stable, ...variants.map((v) => v.summary)];
  const targets = { ...NO_TARGETS };
  for (const s of all) for (const k of Object.keys(NO_TARGETS) as (keyof CatalogTargets)[]) targets[k] += s.targets[k];
  const catalogVariants = variants.map(({ info: v, summary }) => ({
    name: v.name,
    weight: v.weight,
    // The reconcile pass holds a variant without a healthy target at weight 0 (variant-weights.ts).
    effectiveWeight: summary.targets.healthy > 0 ? v.weight : 0,
    healthy: summary.targets.healthy,
  }));
  const stableWeight = 100 - catalogVariants.reduce((n, v) => n + v.effectiveWeight, 0);
  const routable = (stableWeight > 0 && stable.targets.healthy > 0) || catalogVariants.some((v) => v.effectiveWeight > 0 && v.healthy > 0);
  const attributes = Object.fromEntries(config.attributes.map((k) => [k, distinctSorted(all.flatMap((s) => s.attributes[k] ?? []))]));
  return {
    name,
    routable,
    targets,
    variants: catalogVariants,
    route: catalogRoute(config, name),
    policy: { algorithm: info.algorithm, stickiness: info.stickiness },
    attributes,
  };
}

/**
 * The capabilities of the next document: the configured ones by name, each from `updated` when
 * it was recounted, else as `previous` had it, else empty; capabilities no longer configured drop
 * out. Every entry's route is the configuration's (a capability not recounted since its header,
 * path or load balancer changed shows the new one at the next publication), its host kept from
 * `previous` only while this container has resolved none.
 */
export function mergeCatalogCapabilities(
  config: CatalogConfig,
  previous: readonly CatalogCapability[] | undefined,
  updated: ReadonlyMap<string, CatalogCapability>,
): CatalogCapability[] {
  const before = new Map((previous ?? []).map((c) => [c.name, c]));
  return Object.keys(config.capabilities)
    .sort(byCodeUnit)
    .map((name) => {
      const entry = updated.get(name) ?? before.get(name) ?? buildCatalogCapability(config, name, () => undefined);
      const previousHost = before.get(name)?.route?.host;
      return { ...entry, route: catalogRoute(config, name, typeof previousHost === 'string' ? previousHost : undefined) };
    });
}

/**
 * The document that follows `previous` when the capabilities are `capabilities`: `undefined`
 * when nothing changed (the revision moves only on a change), else the next revision built at `nowMs`.
 */
export function nextCatalog(previous: CatalogDocument | undefined, capabilities: readonly CatalogCapability[], nowMs: number): CatalogDocument | undefined {
  if (previous !== undefined && canonicalJson(previous.capabilities) === canonicalJson(capabilities)) return undefined;
  return { revision: (previous?.revision ?? 0) + 1, generatedAt: Math.floor(nowMs), capabilities };
}

/** The document's ETag: its revision and build time, so a table rebuilt from scratch never repeats one. */
export function catalogEtag(doc: Pick<CatalogDocument, 'revision' | 'generatedAt'>): string {
  return `"${doc.revision}-${doc.generatedAt.toString(36)}"`;
}

/**
 * The document as JSON (what is stored and served).
 */
export function formatCatalog(doc: CatalogDocument): string {
  return JSON.stringify({ revision: doc.revision, generatedAt: doc.generatedAt, capabilities: doc.capabilities });
}

/**
 * A stored document back; `undefined` when the text is not one (the registry rewrites it at its next change).
 */
export function parseCatalog(text: string): CatalogDocument | undefined {
  try {
    const raw = JSON.parse(text) as Partial<CatalogDocument>;
    if (!Number.isSafeInteger(raw.revision) || !Number.isSafeInteger(raw.generatedAt) || !Array.isArray(raw.capabilities)) return undefined;
    return raw as CatalogDocument;
  } catch {
    return undefined;
  }
}

/** A capability target group's tags, as DescribeTags (or the template) gives them. */
export interface TaggedGroup {
  /** Its `agent-lb:capability`. */
  readonly capability: string;
  readonly tags: Readonly<Record<string, string>>;
}

/**
 * Each capability's catalog information from its groups' tags: the algorithm and stickiness of
 * its own group, and its variants (groups tagged `agent-lb:variant-of`, named after the part of
 * their capability that follows `<capability>-`, with their configured weight). Groups of
 * capabilities not in `capabilities` are ignored.
 */
export function catalogInfoFromTags(groups: readonly TaggedGroup[], capabilities: readonly string[]): Record<string, CatalogCapabilityInfo> {
  const out: Record<string, { algorithm: string; stickiness: CatalogStickiness; variants: CatalogVariantInfo[] }> = {};
  const known = new Set(capabilities);
  const variantOf = (g: TaggedGroup) => g.tags[VARIANT_OF_TAG];
  for (const g of groups) {
    if (!known.has(g.capability) || variantOf(g) !== undefined) continue;
    const stickiness = g.tags[STICKINESS_TAG];
    out[g.capability] = {
      algorithm: g.tags[ALGORITHM_TAG] ?? DEFAULT_ALGORITHM,
      stickiness: stickiness === 'lb_cookie' || stickiness === 'app_cookie' ? stickiness : 'off',
      variants: [],
    };
  }
  for (const g of groups) {
    const of = variantOf(g);
    const weight = Number(g.tags[VARIANT_WEIGHT_TAG]);
    if (of === undefined || !known.has(g.capability) || out[of] === undefined || !g.capability.startsWith(`${of}-`) || !Number.isInteger(weight)) continue;
    out[of].variants.push({ name: g.capability.slice(of.length + 1), capability: g.capability, weight });
  }
  for (const info of Object.values(out)) info.variants.sort((a, b) => byCodeUnit(a.name, b.name));
  return out;
}
