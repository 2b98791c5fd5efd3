#!/usr/bin/env node
// Operators run the CLI on whatever Node they have; the SDK's notice about future Node
// versions is not theirs to act on mid-command, and it would garble the live view.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { main } from '../lib/cli';

void main(process.argv.slice(2));
