/**
 * Shared fixtures for the handler and adapter tests: valid lease items built from the
 * contract in docs/lease-contract.md (independently of the codec under test), Lambda-shaped DynamoDB
 * stream records, a runtime config, and helpers to read what Powertools published.
 *
 * Importing this module also registers the aws-sdk-client-mock-vitest matchers
 * (`toHaveReceivedCommandTimes`, `toHaveReceivedCommandWith`, …) with vitest's `expect`.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import type { AttributeValue, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { allCustomMatcher, type CustomMatcher } from 'aws-sdk-client-mock-vitest';
import { expect, vi } from 'vitest';
import type { RuntimeConfig } from '../../lib/core/runtime-config';
import { METRICS_NAMESPACE } from '../../lib/core/metric-names';

expect.extend(allCustomMatcher);

declare module 'vitest' {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type, @typescript-eslint/no-explicit-any
  interface Matchers<T = any> extends CustomMatcher<T> {}
}

/** A fixed instant (epoch seconds) every test is written against; no test reads the wall clock. */
export const T0 = 1_800_000_000;
export const LEASE_TTL_SECONDS = 30;

export const TG = {
  vision: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/vision/1',
  speech: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/speech/2',
  ec2: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/ec2/3',
} as const;

export const ALLOWED_CIDRS = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'];

export function testConfig(patch: Partial<RuntimeConfig> = {}): RuntimeConfig {
  return {
    tableName: 'leases',
    routing: {
      capabilities: {
        vision: { targetGroupArn: TG.vision, targetType: 'ip' },
        speech: { targetGroupArn: TG.speech, targetType: 'ip' },
        ec2: { targetGroupArn: TG.ec2, targetType: 'instance' },
      },
      allowedCidrs: ALLOWED_CIDRS,
    },
    safetyValveShare: 0.5,
    reconcileRepeatSeconds: 0,
    ...patch,
  };
}

export type Item = Record<string, AttributeValue>;

export interface LeaseSpec {
  address: string;
  port?: number;
  capabilities?: string[];
  /** Epoch seconds. @default T0 + LEASE_TTL_SECONDS */
  expiresAt?: number;
  status?: 'active' | 'draining';
  leaseToken?: string;
  agentId?: string;
  /** Epoch ms. */
  renewedAt?: number;
  availabilityZone?: string;
}

/** `a.b.c.d:p`, `[v6]:p` or `i-…:p`, as the contract spells the key. */
export function targetKey(address: string, port = 8080): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** A valid lease item exactly as an agent in any language writes it (docs/lease-contract.md). */
export function leaseItem(spec: LeaseSpec, raw: Item = {}): Item {
  const port = spec.port ?? 8080;
  const item: Item = {
    target: { S: targetKey(spec.address, port) },
    address: { S: spec.address },
    port: { N: String(port) },
    capabilities: { SS: spec.capabilities ?? ['vision'] },
    expiresAt: { N: String(spec.expiresAt ?? T0 + LEASE_TTL_SECONDS) },
    leaseToken: { S: spec.leaseToken ?? `token-${spec.address}` },
    agentId: { S: spec.agentId ?? `agent-${spec.address}` },
    status: { S: spec.status ?? 'active' },
    renewedAt: { N: String(spec.renewedAt ?? T0 * 1000) },
    registeredAt: { N: String(T0 * 1000) },
  };
  if (spec.availabilityZone !== undefined) item.availabilityZone = { S: spec.availabilityZone };
  return { ...item, ...raw };
}

/** The same item after a heartbeat: only `expiresAt`/`renewedAt` move. */
export function renewed(item: Item, bySeconds = 10): Item {
  const expiresAt = Number(item.expiresAt.N) + bySeconds;
  const renewedAt = Number(item.renewedAt.N) + bySeconds * 1000;
  return { ...item, expiresAt: { N: String(expiresAt) }, renewedAt: { N: String(renewedAt) } };
}

