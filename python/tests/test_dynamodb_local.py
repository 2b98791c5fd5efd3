"""AgentLease against AWS's own DynamoDB Local (started by the Node test tier): the contract's
conditions as DynamoDB evaluates them — a held lease refuses a second holder, takeover replaces
it and the first holder learns it lost the lease, an expired lease is free, a release never
deletes another holder's lease, and a heartbeat brings back what the registry wrote."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Dict, Iterator, List

import boto3
import pytest

from agent_lb import AgentLease, LeaseHeldError, LeaseLostError, Rejection
from conftest import wait_for

pytestmark = pytest.mark.dynamodb_local


@pytest.fixture(scope="module")
def ddb(dynamodb_endpoint: str) -> Any:
    return boto3.client("dynamodb", region_name="us-east-1", endpoint_url=dynamodb_endpoint, aws_access_key_id="agentlblocal", aws_secret_access_key="agentlblocal")


@pytest.fixture
def table_name(ddb: Any) -> Iterator[str]:
    """A lease table of the test's own (key `target`, as the stack creates it)."""
    name = f"py-leases-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "target", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "target", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield name
    ddb.delete_table(TableName=name)


def lease_on(table_name: str, endpoint: str, **kw: Any) -> AgentLease:
    # Through endpoint_url, as an agent joining local mode does (local credentials when it has none).
    return AgentLease(table_name, 8080, kw.pop("capabilities", ["vision"]), address="10.0.3.17", endpoint_url=endpoint, region="us-east-1", **kw)


def test_a_held_lease_refuses_a_second_holder_takeover_replaces_it_and_the_first_learns_it_lost(ddb: Any, table_name: str, dynamodb_endpoint: str) -> None:
    lost: List[LeaseLostError] = []
    first = lease_on(table_name, dynamodb_endpoint, ttl=3, reacquire=False, on_lost=lost.append, agent_id="first")
    first.acquire()

    with pytest.raises(LeaseHeldError):
        lease_on(table_name, dynamodb_endpoint, agent_id="second").acquire()
    third = lease_on(table_name, dynamodb_endpoint, agent_id="third", takeover=True)
    third.acquire()

    wait_for(lambda: bool(lost), 10, "the first holder's loss")
    item = ddb.get_item(TableName=table_name, Key={"target": {"S": "10.0.3.17:8080"}}, ConsistentRead=True)["Item"]
    assert item["agentId"]["S"] == "third" and first.phase == "lost"
    assert first.release() is False  # not ours any more: nothing deleted
    assert ddb.get_item(TableName=table_name, Key={"target": {"S": "10.0.3.17:8080"}})["Item"]["agentId"]["S"] == "third"
    assert third.release() is True


def test_an_expired_lease_is_free_for_another_holder(ddb: Any, table_name: str, dynamodb_endpoint: str) -> None:
    stale = {
        "target": {"S": "10.0.3.17:8080"},
        "address": {"S": "10.0.3.17"},
        "port": {"N": "8080"},
        "capabilities": {"SS": ["vision"]},
        "expiresAt": {"N": str(int(time.time()) - 5)},
        "leaseToken": {"S": "crashed"},
        "agentId": {"S": "crashed"},
        "status": {"S": "active"},
        "renewedAt": {"N": "1"},
        "registeredAt": {"N": "1"},
    }
    ddb.put_item(TableName=table_name, Item=stale)
    lease = lease_on(table_name, dynamodb_endpoint)
    lease.acquire()
    assert lease.held
    lease.release()


def test_a_heartbeat_brings_the_rotation_and_rejection_the_registry_wrote(ddb: Any, table_name: str, dynamodb_endpoint: str) -> None:
    rejected = threading.Event()
    got: Dict[str, Rejection] = {}
    lease = lease_on(table_name, dynamodb_endpoint, ttl=3, capabilities=["ocr", "vision"], on_rejected=lambda r: (got.setdefault("r", r), rejected.set()))
    lease.acquire()
    now_ms = int(time.time() * 1000)
    # What the registry writes (docs/lease-contract.md): conditional on the lease token.
    ddb.update_item(
        TableName=table_name,
        Key={"target": {"S": lease.target}},
        UpdateExpression="SET #rotation = :rotation, #rejection = :rejection",
        ConditionExpression="#leaseToken = :token",
        ExpressionAttributeNames={"#rotation": "rotation", "#rejection": "rejection", "#leaseToken": "leaseToken"},
        ExpressionAttributeValues={
            ":token": {"S": lease.lease_token},
            ":rotation": {"M": {"vision": {"M": {"state": {"S": "healthy"}, "since": {"N": str(now_ms)}}}}},
            ":rejection": {"M": {"reason": {"S": "unknown-capability"}, "message": {"S": "ocr is not routed"}, "since": {"N": str(now_ms)}, "capabilities": {"SS": ["ocr"]}}},
        },
    )

    assert rejected.wait(10)
    assert got["r"] == Rejection("unknown-capability", "ocr is not routed", now_ms, ("ocr",))
    assert lease.rotation["vision"].state == "healthy" and lease.serving
    lease.release()
    assert "Item" not in ddb.get_item(TableName=table_name, Key={"target": {"S": lease.target}}, ConsistentRead=True)
