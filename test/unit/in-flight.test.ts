/**
 * In-flight tracking: the counter an application feeds, and the HTTP server helper checked on a
 * real server with raw sockets, so keep-alive and `Connection: close` are seen as the load
 * balancer would see them.
 */
import { createServer, Server, ServerResponse } from 'node:http';
import { AddressInfo, connect, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpInFlightTracker, InFlightCounter, trackInFlight } from '../../lib/sdk';

describe('InFlightCounter', () => {
  it('counts work between begin() and its end, once however often the end is called', async () => {
    // Prepare
    const counter = new InFlightCounter();
    const endA = counter.begin();
    const endB = counter.begin();
    let idle = false;
    void counter.whenIdle().then(() => (idle = true));

    // Act
    endA();
    endA();
    await Promise.resolve();
    const afterFirst = { count: counter.inFlight, idle };
    endB();
    await Promise.resolve();

    // Assess
    expect(afterFirst).toEqual({ count: 1, idle: false });
    expect(counter.inFlight).toBe(0);
    expect(idle).toBe(true);
  });

  it('track() counts a promise while it runs, passes its result on and ends on failure too', async () => {
    const counter = new InFlightCounter();
    let finish!: (v: string) => void;
    const tracked = counter.track(new Promise<string>((r) => (finish = r)));
    const failing = counter.track(() => Promise.reject(new Error('nope')));
    expect(counter.inFlight).toBe(2);
    await expect(failing).rejects.toThrow('nope');
    finish('done');
    await expect(tracked).resolves.toBe('done');
    expect(counter.inFlight).toBe(0);
  });
});

let server: Server | undefined;
const sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  if (server) {
    server.closeAllConnections();
    if (server.listening) await new Promise((r) => server!.close(r));
    server = undefined;
  }
});

/** A raw HTTP/1.1 client connection: what arrives, and whether the server closed it. */
class RawConnection {
  public received = '';
  public closed: Promise<void>;
  private readonly socket: Socket;

  public constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    sockets.push(this.socket);
    this.socket.setEncoding('utf8');
    this.socket.on('data', (d: string) => (this.received += d));
    this.socket.on('error', () => undefined);
    this.closed = new Promise((r) => this.socket.once('close', () => r()));
  }

  public send(path: string): void {
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: agent\r\n\r\n`);
  }

  /** Resolves once `count` complete responses have arrived. */
  public async responses(count: number): Promise<string[]> {
    while ((this.received.match(/\r\n\r\nok/g) ?? []).length < count) await new Promise((r) => this.socket.once('data', r));
    return this.received.split('HTTP/1.1 ').filter(Boolean);
  }
}

/** A server answering `ok`, holding requests to /slow until the test lets them go. */
async function startServer(): Promise<{ port: number; tracker: HttpInFlightTracker; held: ServerResponse[]; arrived: () => Promise<void> }> {
  const held: ServerResponse[] = [];
  let onArrive: (() => void) | undefined;
  server = createServer((req, res) => {
    if (req.url === '/slow') {
      held.push(res);
      onArrive?.();
    } else res.end('ok');
  });
  const tracker = trackInFlight(server);
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const arrived = () => new Promise<void>((r) => (onArrive = r));
  return { port: (server.address() as AddressInfo).port, tracker, held, arrived };
}

describe('trackInFlight(server)', () => {
  it('keeps keep-alive connections open until stopAccepting(), then closes the idle ones and stops listening', async () => {
    // Prepare
    const { port, tracker } = await startServer();
    const conn = new RawConnection(port);
    conn.send('/a');
    await conn.responses(1);
    conn.send('/b'); // the same connection still serves: keep-alive
    const both = await conn.responses(2);

    // Act
    tracker.stopAccepting();
    await conn.closed;

    // Assess
    expect(both).toHaveLength(2);
    expect(both[0]).toMatch(/Connection: keep-alive/i);
    expect(tracker.inFlight).toBe(0);
    const refused = await new Promise<string>((r) => connect(port, '127.0.0.1').on('error', (e: NodeJS.ErrnoException) => r(e.code ?? '')).on('connect', () => r('connected')));
    expect(refused).toBe('ECONNREFUSED');
  });

  it('lets a request in flight finish, answers it with Connection: close, and closes its connection after', async () => {
    // Prepare
    const { port, tracker, held, arrived } = await startServer();
    const conn = new RawConnection(port);
    const arriving = arrived();
    conn.send('/slow');
    await arriving;
    let idle = false;
    void tracker.whenIdle().then(() => (idle = true));

    // Act
    tracker.stopAccepting();
    const idleBeforeAnswer = idle;
    held[0].end('ok');
    await conn.closed;
    await tracker.whenIdle();

    // Assess
    expect(idleBeforeAnswer).toBe(false);
    expect(conn.received).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(conn.received).toMatch(/\r\nConnection: close\r\n/i);
    expect(conn.received.endsWith('ok')).toBe(true);
    expect(tracker.inFlight).toBe(0);
  });

  it('dispose() stops counting', async () => {
    const { port, tracker, arrived } = await startServer();
    tracker.dispose();
    const conn = new RawConnection(port);
    const arriving = arrived();
    conn.send('/slow');
    await arriving;
    expect(tracker.inFlight).toBe(0);
  });
});
