"""leave() step by step against the in-memory table (the registry played by the test), and
AsyncAgentLease's coroutines, callbacks on the loop and its ASGI middleware."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Dict, List

import pytest

from agent_lb import DEFAULT_LEAVE_DEADLINE, AgentLease, AsyncAgentLease, ConfigError, LeaveStep, NotServingError, Rejection, leave_deadline_for
from agent_lb.leave import _LOST_BEFORE_DRAIN, check_leave_options
from conftest import NOW_MS, FakeTable, wait_for


def new_lease(table: FakeTable, capabilities: Any = ("vision",), **kw: Any) -> AgentLease:
    return AgentLease("leases", 8080, list(capabilities), address="10.0.3.17", agent_id="agent-1", dynamodb=table, rotation_poll_interval=0.05, **kw)


def registry_deregisters_on_drain(table: FakeTable, capability: str = "vision") -> threading.Thread:
    """Plays stream sync: once the lease is draining, writes `draining` into its rotation."""

    def run() -> None:
        wait_for(lambda: bool(table.items) and table.only()["status"]["S"] == "draining", 10, "the drain")
        time.sleep(0.1)
        table.set_rotation(capability, "draining", int(time.time() * 1000))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class Unreachable(FakeTable):
    """DynamoDB gone once ``away`` is set: UpdateItem and DeleteItem fail at once, PutItem hangs
    (a blackholed endpoint) until ``back`` is set, then lands; ``puts_hang`` hangs PutItem alone."""

    def __init__(self) -> None:
        super().__init__()
        self.away = False
        self.puts_hang = False
        self.back = threading.Event()

    def update_item(self, *args: Any, **kw: Any) -> Dict[str, Any]:
        if self.away:
            self.log.append("update (unreachable)")
            raise ConnectionError("DynamoDB unreachable")
        return super().update_item(*args, **kw)

    def delete_item(self, *args: Any, **kw: Any) -> Dict[str, Any]:
        if self.away:
            self.log.append("delete (unreachable)")
            raise ConnectionError("DynamoDB unreachable")
        return super().delete_item(*args, **kw)

    def put_item(self, *args: Any, **kw: Any) -> Dict[str, Any]:
        if self.away or self.puts_hang:
            self.log.append("put (hung)")
            self.back.wait(60)
        return super().put_item(*args, **kw)


def outcomes(steps: List[LeaveStep]) -> List[str]:
    return [f"{s.step}:{s.outcome}" for s in steps]


class TestLeave:
    def test_drains_waits_out_of_rotation_and_the_margin_lets_requests_finish_then_releases(self, table: FakeTable) -> None:
        lease = new_lease(table)
        lease.acquire()
        table.set_rotation("vision", "healthy", NOW_MS)
        registry_deregisters_on_drain(table)
        request_done = threading.Event()

        def request() -> None:  # a request in flight when the leave starts, done 0.3 s after the margin
            with lease.track():
                request_done.wait()

        threading.Thread(target=request).start()
        wait_for(lambda: lease.in_flight.in_flight == 1)
        steps: List[LeaveStep] = []
        threading.Timer(1.0, request_done.set).start()

        report = lease.leave(propagation_margin=0.5, on_step=steps.append)

        assert outcomes(steps) == ["drain:done", "rotation:confirmed", "propagation:done", "in_flight:done", "release:done"]
        assert report.released and table.items == {}
        assert table.log[0] == "put" and table.log[-1] == "delete" and "draining" in table.log
        assert str(steps[1]).startswith("agent-lb leave 10.0.3.17:8080: rotation confirmed in ") and "(vision draining for " in str(steps[1])
        assert lease.leave() is report  # a second call returns the first call's report

    def test_does_not_wait_for_a_capability_the_registry_refuses(self, table: FakeTable) -> None:
        lease = new_lease(table, capabilities=("ocr", "vision"))
        lease.acquire()
        table.set_rejection("unknown-capability", 'capability "ocr" is not routed by this deployment', NOW_MS, ["ocr"])
        lease.poll_feedback()
        registry_deregisters_on_drain(table)

        report = lease.leave(propagation_margin=0, unconfirmed_rotation_wait=10)

        assert outcomes(list(report.steps))[:2] == ["drain:done", "rotation:confirmed"]
        assert report.duration < 5
        assert report.steps[1].detail.startswith("ocr rejected, vision draining for ")

    def test_falls_back_to_the_conservative_wait_when_the_registry_says_nothing(self, table: FakeTable) -> None:
        lease = new_lease(table)
        lease.acquire()
        report = lease.leave(propagation_margin=0, unconfirmed_rotation_wait=0.5)
        assert report.steps[1].outcome == "fallback" and "no fresh rotation from the registry for vision" in report.steps[1].detail

    def test_keeps_to_the_deadline_and_a_second_signal_hurries(self, table: FakeTable) -> None:
        lease = new_lease(table)
        lease.acquire()
        table.set_rotation("vision", "healthy", NOW_MS)  # never leaves rotation
        end = lease.in_flight.begin()  # and a request that never ends
        report = lease.leave(deadline=2, propagation_margin=0)
        end()
        assert outcomes(list(report.steps)) == ["drain:done", "rotation:deadline", "propagation:deadline", "in_flight:deadline", "release:done"]
        assert report.duration < 3

        other = new_lease(FakeTable())
        other.acquire()
        hurry = threading.Event()
        threading.Timer(0.3, hurry.set).start()
        hurried = other.leave(hurry=hurry)
        assert hurried.steps[1].outcome == "hurried" and hurried.duration < 3 and hurried.released

    def test_a_lease_lost_while_the_drain_retries_is_reported_lost_and_the_leave_ends_at_once(self, table: FakeTable) -> None:
        # The drain fails (DynamoDB unreachable) and is retried; the lease is lost meanwhile. With
        # the default deadline (317 s) and margin (5 s): nothing is reported drained, no margin
        # is waited, and the release of a lease no longer held sends nothing.
        lease = new_lease(table)
        lease.acquire()
        table.fail_next["update"] = ConnectionError("DynamoDB unreachable")
        threading.Timer(0.1, lease.abandon).start()
        report = lease.leave()
        assert outcomes(list(report.steps)) == ["drain:lost", "rotation:lost", "propagation:skipped", "in_flight:done", "release:lost"]
        assert report.steps[0].detail == "0 of 1 drained; lease for 10.0.3.17:8080 lost: " + _LOST_BEFORE_DRAIN
        assert report.steps[2].detail == "the lease was lost"
        assert not report.released and report.errors == () and report.duration < 30  # not the deadline's 317 s
        assert table.log == ["put", "draining"]  # no second drain, no delete
        assert lease.phase == "released" and lease.release() is False

    def test_a_lease_that_expires_while_dynamodb_is_away_leaves_without_waiting_for_it(self) -> None:
        # DynamoDB away: renewals fail until the lease expires, and the re-acquire attempt hangs
        # (a blackholed endpoint). The leave ends as soon as the loss is known, without waiting
        # for that attempt; when it lands after all, what it wrote is deleted.
        table = Unreachable()
        lease = new_lease(table, ttl=3)
        lease.acquire()
        table.away = True
        report = lease.leave()
        assert outcomes(list(report.steps)) == ["drain:lost", "rotation:lost", "propagation:skipped", "in_flight:done", "release:lost"]
        assert report.duration < 30 and not [e for e in table.log if e.startswith("delete")]  # the lease expires 3 s in; the deadline is 317 s
        wait_for(lambda: "put (hung)" in table.log, 10, "the re-acquire attempt")
        table.away = False
        table.back.set()
        wait_for(lambda: table.count("delete") == 1 and table.items == {}, 10, lambda: f"the landed re-acquire deleted (log {table.log})")

    def test_a_drain_while_the_lease_is_reacquired_is_written_once_it_is_back(self) -> None:
        table = Unreachable()
        lease = new_lease(table, ttl=3)
        lease.acquire()
        table.puts_hang = True
        table.items.clear()  # swept: the next renewal finds the lease lost
        wait_for(lambda: "put (hung)" in table.log, 10, "the re-acquire attempt")
        assert lease.drain().status == "draining"  # remembered at once, not after the attempt in flight
        table.puts_hang = False
        table.back.set()
        wait_for(lambda: lease.held and table.only()["status"]["S"] == "draining", 10, lambda: f"the drain written after the re-acquire (log {table.log})")
        assert lease.drained_at is not None
        lease.release()

    def test_refuses_bad_options_before_writing(self, table: FakeTable) -> None:
        lease = new_lease(table)
        with pytest.raises(ConfigError, match=r"leave: deadline must be a number of seconds > 0, got 0"):
            lease.leave(deadline=0)
        with pytest.raises(ConfigError, match=r"leave: max_request_duration must be a number of seconds ≥ 0, got '5m'"):
            lease.leave(max_request_duration="5m")  # type: ignore[arg-type]
        assert table.log == []

    def test_the_default_deadline_lets_the_longest_request_finish_as_in_node(self) -> None:
        # The Node SDK's leaveDeadlineFor: rotation wait + margin + the longest request + 2 s for the release.
        assert DEFAULT_LEAVE_DEADLINE == leave_deadline_for() == 317.0
        assert leave_deadline_for(max_request_duration=60) == 77.0
        assert leave_deadline_for(60, propagation_margin=0, unconfirmed_rotation_wait=0) == 62.0
        assert check_leave_options(None, 5, 10, 2, max_request_duration=100) == 117.0
        assert check_leave_options(25, 5, 10, 2) == 25.0


class TestAsync:
    def test_the_same_api_as_coroutines_with_callbacks_on_the_loop(self, table: FakeTable) -> None:
        seen: Dict[str, Any] = {}

        async def on_rejected(rejection: Rejection) -> None:  # a coroutine callback is scheduled as a task
            seen["rejected_on"] = threading.get_ident()
            seen["rejection"] = rejection

        async def main() -> None:
            seen["loop_thread"] = threading.get_ident()
            lease = AsyncAgentLease(
                "leases", 8080, ["ocr", "vision"], address="10.0.3.17", dynamodb=table, ttl=3, rotation_poll_interval=0.05, on_rejected=on_rejected
            )
            async with lease:
                assert lease.held
                table.set_rotation("vision", "healthy", NOW_MS)
                table.set_rejection("unknown-capability", "ocr is not routed", NOW_MS, ["ocr"])
                groups = await lease.wait_until_serving(timeout=10)
                seen["groups"] = [(g.capability, g.state) for g in groups]
                for _ in range(100):
                    if "rejection" in seen:
                        break
                    await asyncio.sleep(0.05)
                registry_deregisters_on_drain(table)
                seen["report"] = await lease.leave(propagation_margin=0)

        asyncio.run(main())
        assert seen["groups"] == [("ocr", "rejected"), ("vision", "healthy")]
        assert seen["rejected_on"] == seen["loop_thread"]
        assert seen["rejection"].reason == "unknown-capability"
        assert seen["report"].released and table.items == {}

    def test_wait_until_serving_times_out_without_blocking_the_loop(self, table: FakeTable) -> None:
        async def main() -> int:
            lease = AsyncAgentLease("leases", 8080, ["vision"], address="10.0.3.17", dynamodb=table, rotation_poll_interval=0.05)
            await lease.acquire()
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.01)

            task = asyncio.ensure_future(ticker())
            with pytest.raises(NotServingError) as caught:
                await lease.wait_until_serving(timeout=0.5)
            task.cancel()
            assert caught.value.reason == "timeout"
            await lease.release()
            return ticks

        assert asyncio.run(main()) > 10
