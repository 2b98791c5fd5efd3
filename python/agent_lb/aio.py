"""``AsyncAgentLease``: the same API as ``AgentLease`` with coroutines, for asyncio agents.

DynamoDB calls run in the default executor (boto3 is synchronous), so the event loop keeps
serving; renewals run on the lease's own thread as with ``AgentLease``. Callbacks given here run
on the event loop: plain functions are called there, coroutine functions are scheduled as tasks.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import sys
import threading
import time
from typing import Any, Awaitable, Callable, Dict, Optional, Sequence, Tuple, TypeVar

from .codec import Rejection, RotationEntry
from .errors import ConfigError
from .in_flight import ASGIApp, AsgiInFlightMiddleware, InFlightCounter
from .lease import DEFAULT_SERVING_TIMEOUT, AgentLease, LeaseState
from .leave import LeaveReport, LeaveStep
from .progress import GroupRotation
from .shutdown import LEAVE_INCOMPLETE_EXIT_CODE, done_line, leave_exit_code

T = TypeVar("T")


class AsyncAgentLease:
    """An ``AgentLease`` for asyncio: the constructor takes the same arguments (address discovery,
    when ``address`` is omitted, runs in it and may block up to two seconds); ``acquire``,
    ``drain``, ``activate``, ``release``, ``wait_until_serving`` and ``leave`` are coroutines;
    ``async with AsyncAgentLease(...) as lease`` acquires and leaves."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        callbacks = {name: kwargs.pop(name, None) for name in ("on_lost", "on_rotation", "on_rejected")}
        self._lease = AgentLease(*args, **kwargs)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self.on_lost: Optional[Callable[..., Any]] = callbacks["on_lost"]
        self.on_rotation: Optional[Callable[..., Any]] = callbacks["on_rotation"]
        self.on_rejected: Optional[Callable[..., Any]] = callbacks["on_rejected"]
        for name in callbacks:
            setattr(self._lease, name, functools.partial(self._dispatch, name))

    # --- the synchronous lease's reads ------------------------------------------------------------

    @property
    def sync(self) -> AgentLease:
        """The underlying ``AgentLease`` (for code that runs in threads)."""
        return self._lease

    target = property(lambda self: self._lease.target)
    capabilities = property(lambda self: self._lease.capabilities)
    in_flight: InFlightCounter = property(lambda self: self._lease.in_flight)  # type: ignore[assignment]
    phase = property(lambda self: self._lease.phase)
    held = property(lambda self: self._lease.held)
    status = property(lambda self: self._lease.status)

    @property
    def state(self) -> LeaseState:
        return self._lease.state

    @property
    def rotation(self) -> Dict[str, RotationEntry]:
        return self._lease.rotation

    @property
    def rejection(self) -> Optional[Rejection]:
        return self._lease.rejection

    @property
    def serving(self) -> bool:
        return self._lease.serving

    # --- coroutines ---------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self._loop = asyncio.get_running_loop()
        return await self._loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))

    async def acquire(self) -> LeaseState:
        return await self._run(self._lease.acquire)

    async def drain(self) -> LeaseState:
        return await self._run(self._lease.drain)

    async def activate(self) -> LeaseState:
        return await self._run(self._lease.activate)

    async def release(self) -> bool:
        return await self._run(self._lease.release)

    async def wait_until_serving(self, timeout: float = DEFAULT_SERVING_TIMEOUT) -> Tuple[GroupRotation, ...]:
        """As ``AgentLease.wait_until_serving``, without blocking the loop: polls in the executor,
        waits with ``asyncio.sleep``; cancelling it stops the wait."""
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout != timeout or timeout < 0:
            raise ConfigError(f"wait_until_serving: timeout must be a number of seconds ≥ 0, got {timeout!r}")
        self._loop = asyncio.get_running_loop()
        started = time.monotonic()
        losses = self._lease.losses
        interval = self._lease.rotation_poll_interval
        while True:
            groups = self._lease.serving_verdict(started, losses, timeout)
            if groups is not None:
                return groups
            await asyncio.sleep(min(interval, max(0.0, timeout - (time.monotonic() - started))))
            await self._run(self._lease.poll_feedback)

    async def leave(self, **options: Any) -> LeaveReport:
        """As ``AgentLease.leave`` (same options, seconds); requests counted by ``asgi_middleware``
        are waited for while the loop goes on serving them. Cancelling it hurries the leave."""
        hurry = options.pop("hurry", None) or threading.Event()
        try:
            return await asyncio.shield(self._run(self._lease.leave, hurry=hurry, **options))
        except asyncio.CancelledError:
            hurry.set()
            raise

    def track(self) -> Any:
        """``with lease.track():`` (also inside coroutines) counts a request until the block ends."""
        return self._lease.track()

    def asgi_middleware(self, app: ASGIApp) -> AsgiInFlightMiddleware:
        """ASGI middleware counting requests for ``leave()``."""
        return self._lease.asgi_middleware(app)

    def install_shutdown_handlers(
        self,
        *,
        signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT),
        exit: bool = True,
        log: Optional[Callable[[str], None]] = None,
        on_left: Optional[Callable[[LeaveReport], Any]] = None,
        **leave_options: Any,
    ) -> Callable[[], None]:
        """On the first of ``signals`` (through the running loop's ``add_signal_handler``): runs
        ``leave()``, logs each step, calls ``on_left(report)``, then exits unless ``exit=False``,
        with ``leave_exit_code(report)`` (0 once released, ``LEAVE_INCOMPLETE_EXIT_CODE`` — 1 —
        when not); a second signal hurries the leave. Call it from a coroutine. Returns a
        function that removes the handlers."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        say = log or (lambda line: (sys.stderr.write(line + "\n"), sys.stderr.flush()))
        hurry = threading.Event()
        started = {"task": None}

        async def run(signum: int) -> None:
            say(f"agent-lb leave {self.target}: {signal.Signals(signum).name}, leaving rotation")
            user_step = leave_options.get("on_step")

            def on_step(step: LeaveStep) -> None:
                say(str(step))
                if user_step is not None:
                    user_step(step)

            code = LEAVE_INCOMPLETE_EXIT_CODE
            try:
                report = await self.leave(**{**leave_options, "hurry": hurry, "on_step": on_step})
                code = leave_exit_code(report)
                for error in report.errors:
                    say(f"agent-lb leave {self.target}: {error}")
                say(done_line(self.target, report, code if exit else None))
                if on_left is not None:
                    result = on_left(report)
                    if asyncio.iscoroutine(result):
                        await result
            finally:  # whatever happened, the process the signal asked to end ends
                if exit:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)

        def on_signal(signum: int) -> None:
            if started["task"] is not None:
                hurry.set()
                return
            started["task"] = loop.create_task(run(signum))  # type: ignore[assignment]

        for sig in signals:
            loop.add_signal_handler(sig, on_signal, sig)

        def remove() -> None:
            for sig in signals:
                loop.remove_signal_handler(sig)

        return remove

    async def __aenter__(self) -> "AsyncAgentLease":
        await self.acquire()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.leave()

    # --- callbacks on the loop ----------------------------------------------------------------------

    def _dispatch(self, name: str, *args: Any) -> None:
        callback = getattr(self, name)
        loop = self._loop
        if callback is None or loop is None or loop.is_closed():
            return

        def call() -> None:
            result = callback(*args)
            if isinstance(result, Awaitable):  # type: ignore[misc, arg-type]
                asyncio.ensure_future(result)

        loop.call_soon_threadsafe(call)
