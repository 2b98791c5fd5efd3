/**
 * The Python SDK's whole pytest suite (python/tests), run by `npm test` as any other tier: the
 * package is installed with pip from the repository, offline, into this file's temporary
 * directory; a local mode with its load balancer is started here (DynamoDB Local, moto, the real
 * handlers, the data plane at 0.2 × ALB's timing) and handed to pytest through its state file.
 * The unit tests (the shared vectors, botocore Stubber, the in-memory table, Flask and ASGI),
 * the DynamoDB Local tests and the local-mode tests (serving through `loadBalancerEndpoint`,
 * leaving under load without a failed request, the registry's rejections) all run; none may be
 * skipped.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalStack } from '../../lib/local/local-stack';
import { checkPython, installPythonPackage, PytestOutcome, runPytest } from '../support/python-package';

let stack: LocalStack | undefined;
let site: string;
let installedWith: string;
const dir = process.env.TMPDIR!;

beforeAll(async () => {
  checkPython();
  site = join(dir, 'site');
  mkdirSync(site, { recursive: true });
  // One after the other: on a loaded machine a pip build beside Java's start-up slows both.
  installedWith = await installPythonPackage(site);
  stack = await LocalStack.start({ reconcileIntervalMs: 2000, stateFile: join(dir, 'state.json'), dataPlane: { timeScale: 0.2 } });
}, 600_000);

afterAll(async () => {
  await stack?.stop();
});

const summary = (o: PytestOutcome) => `${o.tests} tests, ${o.failures} failed, ${o.errors} errors, ${o.skipped} skipped (installed with: ${installedWith})\n${o.output.slice(-6000)}`;

describe('the Python SDK (pytest)', () => {
  it('installs offline with pip and passes every test: unit, DynamoDB Local, and through local mode\'s load balancer', async () => {
    // Act
    const outcome = await runPytest(site, dir, {
      AGENT_LB_TEST_DYNAMODB_ENDPOINT: stack!.state.dynamodbEndpoint,
      AGENT_LB_TEST_STATE_FILE: join(dir, 'state.json'),
    });

    // Assess
    expect(outcome.tests, summary(outcome)).toBeGreaterThan(200);
    expect({ code: outcome.code, failures: outcome.failures, errors: outcome.errors, skipped: outcome.skipped }, summary(outcome)).toEqual({
      code: 0,
      failures: 0,
      errors: 0,
      skipped: 0,
    });
  }, 600_000);
});
