#!/usr/bin/env node
// Started through bin/agent-lb.cjs, which also silences the SDK's Node version notice.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { main } from '../lib/cli';

void main(process.argv.slice(2)).then(() => {
  // A failed command ends here even if something it started still holds the event loop open
  // (a server half-started, a timer): a failure must never turn into a hang.
  if (process.exitCode !== undefined && process.exitCode !== 0) process.exit();
});
