"""The lease contract (docs/lease-contract.md) in names and limits: the same item every agent
writes, in any language. Mirrors ``lib/core/lease-schema.ts``, ``lib/core/rejection.ts`` and (for
trusted discovery) ``lib/core/registry-state.ts`` and ``lib/core/agent-discovery.ts`` of the Node
package; the test vectors (test/vectors/) prove the two agree."""

from __future__ import annotations

import re
from typing import Tuple


class LEASE_ATTR:
    """Attribute names of a lease item."""

    target = "target"
    address = "address"
    port = "port"
    capabilities = "capabilities"
    expires_at = "expiresAt"
    lease_token = "leaseToken"
    agent_id = "agentId"
    status = "status"
    renewed_at = "renewedAt"
    registered_at = "registeredAt"
    availability_zone = "availabilityZone"
    metadata = "metadata"
    #: Written only by the registry: the target's state in each capability's target group.
    rotation = "rotation"
    #: Written only by the registry: why it refuses the lease or some of its capabilities.
    rejection = "rejection"


#: ``^[a-z0-9][a-z0-9_-]{0,62}$``; use ``CAPABILITY_NAME.fullmatch``.
CAPABILITY_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
MAX_METADATA_BYTES = 2048
MIN_PORT = 1
MAX_PORT = 65535
#: Largest plausible epoch-seconds value (year 5138): anything above is almost surely milliseconds.
MAX_EPOCH_SECONDS = 1e11
#: Smallest plausible epoch-milliseconds value (March 1973): below it a writer used seconds.
MIN_EPOCH_MS = 1e11

#: A target's state in one capability's target group, as ELB reports it, plus ``absent``.
ROTATION_STATES: Tuple[str, ...] = ("initial", "healthy", "unhealthy", "draining", "unused", "unavailable", "absent")
#: States in which a target gets no new requests from its group (``unhealthy`` is still in
#: rotation: an ALB fails open when every target of a group is unhealthy).
OUT_OF_ROTATION_STATES: Tuple[str, ...] = ("draining", "absent", "unused")

#: The registry's reason codes in ``rejection.reason`` (lib/core/rejection.ts declares them; the
#: vectors check both lists). A reader accepts others: a newer registry may add some.
REJECTION_REASONS: Tuple[str, ...] = (
    "invalid",
    "unknown-capability",
    "target-type-mismatch",
    "port-not-allowed",
    "expiry-too-far",
    "not-admitted",
    "over-quota",
)

#: RFC 1918 and RFC 6598 shared space: where IP targets may live by default.
DEFAULT_ALLOWED_CIDRS: Tuple[str, ...] = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")

DEFAULT_TTL_SECONDS = 30
MIN_TTL_SECONDS = 3
MAX_TTL_SECONDS = 3600

#: Credentials for a local-mode deployment (`agent-lb local`): its emulators accept any, boto3
#: sends nothing without some. DynamoDB Local wants letters and digits only.
LOCAL_CREDENTIALS = {"aws_access_key_id": "agentlblocal", "aws_secret_access_key": "agentlblocal"}


class REGISTRY_STATE:
    """The registry state table (``lib/core/registry-state.ts``): written only by the registry, read
    by trusted discovery. A capability's members are the items of partition
    ``members#<capability>``, one per target (sort key ``<address>:<port>``)."""

    partition_key = "pk"
    sort_key = "sk"
    members_partition_prefix = "members#"
    #: Environment variable naming the table when ``discover_agents`` is given none (stack output ``RegistryStateTableName``).
    table_env = "AGENT_LB_REGISTRY_TABLE"


class MEMBER_ATTR:
    """Attribute names of a member item beyond its key: the lease's fields under the contract's
    names, the target's rotation entry in that capability's group, when the registry read the lease."""

    address = LEASE_ATTR.address
    port = LEASE_ATTR.port
    agent_id = LEASE_ATTR.agent_id
    status = LEASE_ATTR.status
    registered_at = LEASE_ATTR.registered_at
    availability_zone = LEASE_ATTR.availability_zone
    metadata = LEASE_ATTR.metadata
    state = "state"
    since = "since"
    read_at = "readAt"


#: Trusted discovery's health filters, as Cloud Map's ``DiscoverInstances``.
HEALTH_FILTERS: Tuple[str, ...] = ("healthy", "all", "healthy-or-else-all")
