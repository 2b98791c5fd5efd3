import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // The SDK's notice about Node versions after January 2027 is noise in every test log.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    reporters: ['default', './test/support/summary-reporter.ts'],
    // One temporary directory per test file (TMPDIR), removed after it: CDK apps without an outdir synthesize there.
    setupFiles: ['./test/support/cdk-outdir.ts'],
  },
});
