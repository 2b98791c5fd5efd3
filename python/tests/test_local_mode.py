"""Python agents through a running `agent-lb local` (started by the Node test tier), as a user's
agent joins it: HTTP servers of the test's own hold leases through the public API, answer the
health check the target group configures, and are reached only through `loadBalancerEndpoint`.
Asserted is what clients and agent authors see: who answered, failed requests while an agent
leaves under load, and the reason the registry gives for what it refuses."""

from __future__ import annotations

import time
from typing import Any, Dict, Iterator, List, Optional

import boto3
import pytest

from agent_lb import AgentLease, Rejection, decode_rejection
from conftest import wait_for
from lb_client import LOCAL_CREDENTIALS, AgentServer, Load, health_path_of

pytestmark = pytest.mark.local_mode
WAIT = 60.0


@pytest.fixture(scope="module")
def health_path(local_state: Dict[str, Any]) -> str:
    return health_path_of(local_state, "vision")


@pytest.fixture
def servers(health_path: str) -> Iterator[Any]:
    started: List[AgentServer] = []

    def start(name: str) -> AgentServer:
        s = AgentServer(name, health_path)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def join(local_state: Dict[str, Any], server: AgentServer, capabilities: List[str], **kw: Any) -> AgentLease:
    """An agent joins local mode through the public API: the state file's table, region and DynamoDB endpoint."""
    return AgentLease(
        local_state["tableName"],
        server.port,
        capabilities,
        address="127.0.0.1",
        allow_loopback=True,
        endpoint_url=local_state["dynamodbEndpoint"],
        region=local_state["region"],
        ttl=10,
        agent_id=server.name,
        **kw,
    )


def test_a_python_agent_serves_through_the_load_balancer_and_leaves_under_load_without_a_failed_request(local_state: Dict[str, Any], servers: Any) -> None:
    a, b = servers("py-a"), servers("py-b")
    lease_a, lease_b = join(local_state, a, ["vision"]), join(local_state, b, ["vision"])
    lease_a.acquire()
    lease_b.acquire()
    lease_a.wait_until_serving(timeout=WAIT)
    lease_b.wait_until_serving(timeout=WAIT)
    load = Load(local_state["loadBalancerEndpoint"], "vision")
    wait_for(lambda: {"py-a", "py-b"} <= {r[1] for r in load.results}, WAIT, "both agents answering through the load balancer")

    report = lease_a.leave()  # drain, out of rotation, margin, in-flight, release: the defaults
    a.stop()
    served_after = len(load.results)
    wait_for(lambda: len(load.results) >= served_after + 20, WAIT, "requests after the leave")
    load.stop()

    assert [f"{s.step}:{s.outcome}" for s in report.steps] == ["drain:done", "rotation:confirmed", "propagation:done", "in_flight:done", "release:done"]
    assert load.failed() == []
    assert {r[1] for r in load.results[served_after:]} == {"py-b"}
    assert lease_b.release()


def test_an_unrouted_capability_is_rejected_alone_and_the_agent_serves_the_others(local_state: Dict[str, Any], servers: Any) -> None:
    server = servers("py-ocr")
    rejections: List[Rejection] = []
    lease = join(local_state, server, ["ocr", "vision"], on_rejected=rejections.append)
    lease.acquire()

    groups = lease.wait_until_serving(timeout=WAIT)
    wait_for(lambda: bool(rejections), WAIT, "on_rejected")

    assert [(g.capability, g.state) for g in groups] == [("ocr", "rejected"), ("vision", "healthy")]
    assert rejections[0].reason == "unknown-capability" and rejections[0].capabilities == ("ocr",)
    assert '"ocr" is not routed by this deployment' in rejections[0].message
    started = time.monotonic()
    report = lease.leave(propagation_margin=0)
    assert report.steps[1].outcome == "confirmed" and time.monotonic() - started < 10


def test_a_malformed_lease_written_with_boto3_learns_why(local_state: Dict[str, Any]) -> None:
    ddb = boto3.client("dynamodb", region_name=local_state["region"], endpoint_url=local_state["dynamodbEndpoint"], **LOCAL_CREDENTIALS)
    now = time.time()
    key = {"target": {"S": "127.0.0.1:9"}}
    ddb.put_item(
        TableName=local_state["tableName"],
        Item={
            **key,
            "address": {"S": "127.0.0.1"},
            "port": {"S": "9"},  # a string: the contract says N
            "capabilities": {"SS": ["vision"]},
            "expiresAt": {"N": str(int(now * 1000) + 60_000)},  # milliseconds: the contract says seconds
            "leaseToken": {"S": "raw-writer"},
            "agentId": {"S": "raw-writer"},
            "status": {"S": "active"},
            "renewedAt": {"N": str(int(now * 1000))},
            "registeredAt": {"N": str(int(now * 1000))},
        },
    )

    def rejection() -> Optional[Rejection]:
        item = ddb.get_item(TableName=local_state["tableName"], Key=key, ConsistentRead=True).get("Item", {})
        return decode_rejection(item.get("rejection"))

    wait_for(lambda: rejection() is not None, WAIT, "the registry's rejection")
    found = rejection()
    ddb.delete_item(TableName=local_state["tableName"], Key=key)
    assert found is not None and found.reason == "invalid" and found.capabilities is None
    assert 'attribute "port" must be Number (N), got S' in found.message
    assert "expiresAt" in found.message and "milliseconds" in found.message
