"""The two rules an agent reads the registry's feedback with (docs/lease-contract.md, "Reading
rotation"), mirroring ``lib/sdk/rotation-progress.ts``: serving (readiness) and out of rotation
(graceful exit). A capability the registry refuses (``rejection``) has no group: it neither holds
serving back nor is waited for when leaving."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple

from .codec import Rejection, RotationEntry
from .contract import OUT_OF_ROTATION_STATES


@dataclass(frozen=True)
class GroupRotation:
    """One capability's target group as ``rotation`` and ``rejection`` show it: ``state`` is a
    rotation state, ``unreported`` (no entry yet) or ``rejected`` (refused by the registry)."""

    capability: str
    state: str
    since: Optional[int] = None


@dataclass(frozen=True)
class RotationProgress:
    done: bool
    #: Every capability of the lease, in order.
    groups: Tuple[GroupRotation, ...]
    #: The groups not there yet.
    pending: Tuple[GroupRotation, ...]
    #: The registry refuses every capability: the lease can never serve as written.
    all_rejected: bool


def refused_capabilities(rejection: Optional[Rejection], capabilities: Sequence[str]) -> Tuple[str, ...]:
    """The capabilities a rejection refuses: all of them when the whole lease is refused."""
    if rejection is None:
        return ()
    if rejection.capabilities is None:
        return tuple(capabilities)
    return tuple(c for c in capabilities if c in rejection.capabilities)


def _groups(rotation: Mapping[str, RotationEntry], capabilities: Sequence[str], rejection: Optional[Rejection]) -> Tuple[GroupRotation, ...]:
    refused = refused_capabilities(rejection, capabilities)
    out = []
    for capability in capabilities:
        entry = rotation.get(capability)
        if capability in refused:
            out.append(GroupRotation(capability, "rejected"))
        elif entry is None:
            out.append(GroupRotation(capability, "unreported"))
        else:
            out.append(GroupRotation(capability, entry.state, entry.since))
    return tuple(out)


def _progress(groups: Tuple[GroupRotation, ...], there) -> RotationProgress:  # type: ignore[no-untyped-def]
    all_rejected = len(groups) > 0 and all(g.state == "rejected" for g in groups)
    pending = tuple(g for g in groups if g.state != "rejected" and not there(g))
    return RotationProgress(len(pending) == 0 and not all_rejected, groups, pending, all_rejected)


def serving_progress(rotation: Mapping[str, RotationEntry], capabilities: Sequence[str], rejection: Optional[Rejection] = None) -> RotationProgress:
    """Serving: ``healthy`` in the group of every listed capability the registry does not refuse, and at least one."""
    return _progress(_groups(rotation, capabilities, rejection), lambda g: g.state == "healthy")


def out_of_rotation_progress(
    rotation: Mapping[str, RotationEntry], capabilities: Sequence[str], not_before_ms: float, rejection: Optional[Rejection] = None
) -> RotationProgress:
    """Out of rotation: ``draining``, ``absent`` or ``unused`` in every group, in an entry with
    ``since`` ≥ ``not_before_ms`` (the drain, less a clock-skew allowance). A lease refused whole is in no group."""
    p = _progress(
        _groups(rotation, capabilities, rejection),
        lambda g: g.state in OUT_OF_ROTATION_STATES and g.since is not None and g.since >= not_before_ms,
    )
    return RotationProgress(True, p.groups, p.pending, True) if p.all_rejected else p


def describe_groups(groups: Sequence[GroupRotation], now_ms: float) -> str:
    """``vision healthy for 4.2 s, speech unreported, ocr rejected``: one line for errors and logs."""
    parts = []
    for g in groups:
        if g.since is None:
            parts.append(f"{g.capability} {g.state}")
        else:
            age = now_ms - g.since
            parts.append(f"{g.capability} {g.state} for {age / 1000:.1f} s" if age >= 0 else f"{g.capability} {g.state} since {g.since}")
    return ", ".join(parts)
