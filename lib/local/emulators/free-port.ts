import { createServer, Server } from 'node:net';
import { PortUnavailableError } from '../../core/errors';

/** The only interface local mode ever binds or connects to. */
export const LOOPBACK = '127.0.0.1';

function listenEphemeral(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: LOOPBACK, port: 0, exclusive: true }, () => resolve(server));
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * `count` distinct TCP ports that were free on 127.0.0.1 a moment ago: each is bound to port 0
 * (the kernel picks), read, and released. All are held open together so they differ.
 *
 * There is an unavoidable window between release and the caller's own bind; launchers that
 * can bind port 0 themselves (DynamoDB Local here) do that instead, the others retry on
 * "address in use".
 */
export async function freePorts(count: number): Promise<number[]> {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`count must be a positive integer, got ${count}`);
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) servers.push(await listenEphemeral());
    return servers.map((s) => {
      const address = s.address();
      if (address === null || typeof address === 'string') throw new Error('could not read the port of an ephemeral listener');
      return address.port;
    });
  } finally {
    await Promise.all(servers.map(close));
  }
}

/** One TCP port that was free on 127.0.0.1 a moment ago. See {@link freePorts}. */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0];
}

/**
 * Fails fast when `port` cannot be bound on 127.0.0.1 now (binds and releases it), before
 * slower things start; the server that binds it later still reports its own failure.
 * @throws PortUnavailableError naming `what`
 */
export async function assertPortFree(what: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', (error) => reject(new PortUnavailableError(what, LOOPBACK, port, { cause: error })));
    server.listen({ host: LOOPBACK, port, exclusive: true }, () => server.close(() => resolve()));
  });
}
