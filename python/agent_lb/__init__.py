"""agent-lb for Python agents: hold a lease in the deployment's DynamoDB table, serve behind its
load balancer, learn whether you are serving (or why the registry refuses you), and leave
rotation without a failed request. The same contract as the Node SDK (docs/lease-contract.md),
proven by the same test vectors.

    from agent_lb import AgentLease

    lease = AgentLease("AgentLb-leases", 8080, ["vision"])   # address found in ECS/EC2 metadata
    lease.acquire()
    lease.install_shutdown_handlers()                        # SIGTERM: leave(), then exit 0 (1 if not released)
    lease.wait_until_serving(timeout=60)

Trusted callers (an orchestrator) list a capability's agents with ``discover_agents``.
"""

from .address import AddressPolicy, canonical_address, format_target
from .agents import DiscoveredAgent, discover_agents
from .aio import AsyncAgentLease
from .codec import Lease, Rejection, RotationEntry, decode_lease, decode_rejection, decode_rotation, encode_lease, is_live
from .contract import (
    CAPABILITY_NAME,
    DEFAULT_ALLOWED_CIDRS,
    DEFAULT_TTL_SECONDS,
    HEALTH_FILTERS,
    LEASE_ATTR,
    OUT_OF_ROTATION_STATES,
    REJECTION_REASONS,
    ROTATION_STATES,
)
from .discovery import DiscoveredAddress, discover_address
from .errors import (
    AddressDiscoveryAttempt,
    AddressNotFoundError,
    AgentLbError,
    ConfigError,
    InvalidLeaseError,
    LeaseHeldError,
    LeaseLostError,
    LeaseRejection,
    LeaseStoreError,
    NotServingError,
    RegistryStateError,
)
from .in_flight import AsgiInFlightMiddleware, InFlightCounter, WsgiInFlightMiddleware
from .lease import DEFAULT_ROTATION_POLL_INTERVAL, DEFAULT_SERVING_TIMEOUT, AgentLease, LeaseState
from .leave import (
    DEFAULT_CLOCK_SKEW_TOLERANCE,
    DEFAULT_LEAVE_DEADLINE,
    DEFAULT_MAX_REQUEST_DURATION,
    DEFAULT_PROPAGATION_MARGIN,
    DEFAULT_UNCONFIRMED_ROTATION_WAIT,
    LeaveReport,
    LeaveStep,
    leave_deadline_for,
)
from .progress import GroupRotation, describe_groups, out_of_rotation_progress, serving_progress
from .shutdown import LEAVE_INCOMPLETE_EXIT_CODE, install_shutdown_handlers, leave_exit_code

__version__ = "0.1.0"

__all__ = [
    "AddressDiscoveryAttempt",
    "AddressNotFoundError",
    "AddressPolicy",
    "AgentLbError",
    "AgentLease",
    "AsgiInFlightMiddleware",
    "AsyncAgentLease",
    "CAPABILITY_NAME",
    "ConfigError",
    "DEFAULT_ALLOWED_CIDRS",
    "DEFAULT_CLOCK_SKEW_TOLERANCE",
    "DEFAULT_LEAVE_DEADLINE",
    "DEFAULT_MAX_REQUEST_DURATION",
    "DEFAULT_PROPAGATION_MARGIN",
    "DEFAULT_ROTATION_POLL_INTERVAL",
    "DEFAULT_SERVING_TIMEOUT",
    "DEFAULT_TTL_SECONDS",
    "DEFAULT_UNCONFIRMED_ROTATION_WAIT",
    "DiscoveredAddress",
    "DiscoveredAgent",
    "GroupRotation",
    "HEALTH_FILTERS",
    "InFlightCounter",
    "InvalidLeaseError",
    "LEASE_ATTR",
    "LEAVE_INCOMPLETE_EXIT_CODE",
    "Lease",
    "LeaseHeldError",
    "LeaseLostError",
    "LeaseRejection",
    "LeaseState",
    "LeaseStoreError",
    "LeaveReport",
    "LeaveStep",
    "NotServingError",
    "OUT_OF_ROTATION_STATES",
    "REJECTION_REASONS",
    "ROTATION_STATES",
    "RegistryStateError",
    "Rejection",
    "RotationEntry",
    "WsgiInFlightMiddleware",
    "canonical_address",
    "decode_lease",
    "decode_rejection",
    "decode_rotation",
    "describe_groups",
    "discover_address",
    "discover_agents",
    "encode_lease",
    "format_target",
    "install_shutdown_handlers",
    "is_live",
    "leave_deadline_for",
    "leave_exit_code",
    "out_of_rotation_progress",
    "serving_progress",
]
