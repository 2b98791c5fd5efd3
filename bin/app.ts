#!/usr/bin/env node
/**
 * The agent-lb CDK app: one stack described by the `agent-lb` object in cdk.json's context
 * (override with `-c agent-lb='{...}'`). See lib/constructs/app-context.ts for the settings.
 */
import { App } from 'aws-cdk-lib';
import { addAgentLbStack } from '../lib/constructs/app-context';

const app = new App();
addAgentLbStack(app);
