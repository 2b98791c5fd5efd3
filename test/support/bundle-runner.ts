import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';

/**
 * A Lambda bundle run the way the Lambda runtime runs it: loaded once in a fresh Node process
 * (a cold start), then invoked as many times as the test asks (a warm container: whatever the
 * handler keeps in module scope survives between invocations). Configuration comes from the
 * environment, as in Lambda. Output (EMF documents and log lines, stdout and stderr merged) is
 * returned per invocation.
 */

export interface Invocation<R = unknown> {
  readonly result: R;
  /** The EMF documents the handler printed. */
  readonly metrics: Record<string, unknown>[];
  readonly logs: Record<string, unknown>[];
}

const RUNTIME = `
process.stderr.write = process.stdout.write.bind(process.stdout);
const { handler } = require(process.env.BUNDLE);
const context = { getRemainingTimeInMillis: () => 60000 };
let chain = Promise.resolve();
require('readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const { id, event } = JSON.parse(line);
  chain = chain.then(async () => {
    try {
      const result = await handler(event, context);
      process.stdout.write('\\n@@RESULT ' + JSON.stringify({ id, result }) + '\\n');
    } catch (error) {
      process.stdout.write('\\n@@RESULT ' + JSON.stringify({ id, error: String(error && error.stack || error) }) + '\\n');
    }
  });
});
`;

export class BundleRunner {
  private buffer = '';
  private lines: string[] = [];
  private next = 0;
  private waiting?: { id: number; resolve: (v: { result?: unknown; error?: string; lines: string[] }) => void; reject: (e: Error) => void };

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    child.on('exit', (code) => this.waiting?.reject(new Error(`bundle exited (${code}) during an invocation:\n${this.lines.join('\n')}`)));
    child.stdout.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString();
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        if (line.startsWith('@@RESULT ')) {
          const parsed = JSON.parse(line.slice('@@RESULT '.length)) as { id: number; result?: unknown; error?: string };
          const lines = this.lines;
          this.lines = [];
          if (this.waiting?.id === parsed.id) this.waiting.resolve({ ...parsed, lines });
        } else if (line !== '') this.lines.push(line);
      }
    });
  }

  /** Starts a cold container for `bundle` with `env` (plus PATH). */
  public static start(bundle: string, env: Record<string, string>): BundleRunner {
    const child = spawn(process.execPath, ['-e', RUNTIME], { env: { PATH: process.env.PATH ?? '', ...env, BUNDLE: bundle }, stdio: 'pipe' });
    return new BundleRunner(child);
  }

  /** One invocation; rejects when the handler threw (the message carries its output). */
  public async invoke<R = unknown>(event: unknown): Promise<Invocation<R>> {
    const id = this.next++;
    const done = new Promise<{ result?: unknown; error?: string; lines: string[] }>((resolve, reject) => {
      this.waiting = { id, resolve, reject };
    });
    this.child.stdin.write(`${JSON.stringify({ id, event })}\n`);
    const out = await done;
    this.waiting = undefined;
    if (out.error !== undefined) throw new Error(`handler failed: ${out.error}\n${out.lines.join('\n')}`);
    const docs = out.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    return { result: out.result as R, metrics: docs.filter((d) => '_aws' in d), logs: docs.filter((d) => !('_aws' in d)) };
  }

  public async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.stdin.end();
    this.child.kill('SIGTERM');
    await exited;
  }
}

/** The value of metric `name` in the invocation's EMF output (first document holding it). */
export const metricOf = (inv: Invocation, name: string): unknown => inv.metrics.map((d) => d[name]).find((v) => v !== undefined);
