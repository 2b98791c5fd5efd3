"""AgentLease without AWS: the exact requests (botocore Stubber) and the lifecycle against an
in-memory table (conftest.FakeTable): acquire, renewal, loss and re-acquire, drain, release, the
registry's feedback and the callbacks it drives, readiness."""

from __future__ import annotations

import threading
import time
from typing import Any, List

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber

from agent_lb import (
    AgentLease,
    ConfigError,
    InvalidLeaseError,
    LeaseHeldError,
    LeaseLostError,
    LeaseStoreError,
    NotServingError,
    Rejection,
)
from conftest import NOW_MS, FakeTable, condition_failed, wait_for


def new_lease(dynamodb: Any, **kw: Any) -> AgentLease:
    options = dict(address="10.0.3.17", agent_id="agent-1", dynamodb=dynamodb)
    options.update(kw)
    capabilities = options.pop("capabilities", ["vision"])
    return AgentLease("leases", 8080, capabilities, **options)


class TestRequests:
    def test_acquire_puts_the_contract_item_conditionally(self, client: Any) -> None:
        lease = new_lease(client, ttl=30)
        with Stubber(client) as stub:
            stub.add_response(
                "put_item",
                {},
                {
                    "TableName": "leases",
                    "Item": {
                        "target": {"S": "10.0.3.17:8080"},
                        "address": {"S": "10.0.3.17"},
                        "port": {"N": "8080"},
                        "capabilities": {"SS": ["vision"]},
                        "expiresAt": ANY,
                        "leaseToken": ANY,
                        "agentId": {"S": "agent-1"},
                        "status": {"S": "active"},
                        "renewedAt": ANY,
                        "registeredAt": ANY,
                    },
                    "ConditionExpression": "attribute_not_exists(#target) OR #expiresAt < :now OR #leaseToken = :mine",
                    "ExpressionAttributeNames": {"#target": "target", "#expiresAt": "expiresAt", "#leaseToken": "leaseToken"},
                    "ExpressionAttributeValues": {":now": ANY, ":mine": ANY},
                },
            )
            before = int(time.time())
            state = lease.acquire()
            stub.assert_no_pending_responses()
        assert state.held and state.phase == "held"
        assert before + 30 <= state.expires_at <= int(time.time()) + 30
        lease.abandon()

    def test_drain_and_release_are_conditional_on_the_token(self, client: Any) -> None:
        lease = new_lease(client)
        with Stubber(client) as stub:
            stub.add_response("put_item", {})
            lease.acquire()
            token = lease.lease_token
            stub.add_response(
                "update_item",
                {"Attributes": {}},
                {
                    "TableName": "leases",
                    "Key": {"target": {"S": "10.0.3.17:8080"}},
                    "UpdateExpression": "SET #status = :status",
                    "ConditionExpression": "#leaseToken = :mine",
                    "ExpressionAttributeNames": {"#status": "status", "#leaseToken": "leaseToken"},
                    "ExpressionAttributeValues": {":status": {"S": "draining"}, ":mine": {"S": token}},
                    "ReturnValues": "ALL_NEW",
                },
            )
            lease.drain()
            stub.add_response(
                "delete_item",
                {},
                {
                    "TableName": "leases",
                    "Key": {"target": {"S": "10.0.3.17:8080"}},
                    "ConditionExpression": "#leaseToken = :mine",
                    "ExpressionAttributeNames": {"#leaseToken": "leaseToken"},
                    "ExpressionAttributeValues": {":mine": {"S": token}},
                },
            )
            assert lease.release() is True
            assert lease.release() is True  # idempotent: no second request
            stub.assert_no_pending_responses()
        assert lease.status == "draining" and lease.phase == "released"

    def test_a_failed_condition_on_acquire_is_lease_held(self, client: Any) -> None:
        lease = new_lease(client)
        with Stubber(client) as stub:
            stub.add_client_error("put_item", "ConditionalCheckFailedException", "The conditional request failed")
            with pytest.raises(LeaseHeldError) as caught:
                lease.acquire()
        assert caught.value.code == "LEASE_HELD"
        assert str(caught.value) == "lease for 10.0.3.17:8080 is held by another live holder (use takeover to replace it)"

    def test_another_failure_is_a_lease_store_error(self, client: Any) -> None:
        lease = new_lease(client)
        with Stubber(client) as stub:
            stub.add_client_error("put_item", "ResourceNotFoundException", "Requested resource not found")
            with pytest.raises(LeaseStoreError) as caught:
                lease.acquire()
        assert caught.value.code == "LEASE_STORE"
        assert "ResourceNotFoundException" in str(caught.value)


