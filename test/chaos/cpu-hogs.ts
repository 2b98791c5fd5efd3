import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';

/**
 * CPU hogs beside a run: `count` Node processes that spin until `stop()` kills them, `maxSeconds`
 * have passed, or their parent is gone (each bounds itself, so none outlives a run that died).
 */
export class CpuHogs {
  private constructor(private readonly children: ChildProcess[]) {}

  public static start(count: number, maxSeconds: number): CpuHogs {
    const script =
      `const end = Date.now() + ${Math.round(maxSeconds * 1000)}; let i = 0;` +
      `while (Date.now() < end) { if (++i % 1000000 === 0 && process.ppid !== ${process.pid}) break; }`;
    return new CpuHogs(Array.from({ length: count }, () => spawn(process.execPath, ['-e', script], { stdio: 'ignore' })));
  }

  public get count(): number {
    return this.children.length;
  }

  public async stop(): Promise<void> {
    await Promise.all(
      this.children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        child.kill('SIGKILL');
        await exited;
      }),
    );
  }
}
