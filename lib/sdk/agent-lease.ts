import type { LeaseRotation, RawItem } from '../core/lease-schema';
import { LEASE_ATTR } from '../core/lease-schema';
import { decodeRejection, sameVerdict } from '../core/rejection';
import type { StoredRejection } from '../core/rejection';
import { discoverAddress } from './address-discovery';
import type { DiscoveredAddress } from './address-discovery';
import type { AgentLeaseState } from './agent-lease-events';
import type { AgentLeaseCreateOptions, AgentLeaseOptions } from './agent-lease-options';
import { LeaseHolder } from './lease-holder';
import type { LeaseView } from './lease-view';
import { leaveRotation } from './leave';
import type { LeaveOptions } from './leave';
import type { LeaveReport } from './leave-report';
import { servingProgress } from './rotation-progress';
import type { GroupRotation } from './rotation-progress';
import { RotationTracker } from './rotation-tracker';
import { waitUntilServing } from './serving';
import type { ServingOptions } from './serving';

/**
 * One lease held by an agent, following the lease contract of docs/lease-contract.md: acquire, automatic
 * renewal every ttl/3 with jitter, `lost` detection, automatic re-acquire, drain/activate and
 * release (see `LeaseHolder`) — and the lifecycle around them:
 * - `rotation`: the registry's feedback, the target's state in each capability's target group,
 *   brought by every renewal at no read cost (`rotation` event), polled only while a wait needs it;
 * - `rejection`: why the registry refuses the lease or some of its capabilities (`rejected` event);
 * - `serving()`: resolves once the target is `healthy` in every group it is not refused for;
 * - `leave()`: drain → out of rotation everywhere → propagation margin → in-flight work done →
 *   release, within a deadline (`installShutdownHandlers` runs it on SIGTERM);
 * - `AgentLease.create()`: finds the address itself (ECS task metadata, EC2 instance metadata).
 */
export class AgentLease extends LeaseHolder implements LeaseView {
  private readonly tracker: RotationTracker;
  private currentRejection?: StoredRejection;
  /** The last rejection reported by a `rejected` event: the same verdict is not reported twice. */
  private reportedRejection?: StoredRejection;
  private leaving?: Promise<LeaveReport>;
  private discovered?: DiscoveredAddress;

  /**
   * @throws ConfigError for a bad option (a missing `address` included: `AgentLease.create()` finds it),
   *   InvalidLeaseError for a lease the server would refuse.
   */
  public constructor(options: AgentLeaseOptions) {
    super(options);
    this.tracker = new RotationTracker(this.options.rotationPollIntervalMs, {
      poll: async () => {
        const item = await this.readOwnItem();
        if (item !== undefined) this.observeItem(item);
      },
      onChange: (rotation, previous) => this.emit('rotation', rotation, previous),
    }, () => this.now());
  }

  /**
   * Like the constructor, but when `address` is omitted finds it with `discoverAddress` (ECS
   * task metadata v4, then EC2 IMDSv2). The Availability Zone found goes into `metadata.zone`
   * (informational; a `zone` of your own wins) and `discoveredAddress`; never into the lease's
   * `availabilityZone`, which is only for IPs outside the VPC. An explicit address always wins:
   * then nothing is looked up.
   * @throws AddressNotFoundError (code `ADDRESS_NOT_FOUND`) listing where it looked and why each failed
   * @throws ConfigError, InvalidLeaseError as the constructor
   */
  public static async create(options: AgentLeaseCreateOptions): Promise<AgentLease> {
    const { addressDiscovery, ...rest } = options;
    if (rest.address !== undefined) return new AgentLease({ ...rest, address: rest.address });
    const found = await discoverAddress(addressDiscovery);
    const zone = found.availabilityZone !== undefined && rest.metadata?.zone === undefined ? { zone: found.availabilityZone } : undefined;
    const metadata = zone === undefined ? rest.metadata : { ...rest.metadata, ...zone };
    const lease = new AgentLease({ ...rest, address: found.address, ...(metadata === undefined ? {} : { metadata }) });
    lease.discovered = found;
    return lease;
  }

