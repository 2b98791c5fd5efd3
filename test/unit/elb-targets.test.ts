import {
  DeregisterTargetsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  InvalidTargetException,
  RegisterTargetsCommand,
  TargetGroupNotFoundException,
  TooManyTargetsException,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { createElbClient } from '../../lib/aws/clients';
import { ElbTargets, isTransient, MAX_TARGETS_PER_CALL } from '../../lib/aws/elb-targets';
import { ElbTargetsError } from '../../lib/core/errors';
import type { TargetRef } from '../../lib/core/lease-schema';
import { awsError, privateIp, TG } from '../support/lease-fixtures';

const elbMock = mockClient(ElasticLoadBalancingV2Client);
const client = new ElasticLoadBalancingV2Client({
  region: 'us-east-1',
  credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
  maxAttempts: 3,
  retryMode: 'adaptive',
});

function refs(count: number, from = 1): TargetRef[] {
  return Array.from({ length: count }, (_, i) => {
    const id = privateIp(from + i);
    return { key: `${id}:8080`, id, port: 8080 };
  });
}

const toElb = (targets: TargetRef[]) => targets.map((t) => ({ Id: t.id, Port: t.port }));

const invalidTarget = (id: string) =>
  new InvalidTargetException({ message: `The following targets are not in a running state: ${id}`, $metadata: { httpStatusCode: 400 } });

beforeEach(() => {
  elbMock.reset();
  elbMock.on(RegisterTargetsCommand).resolves({});
  elbMock.on(DeregisterTargetsCommand).resolves({});
});

describe('createElbClient', () => {
  it('configures the standard retry mode: no client-side rate limiter for calls abandoned at their deadline to starve', async () => {
    // Act
    const elb = createElbClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });

    // Assess
    expect(elb.config.retryMode).toBe('standard');
    const strategy = await elb.config.retryStrategy();
    expect((strategy as { mode?: string }).mode).toBe('standard');
    expect(await elb.config.maxAttempts()).toBeGreaterThan(1);
  });

  it('lets the caller override the defaults', async () => {
    // Act
    const elb = createElbClient({ region: 'us-east-1', maxAttempts: 2 });

    // Assess
    expect(await elb.config.maxAttempts()).toBe(2);
    expect(elb.config.retryMode).toBe('standard');
  });
});

describe('ElbTargets chunking', () => {
  it.each([
    [0, []],
    [1, [1]],
    [199, [199]],
    [200, [200]],
    [201, [200, 1]],
    [450, [200, 200, 50]],
    [600, [200, 200, 200]],
  ])('registers %i targets in calls of %j targets', async (count, sizes) => {
    // Prepare
    const elb = new ElbTargets(client);
    const targets = refs(count);

    // Act
    const outcome = await elb.register(TG.vision, targets);

    // Assess
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, sizes.length);
    let offset = 0;
    sizes.forEach((size, i) => {
      expect(elbMock).toHaveReceivedNthCommandWith(RegisterTargetsCommand, i + 1, {
        TargetGroupArn: TG.vision,
        Targets: toElb(targets.slice(offset, offset + size)),
      });
      offset += size;
    });
    expect(outcome).toEqual({ applied: targets.map((t) => t.key), transientFailures: [], rejected: [], calls: sizes.length });
    expect(elb.mutatingCalls).toBe(sizes.length);
  });

  it('chunks deregistrations the same way', async () => {
    // Prepare
    const elb = new ElbTargets(client);
    const targets = refs(450);

    // Act
    const outcome = await elb.deregister(TG.speech, targets);

    // Assess
    expect(MAX_TARGETS_PER_CALL).toBe(200);
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 3);
    expect(elbMock).toHaveReceivedNthCommandWith(DeregisterTargetsCommand, 3, { TargetGroupArn: TG.speech, Targets: toElb(targets.slice(400)) });
    expect(outcome.calls).toBe(3);
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 0);
  });

  it('passes AvailabilityZone only when the target has one', async () => {
    // Prepare
    const elb = new ElbTargets(client);

    // Act
    await elb.register(TG.vision, [
      { key: '192.168.0.1:80', id: '192.168.0.1', port: 80, availabilityZone: 'all' },
      { key: '10.0.0.1:80', id: '10.0.0.1', port: 80 },
    ]);

    // Assess
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(RegisterTargetsCommand, {
      TargetGroupArn: TG.vision,
      Targets: [{ Id: '192.168.0.1', Port: 80, AvailabilityZone: 'all' }, { Id: '10.0.0.1', Port: 80 }],
    });
  });

  it('counts calls per operation even when several groups run concurrently', async () => {
    // Prepare
    const elb = new ElbTargets(client);

    // Act
    const outcomes = await Promise.all([elb.register(TG.vision, refs(201)), elb.register(TG.speech, refs(3)), elb.deregister(TG.ec2, refs(1))]);

    // Assess
    expect(outcomes.map((o) => o.calls)).toEqual([2, 1, 1]);
    expect(elb.mutatingCalls).toBe(4);
  });
});

