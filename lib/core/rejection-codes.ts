import type { LeaseRejectionReason } from './errors';

/**
 * The stable reason codes the registry gives an agent for not routing its lease, or one of its
 * capabilities (docs/lease-contract.md, the registry-written `rejection`): declared once, here,
 * for every writer and reader. The fine-grained `LeaseRejectionReason`s map onto them.
 */
export const REJECTION_CODES = ['invalid', 'unknown-capability', 'port-not-allowed', 'not-admitted', 'over-quota'] as const;
export type RejectionCode = (typeof REJECTION_CODES)[number];

const BY_REASON: Partial<Record<LeaseRejectionReason, RejectionCode>> = {
  UNKNOWN_CAPABILITY: 'unknown-capability',
  PORT_NOT_ALLOWED: 'port-not-allowed',
  NOT_ADMITTED: 'not-admitted',
  OVER_QUOTA: 'over-quota',
};

/** The code an agent is told for `reason`: everything about the item itself is `invalid`. */
export function rejectionCodeOf(reason: LeaseRejectionReason): RejectionCode {
  return BY_REASON[reason] ?? 'invalid';
}
