// What an ES module and a CommonJS module each get from the package's entry points.
import { createRequire } from 'node:module';
import * as root from 'agent-lb';
import * as sdk from 'agent-lb/sdk';
import * as core from 'agent-lb/core';
import { AgentLb, CapabilityRouter, LeaseTable, RegistrySync } from 'agent-lb';

const require = createRequire(import.meta.url);
const kinds = (m) => Object.fromEntries(Object.entries(m).filter(([k]) => k !== 'default' && k !== '__esModule').map(([k, v]) => [k, typeof v]));
process.stdout.write(
  JSON.stringify({
    esm: { root: kinds(root), sdk: kinds(sdk), core: kinds(core), named: [AgentLb, CapabilityRouter, LeaseTable, RegistrySync].map((c) => typeof c) },
    cjs: { root: kinds(require('agent-lb')), sdk: kinds(require('agent-lb/sdk')), core: kinds(require('agent-lb/core')) },
  }),
);