describe('ElbTargets error mapping', () => {
  it.each([
    ['Throttling (400)', awsError('Throttling', 400, 'Rate exceeded')],
    ['ThrottlingException (400)', awsError('ThrottlingException', 400, 'Rate exceeded')],
    ['503', awsError('ServiceUnavailable', 503)],
    ['500 InternalFailure', awsError('InternalFailure', 500)],
  ])('%s is transient: every target of the chunk is reported for retry, none rejected', async (_name, error) => {
    // Prepare
    elbMock.on(RegisterTargetsCommand).rejects(error);
    const elb = new ElbTargets(client);
    const targets = refs(3);

    // Act
    const outcome = await elb.register(TG.vision, targets);

    // Assess: no per-target isolation for transient errors
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 1);
    expect(outcome.applied).toEqual([]);
    expect(outcome.rejected).toEqual([]);
    expect(outcome.transientFailures).toEqual(targets.map((t) => t.key));
    expect(outcome.firstTransientError).toBeInstanceOf(ElbTargetsError);
    expect(outcome.firstTransientError).toMatchObject({ transient: true, code: 'ELB_TRANSIENT', targetGroupArn: TG.vision });
    expect(outcome.firstTransientError!.cause).toBe(error);
    expect(outcome.firstTransientError!.message).toContain(error.name);
  });

  it('a transient failure of one chunk does not stop the other chunks', async () => {
    // Prepare: the first of three chunks is throttled
    elbMock.on(RegisterTargetsCommand).rejectsOnce(awsError('Throttling', 400)).resolves({});
    const elb = new ElbTargets(client);
    const targets = refs(450);

    // Act
    const outcome = await elb.register(TG.vision, targets);

    // Assess
    expect(outcome.calls).toBe(3);
    expect(outcome.transientFailures).toEqual(targets.slice(0, 200).map((t) => t.key));
    expect(outcome.applied).toEqual(targets.slice(200).map((t) => t.key));
  });

  it.each([
    ['InvalidTargetException (400)', () => invalidTarget('10.0.0.2')],
    ['ValidationError (400)', () => awsError('ValidationError', 400, 'Port out of range')],
  ])('%s on a chunk is isolated by halving the call: good targets are applied, the bad one rejected for good', async (_name, makeError) => {
    // Prepare: ELB refuses any call that contains 10.0.0.2
    const targets = refs(3);
    elbMock.on(RegisterTargetsCommand).callsFake((input: { Targets: { Id: string }[] }) => {
      if (input.Targets.some((t) => t.Id === '10.0.0.2')) throw makeError();
      return {};
    });
    const elb = new ElbTargets(client);

    // Act
    const outcome = await elb.register(TG.vision, targets);

    // Assess: the chunk, then halves: [1,2,3] ✗ → [1,2] ✗ → [1] ✓, [2] ✗; [3] ✓
    const sent = elbMock.commandCalls(RegisterTargetsCommand).map((c) => c.args[0].input.Targets!.map((t) => t.Id));
    expect(sent).toEqual([['10.0.0.1', '10.0.0.2', '10.0.0.3'], ['10.0.0.1', '10.0.0.2'], ['10.0.0.1'], ['10.0.0.2'], ['10.0.0.3']]);
    expect(outcome.applied).toEqual(['10.0.0.1:8080', '10.0.0.3:8080']);
    expect(outcome.transientFailures).toEqual([]);
    expect(outcome.rejected).toHaveLength(1);
    expect(outcome.rejected[0].key).toBe('10.0.0.2:8080');
    expect(outcome.rejected[0].error).toMatchObject({ transient: false, code: 'ELB_PERMANENT', targetGroupArn: TG.vision, refusedForGood: true });
    expect(outcome.firstTransientError).toBeUndefined();
    expect(outcome.calls).toBe(5);
  });

  it('one refused target among 200 costs about 2·log2(200) extra calls, not 200', async () => {
    // Prepare
    const targets = refs(200);
    elbMock.on(RegisterTargetsCommand).callsFake((input: { Targets: { Id: string }[] }) => {
      if (input.Targets.some((t) => t.Id === targets[137].id)) throw invalidTarget(targets[137].id);
      return {};
    });

    // Act
    const outcome = await new ElbTargets(client).register(TG.vision, targets);

    // Assess
    expect(outcome.applied).toHaveLength(199);
    expect(outcome.rejected.map((r) => r.key)).toEqual([targets[137].key]);
    expect(outcome.calls).toBeLessThanOrEqual(1 + 2 * Math.ceil(Math.log2(200)));
  });

  it('a quota error (TooManyTargets) is permanent for the call but not a refusal for good', async () => {
    // Prepare
    elbMock.on(RegisterTargetsCommand).rejects(awsError('TooManyTargetsException', 400, 'You have reached the maximum number of targets'));

    // Act
    const outcome = await new ElbTargets(client).register(TG.vision, refs(1));

    // Assess
    expect(outcome.rejected[0].error).toMatchObject({ transient: false, refusedForGood: false, awsErrorName: 'TooManyTargetsException' });
  });

  it('a permanent error on a single-target chunk is rejected without a second call', async () => {
    // Prepare
    elbMock.on(DeregisterTargetsCommand).rejects(invalidTarget('10.0.0.1'));
    const elb = new ElbTargets(client);

    // Act
    const outcome = await elb.deregister(TG.vision, refs(1));

    // Assess
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 1);
    expect(outcome.rejected.map((r) => r.key)).toEqual(['10.0.0.1:8080']);
    expect(outcome.applied).toEqual([]);
  });

  it('a transient error while isolating is reported for retry, not rejected', async () => {
    // Prepare: any call with 10.0.0.2 is refused for good; the call for 10.0.0.3 alone is throttled
    elbMock.on(RegisterTargetsCommand).callsFake((input: { Targets: { Id: string }[] }) => {
      if (input.Targets.some((t) => t.Id === '10.0.0.2')) throw invalidTarget('10.0.0.2');
      if (input.Targets.some((t) => t.Id === '10.0.0.3')) throw awsError('Throttling', 400);
      return {};
    });
    const elb = new ElbTargets(client);

    // Act
    const outcome = await elb.register(TG.vision, refs(3));

    // Assess
    expect(outcome.applied).toEqual(['10.0.0.1:8080']);
    expect(outcome.rejected.map((r) => r.key)).toEqual(['10.0.0.2:8080']);
    expect(outcome.transientFailures).toEqual(['10.0.0.3:8080']);
    expect(outcome.firstTransientError?.transient).toBe(true);
  });
});

