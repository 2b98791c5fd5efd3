"""``AgentLease``: one lease held by an agent, with the Node SDK's behaviour and Python names.

Acquire (a conditional PutItem), automatic renewal every ttl/3 with ±10 % jitter on a daemon
thread (each heartbeat's reply brings the registry's ``rotation`` and ``rejection`` at no read
cost), loss detection and automatic re-acquire, drain/activate, release, readiness
(``wait_until_serving``), and ``leave()``: drain → out of rotation everywhere → propagation
margin → in-flight requests done → release. Callbacks ``on_lost``, ``on_rotation`` and
``on_rejected`` run on the lease's thread; an exception in one is logged, never raised.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import socket
import threading
import time
import uuid
from decimal import Decimal
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlparse

from .address import AddressPolicy, canonical_address, format_target
from .codec import Lease, Rejection, RotationEntry, decode_rejection, decode_rotation, encode_valid_lease
from .contract import DEFAULT_ALLOWED_CIDRS, DEFAULT_TTL_SECONDS, LEASE_ATTR, LOCAL_CREDENTIALS, MAX_TTL_SECONDS, MIN_TTL_SECONDS
from .discovery import DEFAULT_DISCOVERY_TIMEOUT, DiscoveredAddress, discover_address
from .errors import ConfigError, LeaseLostError, LeaseStoreError, NotServingError
from .in_flight import ASGIApp, AsgiInFlightMiddleware, InFlightCounter, WSGIApp, WsgiInFlightMiddleware
from .leave import (
    DEFAULT_CLOCK_SKEW_TOLERANCE,
    DEFAULT_LEAVE_DEADLINE,
    DEFAULT_PROPAGATION_MARGIN,
    DEFAULT_UNCONFIRMED_ROTATION_WAIT,
    InFlight,
    LeaveReport,
    LeaveStep,
    check_leave_options,
    leave_rotation,
)
from .progress import GroupRotation, describe_groups, serving_progress
from .store import LeaseStore

logger = logging.getLogger("agent_lb")

#: ±10 % on every delay, so a fleet started together does not renew in lockstep.
_JITTER = 0.1
_BASE_RETRY = 1.0
DEFAULT_ROTATION_POLL_INTERVAL = 1.0
DEFAULT_SERVING_TIMEOUT = 120.0


@dataclasses.dataclass(frozen=True)
class LeaseState:
    """A snapshot of an ``AgentLease``. ``phase``: ``idle`` (never acquired), ``held`` (acquired
    and renewed), ``reacquiring`` (lost, trying again), ``lost``, ``released``."""

    phase: str
    target: str
    agent_id: str
    held: bool
    #: ``active`` or ``draining``: as written, or to be written at the next (re-)acquire.
    status: str
    lease_token: Optional[str] = None
    #: Epoch seconds of the lease's expiry as last written.
    expires_at: Optional[int] = None
    #: Epoch ms of the last acquire or renewal.
    renewed_at: Optional[int] = None


def _is_local(endpoint_url: Optional[str]) -> bool:
    host = urlparse(endpoint_url).hostname if endpoint_url else None
    return host in ("127.0.0.1", "localhost", "::1")


def _plain(value: Any) -> Any:
    """Floats as Decimal (what boto3's serializer takes), recursively."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _encode_metadata(metadata: Any) -> Optional[Dict[str, Any]]:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise ConfigError(f"AgentLease: metadata must be a dict, got {type(metadata).__name__}")
    from boto3.dynamodb.types import TypeSerializer

    try:
        serializer = TypeSerializer()
        return {str(k): serializer.serialize(_plain(v)) for k, v in metadata.items()}
    except (TypeError, ValueError) as error:
        raise ConfigError(f"AgentLease: metadata cannot be stored in DynamoDB: {error}") from error


def _make_client(region: Optional[str], endpoint_url: Optional[str], ttl: int) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    local = _is_local(endpoint_url)
    region_name = region or session.region_name or ("us-east-1" if local else None)
    if region_name is None:
        raise ConfigError("AgentLease: no region: pass region=… or set AWS_REGION (or give a boto3 client as dynamodb=…)")
    # A heartbeat must fail fast enough to be retried before the lease expires.
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=min(5, ttl / 3), read_timeout=min(10, ttl / 3))
    credentials: Dict[str, str] = dict(LOCAL_CREDENTIALS) if local and session.get_credentials() is None else {}
    return session.client("dynamodb", region_name=region_name, endpoint_url=endpoint_url, config=config, **credentials)


