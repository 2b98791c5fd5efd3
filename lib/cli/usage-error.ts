import { AgentLbError, AgentLbErrorOptions } from '../core/errors';

/**
 * Bad command-line usage: the CLI prints the message on one line and exits 2. Only the CLI
 * throws it (the layers below report their own errors, which the CLI maps to exit codes), so
 * it lives here; it imports nothing but `lib/core/errors`, which lets the package's main entry
 * keep exporting it.
 */
export class UsageError extends AgentLbError {
  public constructor(message: string, options: AgentLbErrorOptions = {}) {
    super('USAGE', message, options);
    this.name = 'UsageError';
  }
}
