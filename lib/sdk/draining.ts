import type { LeaseView } from './lease-view';
import type { InFlightSource } from './in-flight';
import { drainedProgress } from './rotation-progress';

/**
 * The load balancer's own count of what is in flight, for an agent that cannot count its
 * requests itself (an app the sidecar does not front): the draining of the target in each of
 * its groups, as the registry reports it in the lease's `rotation`. ALB ends a deregistration
 * as soon as the target has no request in flight, or at the end of the deregistration delay,
 * cutting what is left; either way the target then leaves the group (`absent`). So once every
 * group reports it gone, no request of the load balancer is running on the target any more,
 * and the process may stop. Pass it as `leave({ inFlight })`; `inFlight` is the number of the
 * lease's groups still draining it.
 *
 * On AWS the target reads `draining` until the delay has passed even when ALB completed the
 * deregistration early, and the registry writes `rotation` at its reconcile cadence: the wait
 * lasts about the deregistration delay (bounded by the leave deadline). Locally the data plane
 * reports the early completion, so the wait ends with the last request.
 */
export class LoadBalancerDraining implements InFlightSource {
  public constructor(private readonly leases: readonly LeaseView[]) {}

  /** Groups that have not reported the target gone, over every lease still held. */
  public get inFlight(): number {
    return this.leases.filter((l) => l.held).reduce((n, l) => n + drainedProgress(l.rotation, l.capabilities, l.rejection).pending.length, 0);
  }

  public whenIdle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const stops = this.leases.map((l) => l.watchRotation());
      const check = () => {
        if (this.inFlight > 0) return;
        for (const l of this.leases) l.off('rotation', check).off('lost', check).off('released', check);
        stops.forEach((stop) => stop());
        resolve();
      };
      for (const l of this.leases) l.on('rotation', check).on('lost', check).on('released', check);
    });
  }
}

/** Waits on the load balancer's draining of `lease` (or of several leases) instead of counting requests; see {@link LoadBalancerDraining}. */
export function untilDrained(lease: LeaseView | readonly LeaseView[]): LoadBalancerDraining {
  return new LoadBalancerDraining(Array.isArray(lease) ? lease : [lease as LeaseView]);
}
