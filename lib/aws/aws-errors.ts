/**
 * What an AWS SDK failure means for whoever called: the SDK's exception names (and Node's socket
 * error codes) mapped once, here, for the CLI and the sidecar. agent-lb's own errors keep the SDK
 * exception as `cause`, so the whole cause chain is searched.
 */
export type AwsFailureKind =
  /** No credentials could be found at all. */
  | 'no-credentials'
  /** Credentials were found and refused (unknown key, bad signature, expired token). */
  | 'bad-credentials'
  /** The credentials lack a permission. */
  | 'access-denied'
  /** The resource (table, stack, listener) does not exist. */
  | 'not-found'
  /** Nothing answers at the endpoint. */
  | 'unreachable'
  /** Anything else, transient or not. */
  | 'other';

const NO_CREDENTIALS = new Set(['CredentialsProviderError']);
const BAD_CREDENTIALS = new Set([
  'UnrecognizedClientException',
  'InvalidClientTokenId',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
  'ExpiredTokenException',
  'ExpiredToken',
  'InvalidAccessKeyId',
  'MissingAuthenticationTokenException',
]);
const ACCESS_DENIED = new Set(['AccessDeniedException', 'AccessDenied', 'UnauthorizedOperation', 'AuthorizationError']);
const NOT_FOUND = new Set(['ResourceNotFoundException', 'ListenerNotFoundException', 'TargetGroupNotFoundException', 'LoadBalancerNotFoundException']);
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'ETIMEDOUT']);

/** The errors in `error`'s cause chain, outermost first (cycles cut). */
export function causeChain(error: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e = error; e !== undefined && e !== null && !chain.includes(e) && chain.length < 10; e = (e as { cause?: unknown }).cause) chain.push(e);
  return chain;
}

/** The first (outermost) meaningful classification in the cause chain of `error`. */
export function awsFailureKind(error: unknown): AwsFailureKind {
  for (const e of causeChain(error)) {
    const { name, code, message } = e as { name?: string; code?: string; message?: string };
    if (name && NO_CREDENTIALS.has(name)) return 'no-credentials';
    if (name && BAD_CREDENTIALS.has(name)) return 'bad-credentials';
    if (name && ACCESS_DENIED.has(name)) return 'access-denied';
    if (name && NOT_FOUND.has(name)) return 'not-found';
    // CloudFormation says a stack is missing with a ValidationError.
    if (name === 'ValidationError' && /does not exist/.test(message ?? '')) return 'not-found';
    if ((code && UNREACHABLE.has(code)) || (name && UNREACHABLE.has(name))) return 'unreachable';
  }
  return 'other';
}

/** The innermost message of the cause chain: the SDK's or the socket's own words. */
export function rootMessage(error: unknown): string {
  const chain = causeChain(error);
  const last = chain[chain.length - 1] as { name?: string; message?: string } | undefined;
  return `${last?.message ?? String(last)}`;
}

/** How to give the CLI credentials, for messages. */
export const CREDENTIALS_HINT =
  'set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), run `aws configure` or `aws sso login`, or run where an instance or task role applies';
