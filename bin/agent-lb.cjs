#!/usr/bin/env node
'use strict';
/**
 * The `agent-lb` command. In the published package it runs the compiled CLI (dist/); in a clone
 * of the repository, where the TypeScript sources sit next to this file, it runs them through
 * tsx (a development dependency), so `npx agent-lb` works right after `npm ci`, with no build.
 */
// Operators run the CLI on whatever Node they have; the SDK's notice about future Node versions
// is not theirs to act on mid-command, and it would garble the live view.
if (process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED === undefined) {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
}
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const source = join(__dirname, 'agent-lb.ts');
if (existsSync(source)) {
  let register;
  try {
    ({ register } = require('tsx/cjs/api'));
  } catch {
    process.stderr.write('error: agent-lb runs from its TypeScript sources here and needs its development dependencies: run `npm ci` first\n');
    process.exit(2);
  }
  register();
  require(source);
} else {
  require('../dist/bin/agent-lb.js');
}