class TestOptions:
    @pytest.mark.parametrize(
        "kw, message",
        [
            ({"port": "8080"}, "AgentLease: port must be an int, got '8080'"),
            ({"capabilities": "vision"}, "AgentLease: capabilities must be a non-empty list of capability names, got 'vision'"),
            ({"ttl": 2}, "AgentLease: ttl must be a whole number of seconds in 3–3600, got 2"),
            ({"region": "eu-west-1"}, "AgentLease: give either dynamodb (a client) or region/endpoint_url, not both"),
        ],
    )
    def test_bad_options_are_config_errors(self, table: FakeTable, kw: Any, message: str) -> None:
        args = {"table_name": "leases", "port": 8080, "capabilities": ["vision"], "address": "10.0.3.17", "dynamodb": table, **kw}
        with pytest.raises(ConfigError) as caught:
            AgentLease(**args)
        assert str(caught.value) == message and caught.value.code == "INVALID_CONFIG"

    @pytest.mark.parametrize(
        "kw, reason",
        [
            ({"address": "8.8.8.8"}, "ADDRESS_NOT_ALLOWED"),
            ({"address": "127.0.0.1"}, "ADDRESS_NOT_ALLOWED"),
            ({"capabilities": ["Vision"]}, "BAD_CAPABILITIES"),
            ({"metadata": {"blob": "x" * 3000}}, "METADATA_TOO_LARGE"),
        ],
    )
    def test_a_lease_the_registry_would_refuse_is_refused_before_anything_is_sent(self, table: FakeTable, kw: Any, reason: str) -> None:
        args = {"address": "10.0.3.17", "dynamodb": table, **kw}
        capabilities = args.pop("capabilities", ["vision"])
        with pytest.raises(InvalidLeaseError) as caught:
            AgentLease("leases", 8080, capabilities, **args)
        assert [r.reason for r in caught.value.rejections] == [reason]
        assert table.log == []

    def test_loopback_with_allow_loopback_and_ipv6_in_canonical_form(self, table: FakeTable) -> None:
        assert new_lease(table, address="127.0.0.1", allow_loopback=True).target == "127.0.0.1:8080"
        assert new_lease(table, address="FD00:0:0::17", allowed_cidrs=["fd00::/8"]).target == "[fd00::17]:8080"

    def test_a_boto3_resource_or_its_client_and_anything_else_are_refused(self, client: Any) -> None:
        # A resource's client turns the contract's DynamoDB JSON into nested maps: the key would be {"M": {"S": …}}.
        resource = boto3.resource("dynamodb", region_name="eu-west-1", aws_access_key_id="test", aws_secret_access_key="test")
        with pytest.raises(ConfigError, match=r'^AgentLease: dynamodb must be a boto3 DynamoDB client \(boto3.client\("dynamodb"\)\), not a resource: '):
            new_lease(resource)
        with pytest.raises(ConfigError, match=r'^AgentLease: dynamodb must be a boto3 DynamoDB client \(boto3.client\("dynamodb"\)\), not a resource\'s client: '):
            new_lease(resource.meta.client)
        with pytest.raises(ConfigError, match=r'^AgentLease: dynamodb must be a boto3 DynamoDB client \(boto3.client\("dynamodb"\)\), got str$'):
            new_lease("not a client")
        assert new_lease(client).target == "10.0.3.17:8080"

    def test_metadata_is_written_as_dynamodb_values(self, table: FakeTable) -> None:
        lease = new_lease(table, metadata={"zone": "eu-west-1a", "gpus": 2, "ratio": 0.5, "tags": ["a"]})
        lease.acquire()
        assert table.only()["metadata"] == {"M": {"zone": {"S": "eu-west-1a"}, "gpus": {"N": "2"}, "ratio": {"N": "0.5"}, "tags": {"L": [{"S": "a"}]}}}
        lease.release()


