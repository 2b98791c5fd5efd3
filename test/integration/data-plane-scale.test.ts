import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LoadBalancer } from '../../lib/local/data-plane';
import { DEFAULT_MAX_CHECKS_IN_FLIGHT } from '../../lib/local/data-plane/check-queue';
import { capabilityRules, get, MemorySource, RecordingSink, startTargetServer, stateOf, targetGroup } from './data-plane-harness';

/**
 * 2 000 targets in one group must not starve the health checks of another: the data plane keeps
 * at most DEFAULT_MAX_CHECKS_IN_FLIGHT checks open, taking groups in turn. The flood's targets
 * are a tarpit (it accepts connections and never answers, so every check of theirs runs to its
 * timeout: the worst case); the other group's one target must stay healthy and serve.
 */

const TIME_SCALE = 0.2; // 5 s interval → 1 s, 4 s timeout → 0.8 s
const FLOOD = 2000;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startTarpit(): Promise<{ port: number; open: () => number; maxOpen: () => number; accepted: () => number }> {
  const sockets = new Set<net.Socket>();
  let maxOpen = 0;
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    maxOpen = Math.max(maxOpen, sockets.size);
    socket.on('error', () => undefined);
    socket.resume(); // read, so a check that gave up (closed its end) leaves the count at once
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as net.AddressInfo).port, open: () => sockets.size, maxOpen: () => maxOpen, accepted: () => accepted };
}

describe('local data plane at 2 000 targets', () => {
  it('keeps the checks in flight bounded and the only target of another group healthy and serving', async () => {
    // Prepare
    const tarpit = await startTarpit();
    const vision = await startTargetServer('vision');
    cleanups.push(() => vision.close());
    const flood = targetGroup('tg/flood', []);
    const floodTargets = Array.from({ length: FLOOD }, (_, i) => ({ Id: `10.9.${i >> 8}.${i & 255}`, Port: 9000 }));
    const source = new MemorySource({
      rules: capabilityRules({ vision: 'tg/vision', flood: 'tg/flood' }),
      targetGroups: [targetGroup('tg/vision', [vision]), { ...flood, targets: floodTargets }],
    });
    const sink = new RecordingSink();
    const lb = await LoadBalancer.start({
      source,
      sink,
      timeScale: TIME_SCALE,
      pollIntervalMs: 200,
      // The flood's addresses all lead to the tarpit; the vision target is itself.
      resolveTarget: (_group, target) => (target.Id.startsWith('10.9.') ? { host: '127.0.0.1', port: tarpit.port } : { host: target.Id, port: target.Port }),
    });
    cleanups.push(() => lb.stop());

    // Act: let the flood's checks run for several of vision's intervals
    await sink.waitFor(stateOf(vision, 'healthy'));
    const checksBefore = vision.healthChecks.length;
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (vision.healthChecks.length >= checksBefore + 5 && tarpit.accepted() >= 4 * DEFAULT_MAX_CHECKS_IN_FLIGHT) {
          clearInterval(poll);
          resolve();
        }
      }, 50);
    });
    const answers = await Promise.all(Array.from({ length: 20 }, () => get(lb.endpoint, '/agents/vision/x')));

    // Assess
    // The tarpit sees a check that gave up close a moment after the check that took its slot
    // connects, so its count runs a little over the bound; without one it reaches the flood's 2 000.
    expect(tarpit.maxOpen()).toBeLessThanOrEqual(3 * DEFAULT_MAX_CHECKS_IN_FLIGHT);
    expect(sink.changes.filter((c) => c.targetGroupArn === 'tg/vision' && c.health.State === 'unhealthy')).toEqual([]);
    expect(vision.healthChecks.every((c) => c.passed)).toBe(true);
    expect(answers.map((a) => `${a.status} ${a.name}`)).toEqual(Array(20).fill('200 vision'));
  }, 120_000);
});
