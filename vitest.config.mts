import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Generous: a test waits for events, and a loaded machine must not fail it on time alone.
    testTimeout: 300_000,
    // Integration files mostly wait on DynamoDB Local and moto: one file per core, not cores - 1.
    maxWorkers: '100%',
    hookTimeout: 180_000,
    pool: 'forks',
    // The SDK's notice about Node versions after January 2027 is noise in every test log.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    reporters: ['default', './test/support/summary-reporter.ts'],
    // One temporary directory per test file (TMPDIR), removed after it: CDK apps without an outdir synthesize there.
    setupFiles: ['./test/support/cdk-outdir.ts'],
  },
});
