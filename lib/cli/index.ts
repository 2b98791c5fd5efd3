import { Command } from 'commander';
import { main as run } from './program';

/** Registers the commands that need the agent SDK and local mode. */
function extend(program: Command): void {
  void program;
}

export function main(argv: readonly string[]): Promise<void> {
  return run(argv, extend);
}
