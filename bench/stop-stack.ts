import { LocalStack } from '../lib/local/local-stack';

/**
 * `stack.stop()`, with a referenced timer held until it resolves. The emulator processes are
 * unref'd children: when a server ignores SIGTERM past its grace period and gets SIGKILL,
 * nothing else may be keeping the event loop alive while stop() waits for the child's exit
 * event, and Node then exits (status 0) in the middle of the benchmark, before the results are written.
 */
export async function stopStack(stack: LocalStack): Promise<void> {
  const keepAlive = setInterval(() => undefined, 1000);
  try {
    await stack.stop();
  } finally {
    clearInterval(keepAlive);
  }
}
