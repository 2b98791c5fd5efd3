import { gzipSync } from 'node:zlib';
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import type { ALBEvent, ALBResult } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { catalogEtag, CatalogDocument, formatCatalog } from '../../lib/core/catalog-document';
import { createCatalogHandler } from '../../lib/handlers/catalog-handler';
import { awsError, silentLogger } from '../support/lease-fixtures';

const ddbMock = mockClient(DynamoDBClient);
const client = new DynamoDBClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });

const doc = (revision: number): CatalogDocument => ({ revision, generatedAt: 1_800_000_000_000 + revision, capabilities: [] });
const stored = (d: CatalogDocument) => ({ Item: { pk: { S: 'catalog' }, sk: { S: 'document' }, revision: { N: String(d.revision) }, etag: { S: catalogEtag(d) }, body: { B: gzipSync(formatCatalog(d)) } } });

/** ALB's event for GET /agents (multi-value headers off, as the target group has them by default). */
function event(query: Record<string, string> = {}, headers: Record<string, string> = {}, method = 'GET'): ALBEvent {
  return {
    requestContext: { elb: { targetGroupArn: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/catalog/1' } },
    httpMethod: method,
    path: '/agents',
    queryStringParameters: query,
    headers: { host: 'lb', ...headers },
    body: '',
    isBase64Encoded: false,
  };
}

/** A handler on a clock that only sleeping moves. */
function handler(cacheMs = 1000) {
  const clock = { now: 0, sleeps: [] as number[] };
  const h = createCatalogHandler({
    config: { tableName: 'state', cacheMs },
    dynamoClient: client,
    logger: silentLogger(),
    now: () => clock.now,
    sleep: async (ms) => {
      clock.sleeps.push(ms);
      clock.now += ms;
    },
  });
  return { h, clock };
}

const bodyOf = (r: ALBResult) => JSON.parse(r.body ?? '') as CatalogDocument;

beforeEach(() => ddbMock.reset());

describe('the catalog Lambda (GET /agents behind ALB)', () => {
  it('answers in ALB\'s shape: the document, its ETag, a status description', async () => {
    ddbMock.on(GetItemCommand).resolves(stored(doc(4)));
    const r = await handler().h(event());
    expect(r).toMatchObject({ statusCode: 200, statusDescription: '200 OK', isBase64Encoded: false, headers: { 'content-type': 'application/json', etag: catalogEtag(doc(4)) } });
    expect(bodyOf(r)).toEqual(doc(4));
    expect(ddbMock).toHaveReceivedCommandWith(GetItemCommand, { TableName: 'state', Key: { pk: { S: 'catalog' }, sk: { S: 'document' } }, ConsistentRead: false });
  });

  it('reads the document once per cache interval, whatever the request rate', async () => {
    ddbMock.on(GetItemCommand).resolves(stored(doc(4)));
    const { h, clock } = handler(1000);
    for (let i = 0; i < 50; i++) await h(event());
    expect(ddbMock).toHaveReceivedCommandTimes(GetItemCommand, 1);
    clock.now += 1000;
    await h(event());
    expect(ddbMock).toHaveReceivedCommandTimes(GetItemCommand, 2);
  });

  it('answers If-None-Match with its ETag by 304 and no body', async () => {
    ddbMock.on(GetItemCommand).resolves(stored(doc(4)));
    const r = await handler().h(event({}, { 'if-none-match': catalogEtag(doc(4)) }));
    expect([r.statusCode, r.statusDescription, r.body]).toEqual([304, '304 Not Modified', '']);
  });

  it('holds a blocking query until the revision moves past the one the client has, looking again every second', async () => {
    ddbMock.on(GetItemCommand).resolvesOnce(stored(doc(4))).resolvesOnce(stored(doc(4))).resolves(stored(doc(5)));
    const { h, clock } = handler();
    const r = await h(event({ revision: '4', wait: '10' }));
    expect(bodyOf(r).revision).toBe(5);
    expect(clock.now).toBe(2000);
    expect(clock.sleeps).toEqual([1000, 1000]);
  });

  it('answers a blocking query at once when the revision already moved, and with the same document when its wait is over', async () => {
    ddbMock.on(GetItemCommand).resolves(stored(doc(4)));
    const { h, clock } = handler();
    expect(bodyOf(await h(event({ revision: '3', wait: '10' }))).revision).toBe(4);
    expect(clock.now).toBe(0);
    const r = await h(event({ revision: '4', wait: '2.5' }));
    expect([r.statusCode, bodyOf(r).revision, clock.now]).toEqual([200, 4, 2500]);
  });

  it('answers a blocking query that timed out with 304 when the client sent the ETag it has', async () => {
    ddbMock.on(GetItemCommand).resolves(stored(doc(4)));
    const r = await handler().h(event({ revision: '4', wait: '1' }, { 'if-none-match': catalogEtag(doc(4)) }));
    expect(r.statusCode).toBe(304);
  });

  it('never steps back to an older revision an eventually consistent read returns', async () => {
    ddbMock.on(GetItemCommand).resolvesOnce(stored(doc(5))).resolves(stored(doc(4)));
    const { h, clock } = handler();
    expect(bodyOf(await h(event())).revision).toBe(5);
    clock.now += 5000;
    expect(bodyOf(await h(event())).revision).toBe(5);
  });

  it('takes a catalog rebuilt from scratch (a lower revision built later)', async () => {
    const rebuilt = { revision: 1, generatedAt: doc(5).generatedAt + 60_000, capabilities: [] };
    ddbMock.on(GetItemCommand).resolvesOnce(stored(doc(5))).resolves(stored(rebuilt));
    const { h, clock } = handler();
    await h(event());
    clock.now += 5000;
    expect(bodyOf(await h(event()))).toEqual(rebuilt);
  });

  it('answers in the multi-value shape when the target group sends multi-value headers', async () => {
    ddbMock.on(GetItemCommand).resolves(stored(doc(4)));
    const { headers: _h, queryStringParameters: _q, ...rest } = event();
    const r = await handler().h({ ...rest, multiValueHeaders: { 'if-none-match': ['"x"', catalogEtag(doc(4))] }, multiValueQueryStringParameters: {} });
    expect(r.statusCode).toBe(304);
    expect(r.multiValueHeaders?.etag).toEqual([catalogEtag(doc(4))]);
    expect(r.headers).toBeUndefined();
  });

  it.each([
    ['the registry has not built the catalog yet', () => ddbMock.on(GetItemCommand).resolves({}), 503],
    ['DynamoDB fails', () => ddbMock.on(GetItemCommand).rejects(awsError('InternalServerError', 500)), 503],
  ])('answers 503 when %s', async (_, arrange, status) => {
    arrange();
    const r = await handler().h(event());
    expect(r.statusCode).toBe(status);
    expect(JSON.parse(r.body ?? '')).toHaveProperty('error');
    expect(r.body).not.toContain('state');
  });

  it.each([
    [event({ revision: 'x' }), 400],
    [event({}, {}, 'POST'), 405],
  ])('refuses a bad request without reading the table (%#)', async (e, status) => {
    const r = await handler().h(e);
    expect(r.statusCode).toBe(status);
    expect(ddbMock).toHaveReceivedCommandTimes(GetItemCommand, 0);
  });
});
