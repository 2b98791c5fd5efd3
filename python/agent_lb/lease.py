"""``AgentLease``: one lease held by an agent, with the Node SDK's behaviour and Python names.

Acquire (a conditional PutItem), automatic renewal every ttl/3 with ±10 % jitter on a daemon
thread (each heartbeat's reply brings the registry's ``rotation`` and ``rejection`` at no read
cost), loss detection and automatic re-acquire, drain/activate, release, readiness
(``wait_until_serving``), and ``leave()``: drain → out of rotation everywhere → propagation
margin → in-flight requests done → release. Callbacks ``on_lost``, ``on_rotation`` and
``on_rejected`` run on the lease's thread; an exception in one is logged, never raised.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .codec import Rejection, RotationEntry, decode_rejection, decode_rotation
from .contract import LEASE_ATTR
from .errors import ConfigError, NotServingError
from .holder import DEFAULT_ROTATION_POLL_INTERVAL, Events, LeaseHolder, LeaseState  # noqa: F401  (re-exported)
from .in_flight import ASGIApp, AsgiInFlightMiddleware, WSGIApp, WsgiInFlightMiddleware
from .leave import (
    DEFAULT_CLOCK_SKEW_TOLERANCE,
    DEFAULT_MAX_REQUEST_DURATION,
    DEFAULT_PROPAGATION_MARGIN,
    DEFAULT_UNCONFIRMED_ROTATION_WAIT,
    InFlight,
    LeaveReport,
    LeaveStep,
    check_leave_options,
    leave_rotation,
)
from .progress import GroupRotation, describe_groups, serving_progress

__all__ = ["AgentLease", "LeaseState", "DEFAULT_ROTATION_POLL_INTERVAL", "DEFAULT_SERVING_TIMEOUT"]

DEFAULT_SERVING_TIMEOUT = 120.0


class AgentLease(LeaseHolder):
    """One lease held by an agent (see the module's docstring and docs/lease-contract.md).

    :param table_name: the lease table (the stack's ``LeaseTableName`` output; ``tableName`` of local mode's state file)
    :param port: the port the agent serves on, 1–65535
    :param capabilities: the capabilities served (non-empty; each ``^[a-z0-9][a-z0-9_-]{0,62}$``)
    :param address: the private address the load balancer sends to (IPv4, IPv6 — written in RFC 5952
        form — or an instance id); ``None`` finds it in ECS task metadata v4, then EC2 IMDSv2
    :param ttl: lease time-to-live in whole seconds, 3–3600; renewed every ttl/3
    :param metadata: small free-form information (≤ 2 KiB encoded), never used for routing
    :param takeover: acquire even when another live holder owns this address:port
    :param dynamodb: a boto3 DynamoDB client to use (not a resource: it converts items to Python values) (else one is made from ``region``/``endpoint_url``)
    :param region: AWS Region of the table (default: boto3's, ``AWS_REGION``)
    :param endpoint_url: DynamoDB endpoint (local mode's ``dynamodbEndpoint``); on a loopback
        endpoint without credentials, local ones are used (its emulator accepts any)
    :param allow_loopback: accept 127.0.0.1 / ::1 (local mode only; a deployment refuses them)
    """


    @property
    def rotation(self) -> Dict[str, RotationEntry]:
        """Per capability, the target's state in that capability's target group and since when
        (epoch ms), as the registry last wrote it. Empty after every (re-)acquire until it writes again."""
        return dict(self._rotation)

    @property
    def rejection(self) -> Optional[Rejection]:
        """Why the registry refuses the lease (``capabilities`` is ``None``) or some of its
        capabilities, as it last wrote it; ``None`` while it routes the lease as written."""
        return self._rejection

    @property
    def serving(self) -> bool:
        """Held, ``active``, and ``healthy`` in every group it is not refused for, as last seen (makes no read)."""
        with self._lock:
            return self._phase == "held" and self._status == "active" and serving_progress(self._rotation, self.capabilities, self._rejection).done

    def wait_until_serving(self, timeout: float = DEFAULT_SERVING_TIMEOUT) -> Tuple[GroupRotation, ...]:
        """Returns once the lease is held, ``active``, and ``healthy`` in the target group of every
        capability the registry does not refuse (polling the item every ``rotation_poll_interval``
        meanwhile); returns those groups.

        Raises ``NotServingError`` with ``reason`` ``timeout``, ``lost``, ``released``, or
        ``rejected`` (at once when the registry refuses every capability: ``rejection`` says why)."""
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout != timeout or timeout < 0:
            raise ConfigError(f"wait_until_serving: timeout must be a number of seconds ≥ 0, got {timeout!r}")
        started = time.monotonic()
        losses = self._losses
        next_poll = started + self.rotation_poll_interval
        while True:
            groups = self.serving_verdict(started, losses, timeout)
            if groups is not None:
                return groups
            now = time.monotonic()
            if now < next_poll:
                self.wait_for_change(min(next_poll, started + timeout) - now)
                continue
            self.poll_feedback()
            next_poll = time.monotonic() + self.rotation_poll_interval

    def serving_verdict(self, started: float, losses: int, timeout: float) -> Optional[Tuple[GroupRotation, ...]]:
        """One look of a serving wait that began at ``started`` (``time.monotonic()``) with
        ``losses`` losses: the groups once serving, ``None`` while still waiting; raises
        ``NotServingError`` when the wait is over. ``wait_until_serving`` is a loop of it."""
        with self._lock:
            progress = serving_progress(self._rotation, self.capabilities, self._rejection)
            if self._phase == "released":
                raise self._not_serving("released", started, progress.pending)
            if self._phase == "lost" or self._losses != losses:
                raise self._not_serving("lost", started, progress.pending)
            if progress.all_rejected:
                raise self._not_serving("rejected", started, progress.pending)
            if self._phase == "held" and self._status == "active" and progress.done:
                return progress.groups
            if time.monotonic() - started >= timeout:
                raise self._not_serving("timeout", started, progress.pending)
            return None

    def leave(
        self,
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
        """Leaves rotation without failing a request, then releases: drain → out of rotation in
        every group → ``propagation_margin`` seconds → requests in flight done (``lease.in_flight``,
        fed by ``track()`` and the middlewares, plus ``in_flight`` if given) → release, all within
        ``deadline`` seconds — by default ``leave_deadline_for`` the other options, enough for a
        request of ``max_request_duration`` seconds (the capability's ``maxRequestDuration``; 317 s
        with every default). Setting ``hurry`` skips the remaining waits. A second call waits for
        and returns the first call's report. Never raises for an AWS failure: read the report."""
        deadline = check_leave_options(deadline, propagation_margin, unconfirmed_rotation_wait, clock_skew_tolerance, max_request_duration)
        with self._lock:
            if self._leave_report is not None:
                return self._leave_report
            first = self._leaving is None
            if first:
                self._leaving = threading.Event()
            done = self._leaving
        if not first:
            done.wait()
            return self._leave_report  # type: ignore[return-value]
        try:
            report = leave_rotation(
                self,
                deadline=deadline,
                max_request_duration=max_request_duration,
                propagation_margin=propagation_margin,
                unconfirmed_rotation_wait=unconfirmed_rotation_wait,
                clock_skew_tolerance=clock_skew_tolerance,
                in_flight=in_flight,
                hurry=hurry,
                on_step=on_step,
            )
            with self._lock:
                self._leave_report = report
            return report
        finally:
            with self._lock:
                self._leaving = None
            done.set()

    def track(self) -> Any:
        """``with lease.track(): …`` counts a request (or any unit of work) until the block ends."""
        return self.in_flight.track()

    def wsgi_middleware(self, app: WSGIApp) -> WsgiInFlightMiddleware:
        """WSGI middleware counting requests for ``leave()``: ``flask_app.wsgi_app = lease.wsgi_middleware(flask_app.wsgi_app)``."""
        return WsgiInFlightMiddleware(app, self.in_flight)

    def asgi_middleware(self, app: ASGIApp) -> AsgiInFlightMiddleware:
        """ASGI middleware counting requests for ``leave()``: ``app = lease.asgi_middleware(app)``."""
        return AsgiInFlightMiddleware(app, self.in_flight)

    def install_shutdown_handlers(self, **options: Any) -> Callable[[], None]:
        """On SIGTERM/SIGINT, runs ``leave()`` and exits: 0 once released, 1 when not; see ``agent_lb.install_shutdown_handlers``."""
        from .shutdown import install_shutdown_handlers

        return install_shutdown_handlers(self, **options)

    def __enter__(self) -> "AgentLease":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.leave()

    def _observe(self, item: Mapping[str, Any]) -> List[Tuple[Callable[..., Any], Tuple[Any, ...]]]:
        """Under the lock: merges ``rotation`` (the newer ``since`` wins: replies may arrive out of
        order), takes ``rejection`` as it stands; returns the callbacks to run."""
        events: List[Tuple[Callable[..., Any], Tuple[Any, ...]]] = []
        merged = dict(self._rotation)
        for capability, entry in decode_rotation(item.get(LEASE_ATTR.rotation)).items():
            known = merged.get(capability)
            if known is None or entry.since >= known.since:
                merged[capability] = entry
        if merged != self._rotation:
            previous, self._rotation = self._rotation, merged
            events.append((lambda: self.on_rotation, (dict(merged), previous)))
        rejection = decode_rejection(item.get(LEASE_ATTR.rejection))
        self._rejection = rejection
        if rejection is not None and not rejection.same_verdict(self._reported_rejection):
            self._reported_rejection = rejection
            events.append((lambda: self.on_rejected, (rejection,)))
        self._changed.notify_all()
        return events

    def _not_serving(self, reason: str, started: float, pending: Sequence[GroupRotation]) -> NotServingError:
        waited = f"{time.monotonic() - started:.1f} s"
        rejection = self._rejection
        why = {
            "timeout": f"not healthy in every group after {waited}" + (" (the lease is draining)" if self._status == "draining" else ""),
            "lost": f"the lease was lost after {waited}",
            "released": "the lease was released",
            "rejected": f"the registry refuses {'the lease' if rejection is None or rejection.capabilities is None else 'every capability of the lease'}"
            + (f" ({rejection.reason}: {rejection.message})" if rejection else ""),
        }[reason]
        if pending and reason != "rejected":
            why += f"; not healthy: {describe_groups(pending, time.time() * 1000)}"
        return NotServingError(self.target, reason, why, pending)