class TestLifecycle:
    def test_renews_every_ttl_over_3_and_brings_the_registrys_feedback(self, table: FakeTable) -> None:
        rotations: List[Any] = []
        rejections: List[Rejection] = []
        lease = new_lease(table, ttl=3, capabilities=["ocr", "vision"], on_rotation=lambda now, before: rotations.append(now))
        lease.on_rejected = rejections.append  # assigned later, as the attribute
        lease.acquire()
        table.set_rotation("vision", "healthy", NOW_MS)
        table.set_rejection("unknown-capability", 'capability "ocr" is not routed by this deployment', NOW_MS, ["ocr"])

        wait_for(lambda: table.count("renew") >= 1, 5, "a renewal")
        wait_for(lambda: len(rejections) == 1, 5, "on_rejected")

        assert lease.rotation["vision"].state == "healthy"
        assert [set(r) for r in rotations] == [{"vision"}]
        assert rejections[0] == Rejection("unknown-capability", 'capability "ocr" is not routed by this deployment', NOW_MS, ("ocr",))
        assert lease.serving  # ocr refused: serving in vision is serving
        assert lease.wait_until_serving(timeout=1)[1].state == "healthy"
        lease.release()

    def test_a_lost_lease_calls_on_lost_and_is_acquired_again(self, table: FakeTable) -> None:
        lost: List[LeaseLostError] = []
        lease = new_lease(table, ttl=3, on_lost=lost.append)
        lease.acquire()
        first_token = table.only()["leaseToken"]["S"]
        table.items.clear()  # swept

        wait_for(lambda: lost and lease.phase == "held", 8, "loss and re-acquire")

        assert lost[0].code == "LEASE_LOST"
        assert table.log[:3] == ["put", "renew", "put"]
        assert table.only()["leaseToken"]["S"] == first_token  # one token until release
        lease.release()

    def test_a_transient_renewal_failure_is_retried_sooner(self, table: FakeTable) -> None:
        lease = new_lease(table, ttl=3)
        lease.acquire()
        table.fail_next["update"] = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "UpdateItem")
        wait_for(lambda: table.count("renew") >= 2, 6, "the retried renewal")
        assert lease.phase == "held"
        lease.release()

    def test_a_poll_that_finds_the_lease_taken_over_confirms_the_loss_at_once(self, table: FakeTable) -> None:
        lost = threading.Event()
        lease = new_lease(table, ttl=30, reacquire=False, on_lost=lambda e: lost.set())
        lease.acquire()
        table.only()["leaseToken"] = {"S": "someone-else"}

        lease.poll_feedback()

        assert lost.wait(5)
        assert table.log == ["put", "get", "renew"] and lease.phase == "lost"

    def test_wait_until_serving_fails_at_once_when_the_whole_lease_is_refused(self, table: FakeTable) -> None:
        lease = new_lease(table, rotation_poll_interval=0.05)
        lease.acquire()
        table.set_rejection("invalid", 'address "10.0.3.17" is outside the allowed ranges (10.1.0.0/16)', NOW_MS)

        started = time.monotonic()
        with pytest.raises(NotServingError) as caught:
            lease.wait_until_serving(timeout=30)

        assert caught.value.reason == "rejected" and time.monotonic() - started < 5
        assert str(caught.value) == '10.0.3.17:8080 is not serving: the registry refuses the lease (invalid: address "10.0.3.17" is outside the allowed ranges (10.1.0.0/16))'
        lease.release()

    def test_wait_until_serving_times_out_naming_the_groups(self, table: FakeTable) -> None:
        lease = new_lease(table, rotation_poll_interval=0.05)
        lease.acquire()
        table.set_rotation("vision", "unhealthy", NOW_MS)
        with pytest.raises(NotServingError) as caught:
            lease.wait_until_serving(timeout=0.3)
        assert caught.value.reason == "timeout" and "not healthy: vision unhealthy" in str(caught.value)
        lease.release()

    def test_the_context_manager_acquires_and_leaves(self, table: FakeTable) -> None:
        # leave() with its defaults: out of rotation, then the 5 s propagation margin, then release.
        with new_lease(table, rotation_poll_interval=0.05) as lease:
            assert lease.held
            table.set_rotation("vision", "healthy", NOW_MS)
            lease.poll_feedback()
            # The registry deregisters the draining target as soon as it sees the drain.
            threading.Thread(target=lambda: (wait_for(lambda: table.only()["status"]["S"] == "draining", 5), table.set_rotation("vision", "draining", int(time.time() * 1000)))).start()
        assert lease.phase == "released" and table.items == {}
        assert table.log[-1] == "delete"
