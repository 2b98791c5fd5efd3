/**
 * The agent grant, checked against the requests agents really send: every DynamoDB request the
 * SDK makes through a lease's whole life (acquire, renewals reading rotation back with ALL_NEW,
 * drain, activate, a restore after someone else's write, takeover, release, the sidecar's table
 * check) is evaluated against the synthesized policy's `dynamodb:Attributes` condition and must
 * be allowed; every way of writing `rotation` or `rejection` (and the registry's own rotation
 * writes) must be refused.
 */
import { DeleteItemCommand, DynamoDBClient, GetItemCommand, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LeaseStore } from '../../lib/aws/lease-store';
import { LeaseTable } from '../../lib/constructs';
import { AgentLease } from '../../lib/sdk';
import { allows, expressionNames, requestAttributes } from '../support/iam-attributes';
import { SdkLeaseTable, testClient } from '../support/sdk-lease-table';
import { appWithoutBundling } from './fixtures';

const NOW_MS = 1_800_000_000_000;
const ddb = mockClient(DynamoDBClient);

/** The agent policy's statements, as synthesized. */
function agentStatements() {
  const stack = new Stack(appWithoutBundling(), 'Grant');
  new LeaseTable(stack, 'Leases');
  const [policy] = Object.values(Template.fromStack(stack).findResources('AWS::IAM::ManagedPolicy'));
  return policy.Properties.PolicyDocument.Statement;
}
const statements = agentStatements();

const ACTIONS = new Map<unknown, string>([
  [PutItemCommand, 'dynamodb:PutItem'],
  [UpdateItemCommand, 'dynamodb:UpdateItem'],
  [GetItemCommand, 'dynamodb:GetItem'],
  [DeleteItemCommand, 'dynamodb:DeleteItem'],
]);

/** Every request sent so far, as IAM would judge it. */
function requests() {
  return ddb.calls().map((c) => {
    const command = c.args[0] as unknown as { constructor: unknown; input: Record<string, unknown> };
    const action = ACTIONS.get(command.constructor) ?? String(command.constructor);
    const attributes = requestAttributes(command.input);
    return { action, attributes, allowed: allows(statements, action, attributes) };
  });
}

beforeEach(() => {
  ddb.reset();
  vi.useFakeTimers({ now: NOW_MS });
});
afterEach(() => vi.useRealTimers());

describe('expressionNames reads expressions as DynamoDB does', () => {
  it.each<[string, Record<string, string>, string[]]>([
    ['SET #expiresAt = :exp, #renewedAt = :ren', { '#expiresAt': 'expiresAt', '#renewedAt': 'renewedAt' }, ['expiresAt', 'renewedAt']],
    ['SET #r.#c = :e', { '#r': 'rotation', '#c': 'vision' }, ['rotation']],
    ['SET rotation.vision.since = :x REMOVE metadata[0]', {}, ['rotation', 'metadata']],
    ['attribute_not_exists(#t) OR #e < :now OR #k = :mine', { '#t': 'target', '#e': 'expiresAt', '#k': 'leaseToken' }, ['target', 'expiresAt', 'leaseToken']],
    ['set a = if_not_exists(b, :z) and not begins_with(c, :p)', {}, ['a', 'b', 'c']],
  ])('%s', (expression, aliases, names) => {
    expect(expressionNames(expression, aliases)).toEqual(names);
  });
});

describe('the SDK keeps working under the agent grant', () => {
  it('every request of a lease\'s whole life is allowed, ALL_NEW renewals included', async () => {
    // Prepare
    const table = new SdkLeaseTable(ddb);
    const lease = new AgentLease({ tableName: 'leases', address: '10.0.3.17', port: 8080, capabilities: ['vision'], agentId: 'a', ttl: 30, client: testClient(), random: () => 0.5 });

    // Act: acquire, renewals, drain, activate, someone else's change undone (a PutItem), a wait that polls, release
    await lease.acquire();
    await vi.advanceTimersByTimeAsync(10_000);
    await lease.drain();
    await lease.activate();
    table.tamper({ capabilities: { SS: ['vision', 'admin'] } });
    await vi.advanceTimersByTimeAsync(10_000);
    table.setRotation('vision', 'healthy', NOW_MS + 21_000);
    const serving = lease.serving({ timeoutMs: 5_000 });
    await vi.advanceTimersByTimeAsync(2_000);
    await serving;
    await lease.release();
    const takeover = new AgentLease({ tableName: 'leases', address: '10.0.3.17', port: 8080, capabilities: ['vision'], agentId: 'b', ttl: 30, takeover: true, client: testClient() });
    await takeover.acquire();
    await takeover.release();
    await new LeaseStore(testClient(), 'leases').get('10.0.3.17:8080', false); // the sidecar's table check

    // Assess
    const sent = requests();
    expect(new Set(sent.map((r) => r.action))).toEqual(new Set(['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:GetItem', 'dynamodb:DeleteItem']));
    expect(sent.filter((r) => !r.allowed)).toEqual([]);
    const renewal = ddb.commandCalls(UpdateItemCommand).find((c) => c.args[0].input.UpdateExpression?.includes('#expiresAt'))!.args[0].input;
    expect(renewal.ReturnValues).toBe('ALL_NEW');
    expect(table.log.filter((k) => k === 'put')).toHaveLength(3); // acquire, restore, takeover
  });
});

