import type { DynamoDBStreamEvent } from 'aws-lambda';
import { DeregisterTargetsCommand, ElasticLoadBalancingV2Client, RegisterTargetsCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { AddressPolicy } from '../lib/core/address-policy';
import { decodeLease } from '../lib/core/lease-codec';
import { routeLease } from '../lib/core/lease-routing';
import { RawItem, RoutingConfig } from '../lib/core/lease-schema';

export interface NaiveRegistrarOptions {
  /**
   * Called with a call's error (after the SDK's retries); the registrar then goes on with the
   * next call, as a naive registrar that logs and moves on would. Without it the error is
   * thrown and the whole batch is retried by the event source.
   */
  readonly onCallError?: (error: unknown) => void;
}

/**
 * The per-event baseline: what a naive registrar does (one Register or Deregister call per
 * record and capability, no coalescing, no heartbeat detection). It shares our decoding so
 * the comparison is about call economy only.
 */
export function createNaiveRegistrar(client: ElasticLoadBalancingV2Client, routing: RoutingConfig, options: NaiveRegistrarOptions = {}) {
  const policy = new AddressPolicy(routing.allowedCidrs, { allowLoopback: routing.allowLoopback === true });
  const route = (image: RawItem | undefined) => {
    if (!image) return [];
    const d = decodeLease(image, policy);
    return d.ok ? routeLease(d.lease, routing).memberships.map((m) => ({ ...m, active: d.lease.status === 'active' })) : [];
  };
  return async (event: DynamoDBStreamEvent): Promise<void> => {
    for (const record of event.Records) {
      const newImage = record.dynamodb?.NewImage as RawItem | undefined;
      const oldImage = record.dynamodb?.OldImage as RawItem | undefined;
      const memberships = newImage ? route(newImage) : route(oldImage);
      for (const m of memberships) {
        const input = { TargetGroupArn: m.targetGroupArn, Targets: [{ Id: m.target.id, Port: m.target.port }] };
        try {
          await client.send(newImage && m.active ? new RegisterTargetsCommand(input) : new DeregisterTargetsCommand(input));
        } catch (error) {
          if (!options.onCallError) throw error;
          options.onCallError(error);
        }
      }
    }
  };
}