  /** Where `AgentLease.create()` found the address; undefined when it was given. */
  public get discoveredAddress(): DiscoveredAddress | undefined {
    return this.discovered;
  }

  /**
   * The latest `rotation` seen: per capability, the target's state in that capability's target
   * group and since when (epoch ms, the registry's clock). Empty until the registry writes it
   * after an acquire, and always with a registry that predates `rotation`.
   */
  public get rotation(): LeaseRotation {
    return this.tracker.rotation;
  }

  /**
   * Why the registry refuses this lease or some of its capabilities, as it last wrote into the
   * lease (`reason`: `invalid`, `unknown-capability`, …; `message`; `capabilities` when only those
   * are refused; `since`); undefined while it routes the lease as written, and after an acquire
   * until the registry has looked at the new item. A `rejected` event reports each new verdict.
   */
  public get rejection(): StoredRejection | undefined {
    return this.currentRejection;
  }

  /** Held, `active`, and `healthy` in every group it is not refused for, as last seen (makes no read). */
  public get isServing(): boolean {
    return this.held && this.status === 'active' && servingProgress(this.tracker.rotation, this.capabilities, this.currentRejection).done;
  }

  public override acquire(): Promise<AgentLeaseState> {
    this.leaving = undefined; // a leave() after a new acquire leaves again
    return super.acquire();
  }

  /**
   * Resolves once the lease is held, `active`, and its target `healthy` in the target group of
   * every capability the registry does not refuse, as it reports in `rotation` and `rejection`;
   * resolves to those groups. Polls the item meanwhile (see `rotationPollIntervalMs`). May be
   * called before `acquire()`.
   * @throws NotServingError (code `NOT_SERVING`, `reason` timeout | lost | released | aborted |
   *   rejected) naming each group that is not healthy and its state
   * @throws ConfigError for a bad timeout
   */
  public serving(options?: ServingOptions): Promise<readonly GroupRotation[]> {
    return waitUntilServing(this, options);
  }

  /**
   * Leaves rotation without failing a request, then releases: drain → wait until out of
   * rotation in every group → propagation margin → in-flight work done → release, within a
   * deadline. See `leaveRotation`, which also leaves several leases in lockstep. A second call
   * returns the first call's promise. Never rejects for an AWS failure: read the report.
   * @throws ConfigError for a bad option
   */
  public leave(options?: LeaveOptions): Promise<LeaveReport> {
    return (this.leaving ??= leaveRotation(this, options).catch((error: unknown) => {
      this.leaving = undefined;
      throw error;
    }));
  }

  /**
   * Polls the lease item while the lease is held — one strongly consistent GetItem (1 read
   * request unit) every `rotationPollIntervalMs` — until the returned function is called;
   * `rotation` events follow. `serving()` and `leave()` use it; callers share one poll.
   */
  public watchRotation(): () => void {
    return this.tracker.watch();
  }

  protected override onItemSeen(item: RawItem | undefined): void {
    if (item !== undefined) this.observeItem(item);
  }

  protected override onItemReplaced(): void {
    this.tracker.reset();
    this.currentRejection = undefined; // the PutItem wrote none; the registry writes it again if it still refuses
  }

  /** Takes in the registry's feedback from an item that is ours: `rotation` merged, `rejection` as it stands. */
  private observeItem(item: RawItem): void {
    this.tracker.observe(item[LEASE_ATTR.rotation]);
    const rejection = decodeRejection(item[LEASE_ATTR.rejection]);
    this.currentRejection = rejection;
    if (rejection !== undefined && !sameVerdict(rejection, this.reportedRejection)) {
      this.reportedRejection = rejection;
      this.emit('rejected', rejection);
    }
  }
}
