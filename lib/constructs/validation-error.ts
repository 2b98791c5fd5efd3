import type { IConstruct } from 'constructs';

/**
 * A construct's props (or the app's settings behind them) fail its rules: thrown while the
 * construct is built, naming the construct path, the bad value and what is allowed. The
 * aws-cdk-lib way (its own `ValidationError` is internal to aws-cdk-lib): the message is the
 * problem, `constructPath` says where in the app it is.
 */
export class AgentLbValidationError extends Error {
  readonly #constructPath: string;

  public constructor(scope: IConstruct, message: string, options: { readonly cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.#constructPath = scope.node.path;
  }

  /** Path of the construct whose props are wrong, e.g. `AgentLb/Router`. */
  public get constructPath(): string {
    return this.#constructPath;
  }
}

// On the prototype, as with Error's own name: instances carry only their message (and cause).
Object.defineProperty(AgentLbValidationError.prototype, 'name', { value: 'AgentLbValidationError', writable: true, configurable: true });
