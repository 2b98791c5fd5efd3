"""Every error agent-lb raises on purpose, with the Node SDK's names and stable codes.

Each carries ``code`` (``INVALID_LEASE``, ``LEASE_HELD``, …: the same strings as the Node SDK's
``AgentLbError.code``) and ``context`` (what is needed to act on it). The cause, when there is
one, is chained (``raise … from cause``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

#: Stable reasons a lease item is refused (``LeaseRejectionReason`` in the Node core): the codes
#: of the ``validate`` test vectors.
LEASE_REJECTION_REASONS: Tuple[str, ...] = (
    "MISSING_ATTRIBUTE",
    "WRONG_TYPE",
    "TARGET_MISMATCH",
    "BAD_PORT",
    "BAD_ADDRESS",
    "ADDRESS_NOT_ALLOWED",
    "BAD_CAPABILITIES",
    "BAD_STATUS",
    "BAD_EXPIRY",
    "METADATA_TOO_LARGE",
    "UNKNOWN_CAPABILITY",
    "TARGET_TYPE_MISMATCH",
)


@dataclass(frozen=True)
class LeaseRejection:
    """One problem with a lease item: a reason code and a one-line message."""

    reason: str
    message: str
    #: The lease key when it could be read.
    target: Optional[str] = None
    #: Set when the problem concerns one capability only.
    capability: Optional[str] = None


class AgentLbError(Exception):
    """The base of agent-lb's errors: ``code`` is stable, ``context`` holds what to act on."""

    code: str = "AGENT_LB"

    def __init__(self, code: str, message: str, *, context: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.context: Dict[str, Any] = dict(context or {})


class InvalidLeaseError(AgentLbError):
    """The lease would be refused by the registry: nothing was written. ``rejections`` says why."""

    def __init__(self, rejections: Sequence[LeaseRejection], *, context: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(
            "INVALID_LEASE",
            "invalid lease: " + "; ".join(r.message for r in rejections),
            context={**(context or {}), "reasons": [r.reason for r in rejections]},
        )
        self.rejections: Tuple[LeaseRejection, ...] = tuple(rejections)


class ConfigError(AgentLbError):
    """A bad option: the message quotes the value and what is allowed."""

    def __init__(self, message: str, *, context: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__("INVALID_CONFIG", message, context=context)


class LeaseHeldError(AgentLbError):
    """Another live holder owns a lease on this address:port (``takeover=True`` replaces it)."""

    def __init__(self, target: str) -> None:
        super().__init__("LEASE_HELD", f"lease for {target} is held by another live holder (use takeover to replace it)", context={"target": target})
        self.target = target


class LeaseLostError(AgentLbError):
    """The lease was taken over, swept after expiry, or could not be renewed in time."""

    def __init__(self, target: str, why: str) -> None:
        super().__init__("LEASE_LOST", f"lease for {target} lost: {why}", context={"target": target})
        self.target = target


class LeaseStoreError(AgentLbError):
    """DynamoDB failed for a reason other than a condition (after botocore's retries)."""

    def __init__(self, message: str, *, context: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__("LEASE_STORE", message, context=context)


class RegistryStateError(AgentLbError):
    """DynamoDB failed reading the registry state table (trusted discovery), after botocore's retries."""

    def __init__(self, message: str, *, context: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__("REGISTRY_STATE", message, context=context)


class NotServingError(AgentLbError):
    """``wait_until_serving()`` gave up: ``reason`` is ``timeout``, ``lost``, ``released``,
    ``aborted`` or ``rejected`` (the registry refuses every capability; ``lease.rejection`` says
    why); ``groups`` lists each group that was not healthy with its last reported state."""

    def __init__(self, target: str, reason: str, why: str, groups: Sequence[Any] = ()) -> None:
        super().__init__("NOT_SERVING", f"{target} is not serving: {why}", context={"target": target, "reason": reason})
        self.target = target
        self.reason = reason
        self.groups = tuple(groups)


@dataclass(frozen=True)
class AddressDiscoveryAttempt:
    """One place an address was looked for (``ecs-task-metadata``, ``ec2-instance-metadata``) and why none came from it."""

    source: str
    reason: str


class AddressNotFoundError(AgentLbError):
    """No address was given and none could be found; ``attempts`` says where it was looked for."""

    def __init__(self, attempts: Sequence[AddressDiscoveryAttempt]) -> None:
        tried = "; ".join(f"{a.source}: {a.reason}" for a in attempts) or "nothing"
        super().__init__("ADDRESS_NOT_FOUND", f"no address to register: pass one explicitly (tried {tried})", context={"attempts": list(attempts)})
        self.attempts = tuple(attempts)