describe('nobody holding the grant writes what the registry writes', () => {
  const item = { target: { S: '10.0.3.17:8080' }, address: { S: '10.0.3.17' }, port: { N: '8080' } };
  it.each<[string, string, Record<string, unknown>]>([
    ['PutItem carrying rotation', 'dynamodb:PutItem', { Item: { ...item, rotation: { M: {} } } }],
    ['PutItem carrying rejection', 'dynamodb:PutItem', { Item: { ...item, rejection: { M: {} } } }],
    ['PutItem padding the item with an attribute of its own', 'dynamodb:PutItem', { Item: { ...item, padding: { S: 'x' } } }],
    ['UpdateItem SET rotation.vision', 'dynamodb:UpdateItem', { Key: { target: item.target }, UpdateExpression: 'SET rotation.vision = :v' }],
    ['UpdateItem SET #r.#c through aliases', 'dynamodb:UpdateItem', { Key: { target: item.target }, UpdateExpression: 'SET #r.#c = :v', ExpressionAttributeNames: { '#r': 'rotation', '#c': 'vision' } }],
    ['UpdateItem REMOVE rejection', 'dynamodb:UpdateItem', { Key: { target: item.target }, UpdateExpression: 'REMOVE #x', ExpressionAttributeNames: { '#x': 'rejection' } }],
    ['UpdateItem with the legacy AttributeUpdates', 'dynamodb:UpdateItem', { Key: { target: item.target }, AttributeUpdates: { rotation: { Action: 'PUT', Value: { M: {} } } } }],
  ])('%s: refused', (_name, action, input) => {
    expect(allows(statements, action, requestAttributes(input))).toBe(false);
  });

  it('the registry\'s rejection write (with rotation entries, one UpdateItem) would be refused under the agent grant', async () => {
    ddb.on(UpdateItemCommand).resolves({});
    await new LeaseStore(testClient(), 'leases').writeEntries({
      target: '10.0.3.17:8080',
      leaseToken: 'tok',
      entries: [],
      maps: [],
      rejection: { target: '10.0.3.17:8080', leaseToken: { S: 'tok' }, renewedAt: { N: String(NOW_MS) }, rejection: { reason: 'not-admitted', message: 'x', since: NOW_MS }, judged: {} },
    });
    const [write] = requests();
    expect(write).toMatchObject({ action: 'dynamodb:UpdateItem', allowed: false });
    expect(write.attributes).toContain('rejection');
  });

  it('the Python SDK\'s requests (python/agent_lb/store.py) are allowed', () => {
    const names = { '#target': 'target', '#expiresAt': 'expiresAt', '#leaseToken': 'leaseToken', '#renewedAt': 'renewedAt', '#status': 'status' };
    const key = { target: item.target };
    for (const [action, input] of [
      ['dynamodb:PutItem', { Item: { ...item, capabilities: { SS: ['vision'] }, expiresAt: { N: '1' }, leaseToken: { S: 't' }, agentId: { S: 'a' }, status: { S: 'active' }, renewedAt: { N: '1' }, registeredAt: { N: '1' } }, ConditionExpression: 'attribute_not_exists(#target) OR #expiresAt < :now OR #leaseToken = :mine', ExpressionAttributeNames: names }],
      ['dynamodb:UpdateItem', { Key: key, UpdateExpression: 'SET #expiresAt = :exp, #renewedAt = :ren', ConditionExpression: '#leaseToken = :mine', ExpressionAttributeNames: names, ReturnValues: 'ALL_NEW' }],
      ['dynamodb:UpdateItem', { Key: key, UpdateExpression: 'SET #status = :status', ConditionExpression: '#leaseToken = :mine', ExpressionAttributeNames: names, ReturnValues: 'ALL_NEW' }],
    ] as const) {
      expect(allows(statements, action, requestAttributes(input as Record<string, unknown>)), `${action} ${JSON.stringify(input)}`).toBe(true);
    }
  });

  it('the registry\'s own rotation write would be refused under the agent grant (it runs under its own role)', async () => {
    ddb.on(UpdateItemCommand).resolves({});
    await new LeaseStore(testClient(), 'leases').writeRotation('10.0.3.17:8080', 'tok', 'vision', { state: 'healthy', since: NOW_MS });
    const [write] = requests();
    expect(write).toMatchObject({ action: 'dynamodb:UpdateItem', allowed: false });
    expect(write.attributes).toContain('rotation');
  });
});
