"""Leaving rotation on SIGTERM/SIGINT, as the Node SDK's ``installShutdownHandlers`` does: the
first signal runs ``leave()`` on a thread of its own (the main thread keeps serving meanwhile),
logs each step, then exits 0; a second signal cuts the waits short and releases at once."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from .errors import ConfigError
from .leave import DEFAULT_CLOCK_SKEW_TOLERANCE, DEFAULT_MAX_REQUEST_DURATION, DEFAULT_PROPAGATION_MARGIN, DEFAULT_UNCONFIRMED_ROTATION_WAIT, LeaveReport, LeaveStep, check_leave_options

if TYPE_CHECKING:
    from .lease import AgentLease


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def install_shutdown_handlers(
    lease: "AgentLease",
    *,
    signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT),
    exit: bool = True,
    log: Optional[Callable[[str], None]] = _stderr,
    on_left: Optional[Callable[[LeaveReport], None]] = None,
    **leave_options: Any,
) -> Callable[[], None]:
    """On the first of ``signals``: ``lease.leave(**leave_options)`` (drain → out of rotation
    everywhere → propagation margin → in-flight requests done → release, within ``deadline``:
    by default enough for a request of ``max_request_duration`` seconds, 317 s with defaults),
    one log line per step, ``on_left(report)``, then — with ``exit=True`` (the default) — the
    process exits 0 (``os._exit``: whatever the main thread is blocked in, a server's accept loop
    included). With ``exit=False`` the process goes on (``on_left`` tells it the lease is gone);
    later signals are then ignored until the returned function, called from the main thread,
    restores the previous handlers. Must be installed from the main thread (Python delivers
    signals there)."""
    if not signals:
        raise ConfigError(f"install_shutdown_handlers: signals must be a non-empty sequence, got {signals!r}")
    deadline = check_leave_options(
        leave_options.get("deadline"),
        leave_options.get("propagation_margin", DEFAULT_PROPAGATION_MARGIN),
        leave_options.get("unconfirmed_rotation_wait", DEFAULT_UNCONFIRMED_ROTATION_WAIT),
        leave_options.get("clock_skew_tolerance", DEFAULT_CLOCK_SKEW_TOLERANCE),
        leave_options.get("max_request_duration", DEFAULT_MAX_REQUEST_DURATION),
    )
    say = log or (lambda line: None)
    hurry = threading.Event()
    state = {"started": False}
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def run(signum: int) -> None:
        say(f"agent-lb leave {lease.target}: {signal.Signals(signum).name}, leaving rotation (deadline {deadline:.1f} s)")
        user_step = leave_options.get("on_step")

        def on_step(step: LeaveStep) -> None:
            say(str(step))
            if user_step is not None:
                user_step(step)

        report = lease.leave(**{**leave_options, "hurry": hurry, "on_step": on_step})
        for error in report.errors:
            say(f"agent-lb leave {lease.target}: {error}")
        say(f"agent-lb leave {lease.target}: done in {report.duration:.1f} s, {'released' if report.released else 'not released (see above)'}")
        if on_left is not None:
            on_left(report)
        if exit:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)

    def on_signal(signum: int, _frame: Any) -> None:
        if state["started"]:
            hurry.set()  # a second signal: stop waiting, release now
            return
        state["started"] = True
        threading.Thread(target=run, args=(signum,), name="agent-lb-leave", daemon=False).start()

    for sig in signals:
        signal.signal(sig, on_signal)
    return restore
