#!/usr/bin/env node
/**
 * The agent-lb CDK app: one stack described by the `agent-lb` object in cdk.json's context
 * (`-c agent-lb='{...}'` is merged over it, `-c agent-lb.<setting>=<value>` sets one setting).
 * See lib/constructs/app-context.ts for the settings.
 */
import { App } from 'aws-cdk-lib';
import { addAgentLbStack } from '../lib/constructs/app-context';

const app = new App();
try {
  addAgentLbStack(app);
} catch (error) {
  // Everything this app builds comes from its configuration: a problem is a configuration
  // problem, and the CDK CLI shows it best as one line rather than a stack trace.
  process.stderr.write(`agent-lb: ${(error as Error).message.replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(1);
}