/** `10.<a>.<b>.<c>` for the n-th distinct private address (n < 2^24). */
export function privateIp(n: number): string {
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

/** A well-formed EC2 instance id for the n-th instance. */
export function instanceId(n: number): string {
  return `i-${n.toString(16).padStart(17, '0')}`;
}

/** The ELBv2 TargetDescription a lease item should produce. */
export function elbTarget(item: Item): { Id: string; Port: number; AvailabilityZone?: string } {
  return {
    Id: item.address.S!,
    Port: Number(item.port.N),
    ...(item.availabilityZone?.S ? { AvailabilityZone: item.availabilityZone.S } : {}),
  };
}

// ---------------------------------------------------------------- stream records

export type EventName = 'INSERT' | 'MODIFY' | 'REMOVE' | 'UNKNOWN_TO_SDK_VERSION';

export interface RecordSpec {
  eventName: EventName;
  oldImage?: Item;
  newImage?: Item;
  /** Epoch seconds, as Lambda delivers `ApproximateCreationDateTime`. @default T0 */
  at?: number;
  /** Removal signed by DynamoDB's TTL sweeper (AWS). */
  ttl?: boolean;
  /** Explicit sequence number; by default a monotonically increasing one. */
  sequenceNumber?: string;
}

let sequence = 100_000_000;

/** Restart sequence numbers so two batches built the same way are byte-for-byte equal. */
export function resetSequence(start = 100_000_000): void {
  sequence = start;
}

/** A DynamoDB stream record exactly as Lambda's event source mapping delivers it. */
export function streamRecord(spec: RecordSpec): DynamoDBRecord {
  const image = spec.newImage ?? spec.oldImage;
  if (!image) throw new Error('streamRecord needs an old or a new image');
  const seq = spec.sequenceNumber ?? String(++sequence).padStart(21, '0');
  return {
    eventID: `event-${seq}`,
    // DynamoDB Local labels TTL deletions UNKNOWN_TO_SDK_VERSION, which the Lambda types do not know.
    eventName: spec.eventName as DynamoDBRecord['eventName'],
    eventVersion: '1.1',
    eventSource: 'aws:dynamodb',
    awsRegion: 'us-east-1',
    eventSourceARN: 'arn:aws:dynamodb:us-east-1:123456789012:table/leases/stream/2026-01-01T00:00:00.000',
    dynamodb: {
      ApproximateCreationDateTime: spec.at ?? T0,
      Keys: { target: { S: image.target.S! } },
      ...(spec.oldImage ? { OldImage: spec.oldImage } : {}),
      ...(spec.newImage ? { NewImage: spec.newImage } : {}),
      SequenceNumber: seq,
      SizeBytes: 256,
      StreamViewType: 'NEW_AND_OLD_IMAGES',
    },
    ...(spec.ttl ? { userIdentity: { type: 'Service', principalId: 'dynamodb.amazonaws.com' } } : {}),
  };
}

export const insert = (item: Item, at = T0): DynamoDBRecord => streamRecord({ eventName: 'INSERT', newImage: item, at });
export const modify = (oldImage: Item, newImage: Item, at = T0): DynamoDBRecord => streamRecord({ eventName: 'MODIFY', oldImage, newImage, at });
/** A graceful release: the agent's own DeleteItem. */
export const remove = (oldImage: Item, at = T0): DynamoDBRecord => streamRecord({ eventName: 'REMOVE', oldImage, at });
/** A TTL deletion on AWS: REMOVE signed by the DynamoDB service principal. */
export const ttlRemove = (oldImage: Item, at: number): DynamoDBRecord => streamRecord({ eventName: 'REMOVE', oldImage, at, ttl: true });
/** A TTL deletion on DynamoDB Local: eventName UNKNOWN_TO_SDK_VERSION and only an old image. */
export const localTtlRemove = (oldImage: Item, at: number): DynamoDBRecord => streamRecord({ eventName: 'UNKNOWN_TO_SDK_VERSION', oldImage, at });

export const streamEvent = (records: DynamoDBRecord[]): DynamoDBStreamEvent => ({ Records: records });

export const sequenceOf = (record: DynamoDBRecord): string => record.dynamodb!.SequenceNumber!;

// ---------------------------------------------------------------- AWS errors

/** An SDK service exception as the client throws it (name, fault, HTTP status). */
export function awsError(name: string, httpStatusCode: number, message = name): Error {
  return Object.assign(new Error(message), {
    name,
    $fault: httpStatusCode >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode, requestId: 'req-1', attempts: 1, totalRetryDelay: 0 },
  });
}

// ---------------------------------------------------------------- Powertools

/** A logger that prints nothing; spy on its methods to assert what was logged. */
export function silentLogger(): Logger {
  return new Logger({ serviceName: 'test', logLevel: 'SILENT' });
}

export interface EmfCapture {
  readonly metrics: Metrics;
  /** Every EMF document published, parsed. */
  readonly documents: Record<string, unknown>[];
  /** The value of `name` in the last document that holds it. */
  last(name: string): number | undefined;
  /** Values of `name` in every published document, in order. */
  all(name: string): number[];
  /** The unit `name` was declared with in the last document that holds it. */
  unit(name: string): string | undefined;
}

/** A real Powertools Metrics whose EMF output is captured instead of printed. */
export function captureMetrics(): EmfCapture {
  const metrics = new Metrics({ namespace: METRICS_NAMESPACE, serviceName: 'test' });
  const documents: Record<string, unknown>[] = [];
  const sink = (metrics as unknown as { console: { log: (line: string) => void } }).console;
  vi.spyOn(sink, 'log').mockImplementation((line: string) => {
    documents.push(JSON.parse(line) as Record<string, unknown>);
  });
  const holding = (name: string) => documents.filter((d) => name in d);
  return {
    metrics,
    documents,
    last: (name) => {
      const docs = holding(name);
      return docs.length === 0 ? undefined : (docs[docs.length - 1][name] as number);
    },
    all: (name) => holding(name).map((d) => d[name] as number),
    unit: (name) => {
      for (const doc of [...documents].reverse()) {
        const aws = doc._aws as { CloudWatchMetrics: { Namespace: string; Metrics: { Name: string; Unit: string }[] }[] };
        const found = aws.CloudWatchMetrics.flatMap((m) => m.Metrics).find((m) => m.Name === name);
        if (found) return found.Unit;
      }
      return undefined;
    },
  };
}
