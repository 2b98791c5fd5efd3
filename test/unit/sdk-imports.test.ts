import { resolve } from 'node:path';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

/**
 * `agent-lb/sdk` runs inside agents: it must not drag in aws-cdk-lib, the constructs, or the
 * ELB client. Checked statically on the real import graph with esbuild's metafile.
 */
describe('agent-lb/sdk import graph', () => {
  it('reaches neither aws-cdk-lib nor lib/constructs, and only the DynamoDB packages of the AWS SDK', async () => {
    // Act
    const result = await build({
      absWorkingDir: resolve(__dirname, '../..'),
      entryPoints: ['lib/sdk/index.ts'],
      bundle: true,
      metafile: true,
      write: false,
      platform: 'node',
      logLevel: 'silent',
      external: ['@aws-sdk/*'],
    });

    // Assess
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs).toContain('lib/sdk/index.ts');
    expect(inputs.filter((p) => /aws-cdk-lib|constructs|node_modules/.test(p))).toEqual([]);
    expect(inputs.every((p) => /^lib\/(sdk|core|aws)\//.test(p))).toBe(true);
    const externals = new Set(
      Object.values(result.metafile.inputs)
        .flatMap((input) => input.imports)
        .filter((i) => i.external && !/^(node:|\.)/.test(i.path))
        .map((i) => i.path),
    );
    expect([...externals].sort()).toEqual(['@aws-sdk/client-dynamodb', '@aws-sdk/util-dynamodb']);
  });
});
