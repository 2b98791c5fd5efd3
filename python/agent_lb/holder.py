"""Holding one lease (the base of ``AgentLease``), as the Node SDK's ``LeaseHolder``: acquire (a
conditional PutItem), renewal every ttl/3 with ±10 % jitter on a daemon thread, loss detection
and automatic re-acquire, drain/activate and release. Every item DynamoDB hands back (renewals
and status changes return it, polls read it) goes to ``_observe``, where ``AgentLease`` takes in
the registry's feedback at no read cost. Callbacks run on the lease's thread; an exception in one
is logged, never raised.
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
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .address import AddressPolicy, canonical_address, format_target
from .codec import Lease, Rejection, RotationEntry, encode_valid_lease
from .contract import DEFAULT_ALLOWED_CIDRS, DEFAULT_TTL_SECONDS, LEASE_ATTR
from .discovery import DEFAULT_DISCOVERY_TIMEOUT, DiscoveredAddress, discover_address
from .errors import ConfigError, LeaseLostError, LeaseStoreError
from .in_flight import InFlightCounter
from .options import LeaseState, check_options, client_of, encode_metadata, make_client
from .store import LeaseStore

Events = List[Tuple[Callable[[], Any], Tuple[Any, ...]]]

logger = logging.getLogger("agent_lb")

#: ±10 % on every delay, so a fleet started together does not renew in lockstep.
_JITTER = 0.1
_BASE_RETRY = 1.0
DEFAULT_ROTATION_POLL_INTERVAL = 1.0


class LeaseHolder:
    """Holds one lease; see the module's docstring. ``AgentLease`` is the class to use."""

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
        check_options(table_name, port, capabilities, ttl, rotation_poll_interval, dynamodb, region, endpoint_url, agent_id)
        self.discovered_address: Optional[DiscoveredAddress] = None
        meta = dict(metadata) if metadata is not None else None
        if address is None:
            found = discover_address(timeout=discovery_timeout)
            self.discovered_address = found
            address = found.address
            if found.availability_zone and (meta is None or "zone" not in meta):
                meta = {**(meta or {}), "zone": found.availability_zone}
        if not isinstance(address, str) or not address.strip():
            raise ConfigError(f"AgentLease: address must be a non-empty string, got {address!r}")
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
        self._metadata = encode_metadata(meta)
        # The same validation the registry applies, before anything is written (InvalidLeaseError).
        encode_valid_lease(self._build("probe-token", "active", 1_700_000_000_000), self._policy)

        self._client = make_client(region, endpoint_url, ttl) if dynamodb is None else client_of(dynamodb)
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
        self._acquiring = 0
        self._release_result: Optional[bool] = None
        self._drained_at: Optional[float] = None
        self._rotation: Dict[str, RotationEntry] = {}
        self._rejection: Optional[Rejection] = None
        self._reported_rejection: Optional[Rejection] = None
        self._worker: Optional[threading.Thread] = None
        self._leaving: Optional[threading.Event] = None
        self._leave_report: Optional[LeaveReport] = None
        self._random = random.Random()

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
    def drained_at(self) -> Optional[float]:
        """Epoch seconds at which ``draining`` was last written; ``None`` while active."""
        return self._drained_at

    @property
    def losses(self) -> int:
        """How often the lease was lost so far."""
        return self._losses

    def acquire(self) -> LeaseState:
        """Writes the lease (conditional PutItem; unconditional with ``takeover``) after validating
        it, then renews it automatically. Returns at once when already held.

        Raises ``LeaseHeldError`` (another live holder), ``InvalidLeaseError`` (nothing sent),
        ``LeaseStoreError`` (DynamoDB failed otherwise)."""
        with self._lock:
            self._release_result = None
            self._leave_report = None
            self._acquiring += 1  # a release() meanwhile waits for this acquire, then deletes what it wrote
        try:
            return self._acquire()
        finally:
            with self._lock:
                self._acquiring -= 1

    def _acquire(self) -> LeaseState:
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
        Idempotent: later calls return the first call's result. True when our lease was deleted.

        A lease not held (lost, abandoned, being re-acquired, never acquired) is released without
        a request and at once: False. Its key lapsed, was swept or is someone else's, and a leave
        after DynamoDB went away must not wait on it; a re-acquire attempt that lands afterwards
        deletes what it wrote (``_reacquire_once``). Only an ``acquire()`` in progress is waited for."""
        with self._lock:
            if self._release_result is not None:
                return self._release_result
            self._stop_holding()
            if self._phase != "held" and self._acquiring == 0:
                self._phase = "released"
                self._closing = False
                self._token = None
                self._release_result = False
                self._changed.notify_all()
                return False
            self._closing = True
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

    def _emit(self, events: Sequence[Tuple[Callable[..., Any], Tuple[Any, ...]]]) -> None:
        for get_callback, args in events:
            callback = get_callback()
            if callback is None:
                continue
            try:
                callback(*args)
            except Exception:
                logger.exception("agent-lb %s: a callback raised", self.target)

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

    def _put(self, takeover: bool, token: Optional[str] = None) -> Lease:
        now_ms = int(time.time() * 1000)
        lease = self._build(token or self._token or "", self._status, now_ms)
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
        with self._lock:
            if self._phase in ("lost", "reacquiring") and self._acquiring == 0:
                # Not held: remembered for the next re-acquire, without waiting for an attempt in
                # flight (DynamoDB may be unreachable for minutes); one that lands with the former
                # status has it corrected (_reacquire_once).
                self._status = status
                return self.state
        with self._ops:
            return self._write_status(status)

    def _write_status(self, status: str) -> LeaseState:
        """Holding ``_ops``: writes ``status`` when held (else only remembers it)."""
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
                if self._phase != "reacquiring" or self._closing or self._token is None:
                    return
                attempt, token = self._reacquire_attempt, self._token
            try:
                lease = self._put(False, token)
            except Exception as error:
                with self._lock:
                    if self._phase != "reacquiring" or self._closing:
                        return
                    self._reacquire_attempt = attempt + 1
                    self._schedule_reacquire(self._backoff(attempt))
                logger.warning("agent-lb %s: re-acquire attempt %d failed: %s", self.target, attempt, error)
                return
            with self._lock:
                released = self._phase == "released"
                wanted = self._phase == "reacquiring" and not self._closing
            if not wanted:
                if released:  # release() returned while we wrote (it waits for no re-acquire): no lease of ours may stay
                    self._delete_quietly(token)
                return
            self._start_holding(lease)
            if lease.status != self._status:  # drained (or activated) while the attempt was in flight
                try:
                    self._write_status(self._status)
                except Exception as error:
                    logger.warning("agent-lb %s: re-acquired %s, could not write %s: %s", self.target, lease.status, self._status, error)

    def _delete_quietly(self, lease_token: str) -> None:
        try:
            self._store.release(self.target, lease_token)
        except Exception as error:  # it expires within its ttl
            logger.warning("agent-lb %s: could not delete a lease re-acquired after its release (it expires within %d s): %s", self.target, self.ttl, error)

    def _observe(self, item: Mapping[str, Any]) -> Events:
        """Under the lock: takes in an item that is ours; returns the callbacks to run. ``AgentLease`` reads the registry's feedback here."""
        return []