describe('ElbTargets.describe', () => {
  it('maps DescribeTargetHealth to observed targets with their state and zone', async () => {
    // Prepare
    elbMock.on(DescribeTargetHealthCommand, { TargetGroupArn: TG.vision }).resolves({
      TargetHealthDescriptions: [
        { Target: { Id: '10.0.0.1', Port: 8080 }, TargetHealth: { State: 'healthy' } },
        { Target: { Id: '192.168.0.1', Port: 80, AvailabilityZone: 'all' }, TargetHealth: { State: 'draining' } },
        { Target: { Id: '10.0.0.2', Port: 81 } },
        { Target: { Id: '10.0.0.3' }, TargetHealth: { State: 'healthy' } },
      ],
    });
    const elb = new ElbTargets(client);

    // Act
    const observed = await elb.describe(TG.vision);

    // Assess
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DescribeTargetHealthCommand, { TargetGroupArn: TG.vision });
    expect(observed).toEqual([
      { id: '10.0.0.1', port: 8080, state: 'healthy' },
      { id: '192.168.0.1', port: 80, state: 'draining', availabilityZone: 'all' },
      { id: '10.0.0.2', port: 81, state: 'unavailable' },
    ]);
    expect(elb.describeCalls).toBe(1);
    expect(elb.mutatingCalls).toBe(0);
  });

  it('throws an ElbTargetsError naming the group when it cannot read it', async () => {
    // Prepare
    const cause = new TargetGroupNotFoundException({ message: 'One or more target groups not found', $metadata: { httpStatusCode: 400 } });
    elbMock.on(DescribeTargetHealthCommand).rejects(cause);
    const elb = new ElbTargets(client);

    // Act
    const error = await elb.describe(TG.vision).catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(ElbTargetsError);
    expect(error).toMatchObject({ transient: false, targetGroupArn: TG.vision, cause });
  });
});

describe('isTransient', () => {
  const connection = (code: string) => Object.assign(new Error(`connect ${code}`), { code });
  it.each<[string, unknown, boolean]>([
    ['ThrottlingException 400', awsError('ThrottlingException', 400), true],
    ['Throttling 400 (ELBv2 query protocol code)', awsError('Throttling', 400), true],
    ['RequestLimitExceeded 400', awsError('RequestLimitExceeded', 400), true],
    ['TooManyRequestsException 429', awsError('TooManyRequestsException', 429), true],
    ['any 429', awsError('SomethingException', 429), true],
    ['ServiceUnavailable 503', awsError('ServiceUnavailable', 503), true],
    ['InternalFailure 500', awsError('InternalFailure', 500), true],
    ['unknown 502', awsError('BadGatewayException', 502), true],
    ['$retryable client error', Object.assign(awsError('SomeClientException', 400), { $retryable: {} }), true],
    ['TimeoutError (no response)', Object.assign(new Error('socket timed out'), { name: 'TimeoutError' }), true],
    ['ECONNRESET', connection('ECONNRESET'), true],
    ['ETIMEDOUT', connection('ETIMEDOUT'), true],
    ['ValidationError 400', awsError('ValidationError', 400), false],
    ['InvalidTargetException 400', invalidTarget('10.0.0.1'), false],
    ['TargetGroupNotFoundException 400', new TargetGroupNotFoundException({ message: 'nope', $metadata: { httpStatusCode: 400 } }), false],
    ['TooManyTargetsException 400', new TooManyTargetsException({ message: 'limit', $metadata: { httpStatusCode: 400 } }), false],
    ['AccessDenied 403', awsError('AccessDenied', 403), false],
    ['unmodelled *Exception without status', Object.assign(new Error('x'), { name: 'WeirdException' }), false],
  ])('%s → %s', (_name, error, expected) => {
    expect(isTransient(error)).toBe(expected);
  });
});
