"""Leaving rotation without failing a request, as the Node SDK's ``leaveRotation`` does: drain →
out of rotation in every group (as the registry reports in ``rotation``) → a propagation margin
(load balancer nodes keep sending for a few seconds) → in-flight requests done → release, all
within a deadline that, by default, lets the longest request finish (the orchestrator's stop
timeout must allow it). Never raises for an AWS failure: each step reports how it ended."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, List, Mapping, Optional, Protocol, Sequence, Tuple, Union

from .codec import Rejection, RotationEntry
from .contract import OUT_OF_ROTATION_STATES
from .errors import ConfigError, LeaseLostError
from .in_flight import InFlightCounter
from .progress import describe_groups, out_of_rotation_progress

#: Seconds to keep serving once out of rotation everywhere: ALB nodes keep sending for a few seconds.
DEFAULT_PROPAGATION_MARGIN = 5.0
#: How long a group the registry reports nothing fresh about is waited for (an older registry).
DEFAULT_UNCONFIRMED_ROTATION_WAIT = 10.0
#: How far the registry's clock (``since``) may run behind ours.
DEFAULT_CLOCK_SKEW_TOLERANCE = 2.0
#: The longest request an agent serves unless told otherwise, in seconds: the capabilities' default ``maxRequestDuration``.
DEFAULT_MAX_REQUEST_DURATION = 300.0
_RELEASE_RESERVE = 2.0


def leave_deadline_for(
    max_request_duration: float = DEFAULT_MAX_REQUEST_DURATION,
    propagation_margin: float = DEFAULT_PROPAGATION_MARGIN,
    unconfirmed_rotation_wait: float = DEFAULT_UNCONFIRMED_ROTATION_WAIT,
) -> float:
    """The leave deadline that lets a request of ``max_request_duration`` seconds finish, as the
    Node SDK's ``leaveDeadlineFor``: the rotation wait (at most ``unconfirmed_rotation_wait``), the
    propagation margin (a request may still arrive until its end), the longest request, and 2 s for
    the release. The platform must allow that long between SIGTERM and SIGKILL (ECS
    ``stopTimeout``, at most 120 s on Fargate; Kubernetes ``terminationGracePeriodSeconds``)."""
    return unconfirmed_rotation_wait + propagation_margin + max_request_duration + _RELEASE_RESERVE


#: The whole leave, release included, with every default: 317 s, so a 5-minute request in flight at SIGTERM finishes.
DEFAULT_LEAVE_DEADLINE = leave_deadline_for()
_IN_FLIGHT_POLL = 0.1
_LOST_BEFORE_DRAIN = "no longer held when its drain could be written (not renewed before it expired, or taken over)"

InFlight = Union[InFlightCounter, Callable[[], int]]


class LeavingLease(Protocol):
    """What the leave reads of a lease and does with it (``AgentLease`` is one)."""

    target: str
    capabilities: Tuple[str, ...]
    in_flight: InFlightCounter

    @property
    def held(self) -> bool: ...
    @property
    def status(self) -> str: ...
    @property
    def rotation(self) -> Mapping[str, RotationEntry]: ...
    @property
    def rejection(self) -> Optional[Rejection]: ...
    @property
    def drained_at(self) -> Optional[float]: ...
    @property
    def losses(self) -> int: ...
    def drain(self) -> Any: ...
    def release(self) -> bool: ...
    def poll_feedback(self) -> None: ...
    def wait_for_change(self, timeout: float) -> None: ...
    @property
    def rotation_poll_interval(self) -> float: ...


@dataclass(frozen=True)
class LeaveStep:
    """One step of a leave: ``step`` (drain, rotation, propagation, in_flight, release) and how it
    ended: ``done``, ``confirmed`` (the registry reported every group out), ``fallback`` (some group
    never was: the conservative wait was used), ``deadline``, ``hurried`` (a second signal),
    ``lost``, ``skipped`` or ``failed``."""

    step: str
    outcome: str
    #: Epoch seconds.
    started_at: float
    #: Seconds.
    duration: float
    detail: str
    target: str

    def __str__(self) -> str:
        return f"agent-lb leave {self.target}: {self.step} {self.outcome} in {self.duration:.1f} s" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class LeaveReport:
    target: str
    steps: Tuple[LeaveStep, ...]
    #: Seconds.
    duration: float
    #: True when the lease held at the start was deleted by us.
    released: bool
    errors: Tuple[BaseException, ...] = field(default_factory=tuple)


def check_leave_options(
    deadline: Optional[float],
    propagation_margin: float,
    unconfirmed_rotation_wait: float,
    clock_skew_tolerance: float,
    max_request_duration: float = DEFAULT_MAX_REQUEST_DURATION,
) -> float:
    """Raises ``ConfigError`` quoting a bad value (before anything is written); returns the
    deadline: ``leave_deadline_for`` the other options when ``deadline`` is ``None``."""
    checks = [
        ("max_request_duration", max_request_duration, False),
        ("propagation_margin", propagation_margin, False),
        ("unconfirmed_rotation_wait", unconfirmed_rotation_wait, False),
        ("clock_skew_tolerance", clock_skew_tolerance, False),
    ]
    if deadline is not None:
        checks.insert(0, ("deadline", deadline, True))
    for name, value, positive in checks:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0 or (positive and value == 0):
            raise ConfigError(f"leave: {name} must be a number of seconds {'> 0' if positive else '≥ 0'}, got {value!r}")
    return leave_deadline_for(max_request_duration, propagation_margin, unconfirmed_rotation_wait) if deadline is None else float(deadline)


def leave_rotation(
    lease: LeavingLease,
    *,
    deadline: Optional[float] = None,
    max_request_duration: float = DEFAULT_MAX_REQUEST_DURATION,
    propagation_margin: float = DEFAULT_PROPAGATION_MARGIN,
    unconfirmed_rotation_wait: float = DEFAULT_UNCONFIRMED_ROTATION_WAIT,
    clock_skew_tolerance: float = DEFAULT_CLOCK_SKEW_TOLERANCE,
    in_flight: Optional[InFlight] = None,
    hurry: Optional[threading.Event] = None,
    on_step: Optional[Callable[[LeaveStep], None]] = None,
) -> LeaveReport:
    deadline = check_leave_options(deadline, propagation_margin, unconfirmed_rotation_wait, clock_skew_tolerance, max_request_duration)
    hurry = hurry or threading.Event()
    started = time.monotonic()
    final_end = started + deadline
    waits_end = final_end - min(_RELEASE_RESERVE, deadline / 4)
    steps: List[LeaveStep] = []
    errors: List[BaseException] = []

    def report(step: str, began: float, outcome: str, detail: str) -> None:
        s = LeaveStep(step, outcome, time.time() - (time.monotonic() - began), time.monotonic() - began, detail, lease.target)
        steps.append(s)
        if on_step is not None:
            try:
                on_step(s)
            except Exception:  # a logging hook must not stop the leave
                pass

    def sleep_until(end: float) -> bool:
        """False when hurried."""
        return not hurry.wait(max(0.0, end - time.monotonic()))

    # 1. drain: out of rotation while keeping the lease (and its feedback).
    was_held = lease.held
    t = time.monotonic()
    if not was_held:
        report("drain", t, "skipped", "no lease held")
    else:
        problem = _drain_until(lease, waits_end, hurry)
        if isinstance(problem, LeaseLostError):
            report("drain", t, "lost", f"0 of 1 drained; {problem}")
        elif problem is not None:
            errors.append(problem)
            report("drain", t, "failed", f"0 of 1 drained; {problem}")
        else:
            report("drain", t, "done", "1 of 1 drained")

    # 2. wait until the registry reports the target out of rotation in every group.
    t = time.monotonic()
    if not was_held:
        report("rotation", t, "skipped", "no lease held")
    elif not (lease.held and lease.status == "draining"):
        report("rotation", t, "lost" if not lease.held else "skipped", "the lease was lost" if not lease.held else "not drained (see the drain step)")
    else:
        outcome, detail = _wait_out_of_rotation(lease, unconfirmed_rotation_wait, clock_skew_tolerance, waits_end, hurry)
        report("rotation", t, outcome, detail)

    # 3. propagation margin: only for a drain that was written, of a lease still held (otherwise
    #    it would be waited for nothing: no drain of ours is propagating).
    t = time.monotonic()
    if not was_held:
        report("propagation", t, "skipped", "no lease held")
    elif not lease.held:
        report("propagation", t, "skipped", "the lease was lost")
    elif lease.drained_at is None:
        report("propagation", t, "skipped", "not drained (see the drain step)")
    else:
        wait = min(propagation_margin, waits_end - t)
        calm = sleep_until(t + wait) if wait > 0 else not hurry.is_set()
        outcome = "hurried" if not calm else ("deadline" if wait < propagation_margin else "done")
        report("propagation", t, outcome, f"margin {propagation_margin:.1f} s" + ("" if outcome == "done" else f", waited {time.monotonic() - t:.1f} s"))

    # 4. in-flight requests: no new one comes now; let the rest finish.
    t = time.monotonic()
    outcome, detail = _wait_in_flight(lease.in_flight, in_flight, waits_end, hurry)
    report("in_flight", t, outcome, detail)

    # 5. release, bounded by the deadline (an unfinished release leaves the lease to expire, draining).
    t = time.monotonic()
    result: List[Any] = []
    releaser = threading.Thread(target=lambda: result.append(_call(lease.release)), name="agent-lb-release", daemon=True)
    releaser.start()
    releaser.join(max(0.0, final_end - time.monotonic()))
    released = False
    if not result:
        report("release", t, "deadline", "not done by the deadline; the lease expires within its ttl")
    elif isinstance(result[0], BaseException):
        errors.append(result[0])
        report("release", t, "failed", str(result[0]))
    else:
        released = bool(result[0]) and was_held
        report("release", t, "done" if result[0] else ("skipped" if not was_held else "lost"), "1 deleted" if result[0] else ("no lease held" if not was_held else f"{lease.target} was no longer ours"))
    return LeaveReport(lease.target, tuple(steps), time.monotonic() - started, released, tuple(errors))


def _call(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except BaseException as error:  # reported, never raised from a leave
        return error


def _drain_until(lease: LeavingLease, until: float, hurry: threading.Event) -> Optional[BaseException]:
    """Drains, retrying transient failures until ``until``: None, or the last error. A
    ``LeaseLostError`` as soon as the lease is no longer held (renewals failed until its expiry
    while DynamoDB was away, or it was taken over): a drain then only records the wish for a
    re-acquire, nothing reaches the registry, so there is nothing to retry or to report drained."""
    attempt = 0
    while True:
        if not lease.held:
            return LeaseLostError(lease.target, _LOST_BEFORE_DRAIN)
        try:
            lease.drain()
        except LeaseLostError as error:
            return error
        except Exception as error:  # transient: DynamoDB throttled or unreachable
            retry = min(0.25 * 2**attempt, 2.0)
            attempt += 1
            if time.monotonic() + retry >= until or not _wait_while_held(lease, time.monotonic() + retry, hurry):
                return error
            continue
        if not lease.held:
            return LeaseLostError(lease.target, _LOST_BEFORE_DRAIN)
        return None


def _wait_while_held(lease: LeavingLease, end: float, hurry: threading.Event) -> bool:
    """Waits until ``end``, woken at once by a loss (the lease's condition); False when hurried."""
    while lease.held and not hurry.is_set():
        left = end - time.monotonic()
        if left <= 0:
            break
        lease.wait_for_change(min(left, 0.25))  # a quarter second at most, to notice a second signal
    return not hurry.is_set()


def _wait_out_of_rotation(lease: LeavingLease, unconfirmed_wait: float, skew: float, until: float, hurry: threading.Event) -> Tuple[str, str]:
    start = time.monotonic()
    start_ms = time.time() * 1000
    losses = lease.losses
    next_poll = start + lease.rotation_poll_interval
    while True:
        drained_ms = lease.drained_at * 1000 if lease.drained_at is not None else start_ms
        progress = out_of_rotation_progress(lease.rotation, lease.capabilities, drained_ms - skew * 1000, lease.rejection)
        # Unconfirmed: no entry yet, or an out-of-rotation one from before the drain; the rest is still in rotation.
        in_rotation = [g for g in progress.pending if g.state != "unreported" and g.state not in OUT_OF_ROTATION_STATES]
        unconfirmed = [g for g in progress.pending if g not in in_rotation]
        now = time.monotonic()
        detail = describe_groups(progress.groups, time.time() * 1000)
        if lease.losses != losses or not lease.held:
            return "lost", f"{lease.target} lost"
        if not in_rotation and (not unconfirmed or now - start >= unconfirmed_wait):
            if unconfirmed:
                names = ", ".join(g.capability for g in unconfirmed)
                return "fallback", (
                    f"no fresh rotation from the registry for {names} after {now - start:.1f} s (an older registry, or a capability this deployment "
                    f"does not route): waited the conservative {unconfirmed_wait:.1f} s instead; {detail}"
                )
            return "confirmed", detail
        if hurry.is_set():
            return "hurried", detail
        if now >= until:
            return "deadline", f"still in rotation at the deadline: {detail}"
        if now >= next_poll:
            lease.poll_feedback()
            next_poll = time.monotonic() + lease.rotation_poll_interval
            continue
        wake = min(next_poll, until, start + unconfirmed_wait if unconfirmed else until)
        # Woken by every heartbeat and poll; a quarter second at most, to notice a second signal.
        lease.wait_for_change(max(0.0, min(wake - now, 0.25)))


def _count(source: Optional[InFlight]) -> int:
    if source is None:
        return 0
    return source.in_flight if isinstance(source, InFlightCounter) else int(source())


def _wait_in_flight(own: InFlightCounter, extra: Optional[InFlight], until: float, hurry: threading.Event) -> Tuple[str, str]:
    try:
        before = own.in_flight + _count(extra)
        while True:
            now_count = own.in_flight + _count(extra)
            if now_count <= 0:
                return "done", "nothing in flight" if before == 0 else f"{before} in flight at the start, none now"
            if hurry.is_set():
                return "hurried", f"{now_count} still in flight"
            if time.monotonic() >= until:
                return "deadline", f"{now_count} still in flight"
            own.wait_idle(min(_IN_FLIGHT_POLL, max(0.0, until - time.monotonic())))
    except Exception as error:
        return "failed", f"in-flight source failed: {error}"


__all__: Sequence[str] = ("LeaveReport", "LeaveStep", "leave_deadline_for", "leave_rotation")
