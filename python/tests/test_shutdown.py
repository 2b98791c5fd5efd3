"""install_shutdown_handlers' exit code: 0 once the leave released the lease (or none was held),
LEAVE_INCOMPLETE_EXIT_CODE (1, as the sidecar's when it cannot release) when not. The rule is a
pure function of the report; one agent process per outcome proves the exit itself."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import List, Tuple

import pytest

from agent_lb import LEAVE_INCOMPLETE_EXIT_CODE, LeaveReport, LeaveStep, leave_exit_code
from conftest import REPO


def report(release: str, released: bool) -> LeaveReport:
    step = LeaveStep("release", release, 0.0, 0.0, "", "10.0.3.17:8080")
    return LeaveReport("10.0.3.17:8080", (step,), 0.0, released)


@pytest.mark.parametrize(
    ("release", "released", "code"),
    [
        ("done", True, 0),  # the lease was deleted
        ("skipped", False, 0),  # no lease held when the signal came: nothing to leave
        ("lost", False, 1),  # lost during the leave: nothing drained by us
        ("failed", False, 1),  # DynamoDB failed the delete: the lease stays until its ttl
        ("deadline", False, 1),  # the delete did not finish in time
    ],
)
def test_the_exit_code_says_whether_the_lease_was_released(release: str, released: bool, code: int) -> None:
    assert LEAVE_INCOMPLETE_EXIT_CODE == 1
    assert leave_exit_code(report(release, released)) == code


AGENT = """
import os, signal, sys, threading
sys.path.insert(0, {tests!r})
from conftest import FakeTable
from agent_lb import AgentLease
table = FakeTable()
lease = AgentLease("leases", 8080, ["vision"], address="10.0.3.17", agent_id="agent-1", dynamodb=table)
lease.acquire()
lease.install_shutdown_handlers(propagation_margin=0, unconfirmed_rotation_wait=0, log=print)
if sys.argv[1] == "lost":  # DynamoDB fails the drain, and the lease is lost while it is retried
    table.fail_next["update"] = ConnectionError("DynamoDB unreachable")
    threading.Timer(0.1, lease.abandon).start()
os.kill(os.getpid(), signal.SIGTERM)
threading.Event().wait(60)
"""


def test_the_process_exits_0_once_released_and_1_when_the_lease_was_lost_during_the_leave() -> None:
    source = textwrap.dedent(AGENT.format(tests=str(REPO / "python" / "tests")))
    runs = {how: subprocess.Popen([sys.executable, "-c", source, how], cwd=REPO / "python", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for how in ("released", "lost")}
    ended: List[Tuple[str, int, str]] = []
    for how, run in runs.items():
        out, _ = run.communicate(timeout=60)
        ended.append((how, run.returncode, out.strip().splitlines()[-1] if out.strip() else out))
    assert ended == [
        ("released", 0, ended[0][2]),
        ("lost", LEAVE_INCOMPLETE_EXIT_CODE, ended[1][2]),
    ], ended
    assert ended[0][2].endswith(", released, exit 0") and ended[1][2].endswith(", not released (see above), exit 1")
