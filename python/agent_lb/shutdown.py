"""Leaving rotation on SIGTERM/SIGINT, as the Node SDK's ``installShutdownHandlers`` does: the
first signal runs ``leave()`` on a thread of its own (the main thread keeps serving meanwhile),
logs each step, then exits — 0 when the leave ended with the lease released (or none held),
``LEAVE_INCOMPLETE_EXIT_CODE`` (1) when not; a second signal cuts the waits short and releases at once."""

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


#: The exit code after a leave that did not end with the lease released: the release failed or
#: ran out of time (the lease stays, draining if the drain was written, until its ttl runs out),
#: or the lease was lost during the leave (not renewed while DynamoDB was away, or taken over:
#: nothing was drained by us). 1, as ``agent-lb sidecar`` exits when it cannot release its lease
#: (a failure while running); a supervisor or the orchestrator's task state shows it.
LEAVE_INCOMPLETE_EXIT_CODE = 1


def leave_exit_code(report: LeaveReport) -> int:
    """0 when the leave ended with the lease released, or with none held from the start (nothing
    to leave); ``LEAVE_INCOMPLETE_EXIT_CODE`` otherwise."""
    release = next((s for s in report.steps if s.step == "release"), None)
    nothing_held = release is not None and release.outcome == "skipped"
    return 0 if report.released or nothing_held else LEAVE_INCOMPLETE_EXIT_CODE


def done_line(target: str, report: LeaveReport, code: Optional[int]) -> str:
    """The leave's last log line: ``agent-lb leave 10.0.3.17:8080: done in 6.2 s, released, exit 0``."""
    outcome = "released" if report.released else "not released (see above)"
    return f"agent-lb leave {target}: done in {report.duration:.1f} s, {outcome}" + ("" if code is None else f", exit {code}")


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
    process exits (``os._exit``: whatever the main thread is blocked in, a server's accept loop
    included) with ``leave_exit_code(report)``: 0 once the lease was released (or none was held),
    ``LEAVE_INCOMPLETE_EXIT_CODE`` (1) when the release failed or ran out of time, or the lease
    was lost during the leave. With ``exit=False`` the process goes on (``on_left`` tells it the lease is gone);
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

        code = LEAVE_INCOMPLETE_EXIT_CODE
        try:
            report = lease.leave(**{**leave_options, "hurry": hurry, "on_step": on_step})
            code = leave_exit_code(report)
            for error in report.errors:
                say(f"agent-lb leave {lease.target}: {error}")
            say(done_line(lease.target, report, code if exit else None))
            if on_left is not None:
                on_left(report)
        finally:  # whatever happened, the process the signal asked to end ends
            if exit:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)

    def on_signal(signum: int, _frame: Any) -> None:
        if state["started"]:
            hurry.set()  # a second signal: stop waiting, release now
            return
        state["started"] = True
        threading.Thread(target=run, args=(signum,), name="agent-lb-leave", daemon=False).start()

    for sig in signals:
        signal.signal(sig, on_signal)
    return restore
