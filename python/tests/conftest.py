"""Shared set-up of the Python SDK's tests: a one-item lease table that acts as DynamoDB would on
the SDK's four item calls (``FakeTable``, for lifecycle tests where timing matters and AWS is not
the point), botocore clients for ``Stubber`` (exact requests), and the endpoints the Node test
tier hands over when it runs these tests (DynamoDB Local, a running ``agent-lb local``)."""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import boto3
import pytest
from botocore.exceptions import ClientError

REPO = Path(__file__).resolve().parents[2]
NOW_MS = 1_795_000_000_000


def condition_failed(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}}, operation)


class FakeTable:
    """PutItem (conditional acquire), UpdateItem (token-conditional, ALL_NEW), GetItem and
    DeleteItem on an in-memory table; the test plays the registry with ``set_rotation`` and
    ``set_rejection``. ``log`` lists the calls in order; ``fail_next`` makes the next call of a
    kind raise once."""

    def __init__(self) -> None:
        self.items: Dict[str, Dict[str, Any]] = {}
        self.log: List[str] = []
        self.fail_next: Dict[str, Exception] = {}
        self.lock = threading.Lock()

    def _maybe_fail(self, kind: str) -> None:
        error = self.fail_next.pop(kind, None)
        if error is not None:
            raise error

    def put_item(self, TableName: str, Item: Dict[str, Any], **kw: Any) -> Dict[str, Any]:
        with self.lock:
            self.log.append("put")
            self._maybe_fail("put")
            key = Item["target"]["S"]
            old = self.items.get(key)
            values = kw.get("ExpressionAttributeValues", {})
            held = old is not None and int(old["expiresAt"]["N"]) >= int(values.get(":now", {"N": "0"})["N"])
            if "ConditionExpression" in kw and held and old["leaseToken"]["S"] != values[":mine"]["S"]:
                raise condition_failed("PutItem")
            self.items[key] = copy.deepcopy(Item)
            return {}

    def update_item(self, TableName: str, Key: Dict[str, Any], ExpressionAttributeValues: Dict[str, Any], **kw: Any) -> Dict[str, Any]:
        with self.lock:
            status = ExpressionAttributeValues.get(":status", {}).get("S")
            self.log.append(status or "renew")
            self._maybe_fail("update")
            item = self.items.get(Key["target"]["S"])
            if item is None or item["leaseToken"]["S"] != ExpressionAttributeValues[":mine"]["S"]:
                raise condition_failed("UpdateItem")
            if status is not None:
                item["status"] = {"S": status}
            else:
                item["expiresAt"] = ExpressionAttributeValues[":exp"]
                item["renewedAt"] = ExpressionAttributeValues[":ren"]
            return {"Attributes": copy.deepcopy(item)}

    def get_item(self, TableName: str, Key: Dict[str, Any], **kw: Any) -> Dict[str, Any]:
        with self.lock:
            self.log.append("get")
            self._maybe_fail("get")
            item = self.items.get(Key["target"]["S"])
            return {} if item is None else {"Item": copy.deepcopy(item)}

    def delete_item(self, TableName: str, Key: Dict[str, Any], ExpressionAttributeValues: Dict[str, Any], **kw: Any) -> Dict[str, Any]:
        with self.lock:
            self.log.append("delete")
            self._maybe_fail("delete")
            key = Key["target"]["S"]
            item = self.items.get(key)
            if item is None or item["leaseToken"]["S"] != ExpressionAttributeValues[":mine"]["S"]:
                raise condition_failed("DeleteItem")
            del self.items[key]
            return {}

    # --- the registry's side ---
    def only(self) -> Dict[str, Any]:
        (item,) = self.items.values()
        return item

    def set_rotation(self, capability: str, state: str, since: int) -> None:
        with self.lock:
            item = self.only()
            rotation = item.setdefault("rotation", {"M": {}})["M"]
            rotation[capability] = {"M": {"state": {"S": state}, "since": {"N": str(since)}}}

    def set_rejection(self, reason: str, message: str, since: int, capabilities: Optional[List[str]] = None) -> None:
        with self.lock:
            value: Dict[str, Any] = {"reason": {"S": reason}, "message": {"S": message}, "since": {"N": str(since)}}
            if capabilities:
                value["capabilities"] = {"SS": capabilities}
            self.only()["rejection"] = {"M": value}

    def count(self, kind: str) -> int:
        return self.log.count(kind)


@pytest.fixture
def table() -> FakeTable:
    return FakeTable()


@pytest.fixture
def client() -> Any:
    """A real botocore client for ``Stubber`` (nothing leaves the process while stubbed)."""
    return boto3.client("dynamodb", region_name="eu-west-1", aws_access_key_id="test", aws_secret_access_key="test")


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: Union[str, Callable[[], str]] = "condition", interval: float = 0.02) -> float:
    """Polls ``predicate`` until true; returns the seconds waited. Waits on events, never a fixed
    sleep. ``what`` (or what it returns, evaluated then) names the condition when it never holds."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what if isinstance(what, str) else what()}")
        time.sleep(interval)
    return time.monotonic() - started


def _env_or_skip(name: str, why: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set: {why} (npm test sets it)")
    return value


@pytest.fixture(scope="session")
def dynamodb_endpoint() -> str:
    """DynamoDB Local's endpoint, started by the Node test tier (test/integration/python-sdk.test.ts)."""
    return _env_or_skip("AGENT_LB_TEST_DYNAMODB_ENDPOINT", "these tests run against DynamoDB Local")


@pytest.fixture(scope="session")
def local_state() -> Dict[str, Any]:
    """The state file of a running `agent-lb local` (its endpoints, table and target groups)."""
    path = _env_or_skip("AGENT_LB_TEST_STATE_FILE", "these tests run through local mode's load balancer")
    return json.loads(Path(path).read_text(encoding="utf-8"))