class AgentLease:
    """One lease held by an agent (see the module's docstring and docs/lease-contract.md).

    :param table_name: the lease table (the stack's ``LeaseTableName`` output; ``tableName`` of local mode's state file)
    :param port: the port the agent serves on, 1–65535
    :param capabilities: the capabilities served (non-empty; each ``^[a-z0-9][a-z0-9_-]{0,62}$``)
    :param address: the private address the load balancer sends to (IPv4, IPv6 — written in RFC 5952
        form — or an instance id); ``None`` finds it in ECS task metadata v4, then EC2 IMDSv2
    :param ttl: lease time-to-live in whole seconds, 3–3600; renewed every ttl/3
    :param metadata: small free-form information (≤ 2 KiB encoded), never used for routing
    :param takeover: acquire even when another live holder owns this address:port
    :param dynamodb: a boto3 DynamoDB *client* to use (else one is made from ``region``/``endpoint_url``)
    :param region: AWS Region of the table (default: boto3's, ``AWS_REGION``)
    :param endpoint_url: DynamoDB endpoint (local mode's ``dynamodbEndpoint``); on a loopback
        endpoint without credentials, local ones are used (its emulator accepts any)
    :param allow_loopback: accept 127.0.0.1 / ::1 (local mode only; a deployment refuses them)
    """

    def __init__(
        self,
        table_name: str,
        port: int,
        capabilities: Sequence[str],
        *,
        address: Optional[str] = None,
        ttl: int = DEFAULT_TTL_SECONDS,
        metadata: Optional[Mapping[str, Any]] = None,
        takeover: bool = False,
        dynamodb: Any = None,
        region: Optional[str] = None,
        endpoint_url: Optional[str] = None,
        allow_loopback: bool = False,
        agent_id: Optional[str] = None,
        allowed_cidrs: Sequence[str] = DEFAULT_ALLOWED_CIDRS,
        availability_zone: Optional[str] = None,
        reacquire: bool = True,
        rotation_poll_interval: float = DEFAULT_ROTATION_POLL_INTERVAL,
        discovery_timeout: float = DEFAULT_DISCOVERY_TIMEOUT,
        on_lost: Optional[Callable[[LeaseLostError], Any]] = None,
        on_rotation: Optional[Callable[[Dict[str, RotationEntry], Dict[str, RotationEntry]], Any]] = None,
        on_rejected: Optional[Callable[[Rejection], Any]] = None,
    ) -> None:
        def fail(message: str) -> ConfigError:
            return ConfigError(f"AgentLease: {message}")

        if not isinstance(table_name, str) or not table_name.strip():
            raise fail(f"table_name must be a non-empty string, got {table_name!r}")
        if isinstance(port, bool) or not isinstance(port, int):
            raise fail(f"port must be an int, got {port!r}")
        if isinstance(capabilities, str) or not isinstance(capabilities, (list, tuple, set, frozenset)) or not capabilities:
            raise fail(f"capabilities must be a non-empty list of capability names, got {capabilities!r}")
        if not all(isinstance(c, str) for c in capabilities):
            raise fail(f"capabilities must hold only strings, got {list(capabilities)!r}")
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not MIN_TTL_SECONDS <= ttl <= MAX_TTL_SECONDS:
            raise fail(f"ttl must be a whole number of seconds in {MIN_TTL_SECONDS}–{MAX_TTL_SECONDS}, got {ttl!r}")
        if isinstance(rotation_poll_interval, bool) or not isinstance(rotation_poll_interval, (int, float)) or not 0.05 <= rotation_poll_interval <= 60:
            raise fail(f"rotation_poll_interval must be 0.05–60 seconds, got {rotation_poll_interval!r}")
        if dynamodb is not None and (region is not None or endpoint_url is not None):
            raise fail("give either dynamodb (a client) or region/endpoint_url, not both")
        if agent_id is not None and (not isinstance(agent_id, str) or not agent_id.strip()):
            raise fail(f"agent_id must be a non-empty string, got {agent_id!r}")

        self.discovered_address: Optional[DiscoveredAddress] = None
        meta = dict(metadata) if metadata is not None else None
        if address is None:
            found = discover_address(timeout=discovery_timeout)
            self.discovered_address = found
            address = found.address
            if found.availability_zone and (meta is None or "zone" not in meta):
                meta = {**(meta or {}), "zone": found.availability_zone}
        if not isinstance(address, str) or not address.strip():
            raise fail(f"address must be a non-empty string, got {address!r}")
        # One endpoint, one key: "FD00:0::5" is written as "fd00::5"; what is no address is left for validation to name.
        self.address: str = canonical_address(address) or address
        self.port = port
        self.target: str = format_target(self.address, port)
        self.capabilities: Tuple[str, ...] = tuple(sorted(set(capabilities)))
        self.ttl = ttl
        self.table_name = table_name
        self.agent_id: str = agent_id or f"{socket.gethostname()}:{os.getpid()}"
        self.takeover = takeover
        self.reacquire = reacquire
        self.rotation_poll_interval = float(rotation_poll_interval)
        self.availability_zone = availability_zone
        self._policy = AddressPolicy(allowed_cidrs, allow_loopback=allow_loopback)
        self._metadata = _encode_metadata(meta)
        # The same validation the registry applies, before anything is written (InvalidLeaseError).
        encode_valid_lease(self._build("probe-token", "active", 1_700_000_000_000), self._policy)

        self._client = dynamodb if dynamodb is not None else _make_client(region, endpoint_url, ttl)
        self._store = LeaseStore(self._client, table_name)
        #: Requests in progress: ``track()``, ``wsgi_middleware()``, ``asgi_middleware()`` feed it; ``leave()`` waits for it.
        self.in_flight = InFlightCounter()
        self.on_lost = on_lost
        self.on_rotation = on_rotation
        self.on_rejected = on_rejected

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._ops = threading.Lock()  # explicit operations and re-acquire attempts, one at a time
        self._phase = "idle"
        self._status = "active"
        self._token: Optional[str] = None
        self._lease: Optional[Lease] = None
        self._generation = 0
        self._losses = 0
        self._renew_failures = 0
        self._next_renew: Optional[float] = None
        self._next_reacquire: Optional[float] = None
        self._reacquire_attempt = 0
        self._closing = False
        self._release_result: Optional[bool] = None
        self._drained_at: Optional[float] = None
        self._rotation: Dict[str, RotationEntry] = {}
        self._rejection: Optional[Rejection] = None
        self._reported_rejection: Optional[Rejection] = None
        self._worker: Optional[threading.Thread] = None
        self._leaving: Optional[threading.Event] = None
        self._leave_report: Optional[LeaveReport] = None
        self._random = random.Random()

    # --- what an agent reads ---------------------------------------------------------------

    @property
    def phase(self) -> str:
        return self._phase

    @property
    def held(self) -> bool:
        return self._phase == "held"

    @property
    def status(self) -> str:
        """``active`` or ``draining``: as written, or to be written at the next (re-)acquire."""
        return self._status

    @property
    def lease_token(self) -> Optional[str]:
        return self._token

    @property
    def state(self) -> LeaseState:
        with self._lock:
            lease = self._lease
            return LeaseState(
                self._phase,
                self.target,
                self.agent_id,
                self._phase == "held",
                self._status,
                self._token,
                lease.expires_at if lease else None,
                lease.renewed_at if lease else None,
            )

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

    @property
    def drained_at(self) -> Optional[float]:
        """Epoch seconds at which ``draining`` was last written; ``None`` while active."""
        return self._drained_at

    @property
    def losses(self) -> int:
        """How often the lease was lost so far."""
        return self._losses

    # --- operations --------------------------------------------------------------------------

    def acquire(self) -> LeaseState:
        """Writes the lease (conditional PutItem; unconditional with ``takeover``) after validating
        it, then renews it automatically. Returns at once when already held.

        Raises ``LeaseHeldError`` (another live holder), ``InvalidLeaseError`` (nothing sent),
        ``LeaseStoreError`` (DynamoDB failed otherwise)."""
        with self._lock:
            self._release_result = None
            self._leave_report = None
        with self._ops:
            with self._lock:
                if self._phase == "held":
                    return self.state
                was_reacquiring = self._phase == "reacquiring"
                self._next_reacquire = None
                # One token from the first attempt until release: a PutItem whose reply was lost is recognised as ours.
                if self._token is None:
                    self._token = str(uuid.uuid4())
            try:
                lease = self._put(self.takeover)
            except Exception:
                with self._lock:
                    if was_reacquiring and not self._closing:
                        self._schedule_reacquire(self._backoff(1))
                raise
            self._start_holding(lease)
            return self.state

    def drain(self) -> LeaseState:
        """Takes the target out of rotation while keeping the lease (``status = draining``).
        Raises ``LeaseLostError`` when the lease turns out to be lost."""
        return self._change_status("draining")

    def activate(self) -> LeaseState:
        """Puts a drained lease back into rotation (``status = active``)."""
        return self._change_status("active")

    def release(self) -> bool:
        """Stops renewing and deletes the lease if it is still ours (conditional DeleteItem).
        Idempotent: later calls return the first call's result. True when our lease was deleted."""
        with self._lock:
            if self._release_result is not None:
                return self._release_result
            self._closing = True
            self._stop_holding()
        with self._ops:
            with self._lock:
                if self._release_result is not None:
                    return self._release_result
                self._stop_holding()
                self._phase = "released"
                self._closing = False
                token = self._token
                self._changed.notify_all()
            deleted = self._store.release(self.target, token) if token is not None else False
            with self._lock:
                self._token = None
                self._release_result = deleted
                self._changed.notify_all()
            return deleted

    def abandon(self) -> None:
        """Stops renewing without releasing, as a crashed process would: the lease lapses at its expiry."""
        with self._lock:
            self._stop_holding()
            self._phase = "lost"
            self._changed.notify_all()

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
        deadline: float = DEFAULT_LEAVE_DEADLINE,
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
        ``deadline`` seconds. Setting ``hurry`` skips the remaining waits. A second call waits for
        and returns the first call's report. Never raises for an AWS failure: read the report."""
        check_leave_options(deadline, propagation_margin, unconfirmed_rotation_wait, clock_skew_tolerance)
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
        """On SIGTERM/SIGINT, runs ``leave()`` and exits 0; see ``agent_lb.install_shutdown_handlers``."""
        from .shutdown import install_shutdown_handlers

        return install_shutdown_handlers(self, **options)

    def __enter__(self) -> "AgentLease":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.leave()

    # --- feedback -----------------------------------------------------------------------------

    def poll_feedback(self) -> None:
        """One consistent GetItem (1 read request unit) of the lease: its ``rotation`` and
        ``rejection`` taken in. An item that is gone or holds another token means the lease is lost:
        a renewal now confirms it. Never raises (a failed read is retried by the next poll)."""
        with self._lock:
            lease, generation = self._lease, self._generation
            if self._phase != "held" or lease is None:
                return
        try:
            item = self._store.get(self.target)
        except LeaseStoreError:
            return
        events: List[Tuple[Callable[..., Any], Tuple[Any, ...]]] = []
        with self._lock:
            if generation != self._generation:
                return
            token = item.get(LEASE_ATTR.lease_token, {}).get("S") if item else None
            if token == lease.lease_token:
                events = self._observe(item)  # type: ignore[arg-type]
            else:
                self._next_renew = time.monotonic()
                self._changed.notify_all()
        self._emit(events)

    def wait_for_change(self, timeout: float) -> None:
        """Blocks until the lease's state or feedback changes, or ``timeout`` seconds pass."""
        with self._lock:
            self._changed.wait(timeout)

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

    def _emit(self, events: Sequence[Tuple[Callable[..., Any], Tuple[Any, ...]]]) -> None:
        for get_callback, args in events:
            callback = get_callback()
            if callback is None:
                continue
            try:
                callback(*args)
            except Exception:
                logger.exception("agent-lb %s: a callback raised", self.target)

    # --- holding -----------------------------------------------------------------------------

    def _build(self, token: str, status: str, now_ms: int) -> Lease:
        return Lease(
            target=self.target,
            address=self.address,
            port=self.port,
            capabilities=self.capabilities,
            expires_at=now_ms // 1000 + self.ttl,
            lease_token=token,
            agent_id=self.agent_id,
            status=status,
            renewed_at=now_ms,
            registered_at=now_ms,
            availability_zone=self.availability_zone,
            metadata=self._metadata,
        )

    def _put(self, takeover: bool) -> Lease:
        now_ms = int(time.time() * 1000)
        lease = self._build(self._token or "", self._status, now_ms)
        self._store.acquire(encode_valid_lease(lease, self._policy), lease.lease_token, now_ms // 1000, takeover)
        return lease

    def _start_holding(self, lease: Lease) -> None:
        with self._lock:
            self._generation += 1
            self._lease = lease
            self._drained_at = lease.renewed_at / 1000 if lease.status == "draining" else None
            # The PutItem replaced the item: the registry's feedback went with the old one.
            self._rotation = {}
            self._rejection = None
            self._phase = "held"
            self._renew_failures = 0
            self._reacquire_attempt = 0
            self._next_reacquire = None
            self._next_renew = time.monotonic() + self._renewal_interval()
            self._ensure_worker()
            self._changed.notify_all()

    def _stop_holding(self) -> None:
        self._generation += 1
        self._next_renew = None
        self._next_reacquire = None
        self._changed.notify_all()

    def _change_status(self, status: str) -> LeaseState:
        with self._ops:
            with self._lock:
                lease = self._lease
                if self._phase != "held" or lease is None or lease.status == status:
                    self._status = status
                    return self.state
                generation = self._generation
            sent_at = time.time()
            try:
                item = self._store.set_status(self.target, lease.lease_token, status)
            except LeaseLostError as error:
                with self._lock:
                    self._status = status
                    lost = generation == self._generation and self._lost()
                if lost:
                    self._emit([(lambda: self.on_lost, (error,))])
                raise
            events: List[Tuple[Callable[..., Any], Tuple[Any, ...]]] = []
            with self._lock:
                self._status = status
                self._drained_at = sent_at if status == "draining" else None
                if generation == self._generation and self._lease is not None:
                    self._lease = dataclasses.replace(self._lease, status=status)
                    if item is not None:
                        events = self._observe(item)
                self._changed.notify_all()
            self._emit(events)
            return self.state

    def _lost(self) -> bool:
        """Under the lock: stops holding; re-acquire starts when enabled. True when the lease was held."""
        if self._phase != "held":
            return False
        self._stop_holding()
        self._losses += 1
        if self.reacquire and not self._closing:
            self._phase = "reacquiring"
            self._reacquire_attempt = 1
            self._schedule_reacquire(0.0)  # at once: after a sweep the key is free
        else:
            self._phase = "lost"
        self._changed.notify_all()
        return True

    def _renewal_interval(self) -> float:
        return self._jitter(self.ttl / 3)

    def _backoff(self, attempt: int, cap: Optional[float] = None) -> float:
        return self._jitter(min(_BASE_RETRY * 2 ** min(attempt - 1, 20), cap if cap is not None else self.ttl))

    def _jitter(self, seconds: float) -> float:
        return seconds * (1 + _JITTER * (2 * self._random.random() - 1))

    def _schedule_reacquire(self, delay: float) -> None:
        self._next_reacquire = time.monotonic() + delay
        self._ensure_worker()
        self._changed.notify_all()

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            # A daemon thread: a process with nothing else to do serves nobody, and its lease should lapse.
            self._worker = threading.Thread(target=self._work, name=f"agent-lb {self.target}", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        """The lease's thread: heartbeats, the expiry watch and re-acquire attempts, when due."""
        while True:
            with self._lock:
                if self._phase in ("released", "lost", "idle") and self._next_reacquire is None:
                    return
                now = time.monotonic()
                expiry = None
                if self._phase == "held" and self._lease is not None:
                    expiry = now + (self._lease.expires_at - time.time())
                due = [t for t in (self._next_renew, self._next_reacquire, expiry) if t is not None]
                if not due:
                    self._changed.wait(1.0)
                    continue
                first = min(due)
                if first > now:
                    self._changed.wait(min(first - now, 1.0))
                    continue
                generation = self._generation
                if expiry is not None and expiry <= now:
                    lost = self._lost()
                    error = LeaseLostError(self.target, f"not renewed before it expired at {self._lease.expires_at if self._lease else '?'}")
                    action = "expired" if lost else None
                elif self._next_renew is not None and self._next_renew <= now:
                    self._next_renew = None
                    action = "renew"
                elif self._next_reacquire is not None and self._next_reacquire <= now:
                    self._next_reacquire = None
                    action = "reacquire"
                else:
                    action = None
            if action == "expired":
                self._emit([(lambda: self.on_lost, (error,))])
            elif action == "renew":
                self._renew(generation)
            elif action == "reacquire":
                self._reacquire_once()

    def _renew(self, generation: int) -> None:
        with self._lock:
            lease = self._lease
            if generation != self._generation or self._phase != "held" or lease is None:
                return
        now_ms = int(time.time() * 1000)
        expires_at = now_ms // 1000 + self.ttl
        try:
            item = self._store.renew(self.target, lease.lease_token, expires_at, now_ms)
        except LeaseLostError as error:
            with self._lock:
                lost = generation == self._generation and self._lost()
            if lost:
                self._emit([(lambda: self.on_lost, (error,))])
            return
        except Exception as error:  # transient: retried sooner, several tries fit before expiry
            with self._lock:
                if generation != self._generation:
                    return
                self._renew_failures += 1
                retry = self._backoff(self._renew_failures, self.ttl / 6)
                self._next_renew = time.monotonic() + retry
                self._changed.notify_all()
            logger.warning("agent-lb %s: renewal failed (attempt %d, retry in %.1f s): %s", self.target, self._renew_failures, retry, error)
            return
        events: List[Tuple[Callable[..., Any], Tuple[Any, ...]]] = []
        with self._lock:
            if generation != self._generation or self._lease is None:
                return
            self._lease = dataclasses.replace(self._lease, expires_at=expires_at, renewed_at=now_ms)
            self._renew_failures = 0
            self._next_renew = time.monotonic() + self._renewal_interval()
            if item is not None:
                events = self._observe(item)
            self._changed.notify_all()
        self._emit(events)

    def _reacquire_once(self) -> None:
        """Never takes over: a holder that replaced us wins; retried with backoff capped at ttl."""
        with self._ops:
            with self._lock:
                if self._phase != "reacquiring" or self._closing:
                    return
                attempt = self._reacquire_attempt
            try:
                lease = self._put(False)
            except Exception as error:
                with self._lock:
                    if self._phase != "reacquiring" or self._closing:
                        return
                    self._reacquire_attempt = attempt + 1
                    self._schedule_reacquire(self._backoff(attempt))
                logger.warning("agent-lb %s: re-acquire attempt %d failed: %s", self.target, attempt, error)
                return
            with self._lock:
                if self._phase != "reacquiring" or self._closing:
                    return
            self._start_holding(lease)

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
