import { describe, expect, it } from 'vitest';
import { formatStateFile, LocalState, parseStateFile } from '../../lib/core/deployment';
import { BUDGET_METRICS, ERROR_METRICS, errorMetricName, METRICS_NAMESPACE, RECONCILE_METRICS, RECONCILE_SERVICE_NAME, SYNC_METRICS, SYNC_SERVICE_NAME } from '../../lib/core/metric-names';
import { CONFIG_ENV } from '../../lib/core/runtime-config';
import { CAPABILITY_TAG, MAX_REQUEST_SECONDS_TAG, VARIANT_OF_TAG, VARIANT_WEIGHT_TAG } from '../../lib/core/lease-schema';
import { ALGORITHM_TAG, STICKINESS_TAG } from '../../lib/core/catalog-document';
import { CATALOG_ENV } from '../../lib/core/catalog-request';
import { CATALOG_ITEM_KEY, membersPartition, REGISTRY_STATE_ATTR, REGISTRY_STATE_KEY, REGISTRY_STATE_ROLE, REGISTRY_STATE_ROLE_TAG, REGISTRY_TABLE_ENV } from '../../lib/core/registry-state';

/**
 * The names other programs rely on, spelled out once more on purpose: deployed functions read
 * their environment variable, operators' own alarms and dashboards read these metrics, scripts
 * read the state file. Every source file imports them from lib/core, so a rename there changes
 * them everywhere at once; this test is what makes such a rename a visible decision.
 */
describe('wire contract', () => {
  it('the Lambdas read their configuration from AGENT_LB_CONFIG', () => {
    expect(CONFIG_ENV).toBe('AGENT_LB_CONFIG');
  });

  it('metrics go to namespace AgentLb with a service dimension per function', () => {
    expect([METRICS_NAMESPACE, SYNC_SERVICE_NAME, RECONCILE_SERVICE_NAME]).toEqual(['AgentLb', 'agent-lb-sync', 'agent-lb-reconcile']);
  });

  it('keeps every published metric name', () => {
    expect(Object.values(SYNC_METRICS).sort()).toEqual(
      [
        'CatalogUpdates',
        'ChangesAlreadyApplied',
        'ChangesWithheld',
        'ConfirmReadMs',
        'Deregistrations',
        'Ec2Calls',
        'ElbCalls',
        'LeasesRead',
        'MemberWrites',
        'NoopRecords',
        'NotAdmitted',
        'OverQuota',
        'Records',
        'Registrations',
        'RejectedLeases',
        'Releases',
        'SyncLagMs',
        'TtlDeletions',
      ],
    );
    expect(Object.values(RECONCILE_METRICS).sort()).toEqual(
      [
        'CatalogUpdates',
        'DrainingRevived',
        'DriftDeregistered',
        'DriftRegistered',
        'Ec2Calls',
        'ElbCalls',
        'ExpiredLeasesDeleted',
        'FarFutureLeasesDeleted',
        'LiveLeases',
        'MemberRepairs',
        'NotAdmitted',
        'NotAdmittedRemoved',
        'OverQuota',
        'RegisteredTargets',
        'RejectedLeases',
        'RemovalsHeld',
        'SafetyValveTripped',
        'VariantsHeldOut',
      ],
    );
    expect(Object.values(BUDGET_METRICS).sort()).toEqual(['ElbCallBudgetPerSecond', 'ElbCallsOffSharedBudget', 'ElbCallsPerSecond', 'OldestQueuedChangeMs', 'QueuedChanges']);
    expect(ERROR_METRICS).toEqual({
      INVALID_CONFIG: 'ConfigErrors',
      LEASE_STORE: 'LeaseStoreErrors',
      REGISTRY_STATE: 'RegistryStateErrors',
      ELB_BUDGET_STATE: 'ElbBudgetStateErrors',
      ELB_TRANSIENT: 'ElbTransientErrors',
      ELB_PERMANENT: 'ElbRefusals',
      EC2_LOOKUP: 'Ec2LookupErrors',
      OTHER: 'OtherErrors',
    });
  });

  it('the capability catalog: its Lambda reads AGENT_LB_CATALOG; the registry state table holds the document and the member index under these keys', () => {
    expect(CATALOG_ENV).toBe('AGENT_LB_CATALOG');
    expect(REGISTRY_TABLE_ENV).toBe('AGENT_LB_REGISTRY_TABLE');
    expect(REGISTRY_STATE_KEY).toEqual({ partition: 'pk', sort: 'sk' });
    expect(CATALOG_ITEM_KEY).toEqual({ pk: 'catalog', sk: 'document' });
    expect(membersPartition('vision')).toBe('members#vision');
    expect(REGISTRY_STATE_ATTR).toEqual({
      revision: 'revision',
      generatedAt: 'generatedAt',
      etag: 'etag',
      body: 'body',
      address: 'address',
      port: 'port',
      agentId: 'agentId',
      status: 'status',
      registeredAt: 'registeredAt',
      availabilityZone: 'availabilityZone',
      metadata: 'metadata',
      state: 'state',
      since: 'since',
      readAt: 'readAt',
    });
    expect([ALGORITHM_TAG, STICKINESS_TAG, REGISTRY_STATE_ROLE_TAG, REGISTRY_STATE_ROLE]).toEqual(['agent-lb:algorithm', 'agent-lb:stickiness', 'agent-lb:role', 'registry-state']);
  });

  it.each([
    ['ELB_TRANSIENT', 'ElbTransientErrors'],
    ['INVALID_CONFIG', 'ConfigErrors'],
    ['LEASE_HELD', 'OtherErrors'],
    [undefined, 'OtherErrors'],
  ] as const)('an error with code %s counts under %s', (code, metric) => {
    expect(errorMetricName(code)).toBe(metric);
  });

  it('a state file reads back as the deployment local mode wrote', () => {
    const state: LocalState = {
      region: 'us-east-1',
      dynamodbEndpoint: 'http://127.0.0.1:8000',
      elbv2Endpoint: 'http://127.0.0.1:5000',
      loadBalancerEndpoint: 'http://127.0.0.1:8080',
      tableName: 'leases',
      loadBalancerArn: 'arn:lb',
      listenerArn: 'arn:listener',
      targetGroups: { vision: 'arn:tg/vision' },
      maxRequestSeconds: { vision: 300 },
      registryTableName: 'registry-state',
    };
    expect(parseStateFile(formatStateFile(state), 'state.json')).toEqual(state);
    expect(() => parseStateFile('{"region": "us-east-1"}', 'state.json')).toThrow('state file state.json lacks region, tableName or targetGroups');
    expect(() => parseStateFile('not json', 'state.json')).toThrow(/^cannot read state file state.json: /);
    expect(() => parseStateFile('{"region":"r","tableName":"t","targetGroups":{},"maxRequestSeconds":{"vision":"long"}}', 'state.json')).toThrow(
      'state file state.json: maxRequestSeconds must map capabilities to positive seconds, got {"vision":"long"}',
    );
  });

  it('target groups carry their capability, variant and longest request in these tags', () => {
    expect([CAPABILITY_TAG, VARIANT_OF_TAG, VARIANT_WEIGHT_TAG, MAX_REQUEST_SECONDS_TAG]).toEqual([
      'agent-lb:capability',
      'agent-lb:variant-of',
      'agent-lb:variant-weight',
      'agent-lb:max-request-seconds',
    ]);
  });
});
