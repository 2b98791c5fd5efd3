"""Trusted discovery (``discover_agents``) against moto's DynamoDB: one Query of the capability's
partition of the registry state table, the Node SDK's result and errors in Python names. The
filtering itself is proven against the Node SDK's by the shared vectors' ``discover`` cases."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from agent_lb import ConfigError, DiscoveredAgent, RegistryStateError, discover_agents

TABLE = "AgentLb-registry-state"
REGION = "eu-west-1"


def member(capability: str, n: int, state: str, model: str, status: str = "active") -> Dict[str, Any]:
    """A member item as the registry writes it (``encodeMember`` in lib/core/registry-state.ts)."""
    return {
        "pk": {"S": f"members#{capability}"},
        "sk": {"S": f"10.0.1.{n}:8080"},
        "address": {"S": f"10.0.1.{n}"},
        "port": {"N": "8080"},
        "agentId": {"S": f"agent-{n}"},
        "status": {"S": status},
        "registeredAt": {"N": "1795000000000"},
        "readAt": {"N": "1795000000200"},
        "state": {"S": state},
        "since": {"N": "1795000000100"},
        "availabilityZone": {"S": "eu-west-1a"},
        "metadata": {"M": {"model": {"S": model}, "gpus": {"N": "2"}}},
    }


@pytest.fixture(scope="module")
def moto_table() -> Iterator[Any]:
    """One moto DynamoDB with the registry state table for the whole module (each set-up costs ~0.4 s)."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        )
        items = [
            member("vision", 1, "healthy", "large"),
            member("vision", 2, "healthy", "small"),
            member("vision", 3, "unhealthy", "large"),
            member("vision", 4, "draining", "large", "draining"),
            member("speech", 5, "unhealthy", "small"),
            {"pk": {"S": "catalog"}, "sk": {"S": "document"}, "revision": {"N": "7"}},
        ]
        for item in items:
            client.put_item(TableName=TABLE, Item=item)
        yield client


@pytest.fixture
def ddb(moto_table: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh client on the module's table (a test's event hooks stay its own), no table named in the environment."""
    monkeypatch.delenv("AGENT_LB_REGISTRY_TABLE", raising=False)
    return boto3.client("dynamodb", region_name=REGION)


def calls_of(client: Any) -> List[str]:
    calls: List[str] = []
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    return calls


def test_one_query_of_the_capability_partition_gives_its_healthy_agents(ddb: Any) -> None:
    calls = calls_of(ddb)
    agents = discover_agents(TABLE, "vision", dynamodb=ddb)
    assert calls == ["Query"]
    assert agents == [
        DiscoveredAgent("vision", "10.0.1.1:8080", "10.0.1.1", 8080, "agent-1", "active", "healthy", 1795000000100, "eu-west-1a", {"model": "large", "gpus": 2}),
        DiscoveredAgent("vision", "10.0.1.2:8080", "10.0.1.2", 8080, "agent-2", "active", "healthy", 1795000000100, "eu-west-1a", {"model": "small", "gpus": 2}),
    ]
    assert "leaseToken" not in repr(agents)


@pytest.mark.parametrize(
    "capability,options,expected",
    [
        ("vision", {"health": "all"}, [1, 2, 3, 4]),
        ("vision", {"filter": {"model": "large"}}, [1]),
        ("vision", {"health": "all", "filter": {"model": "large", "gpus": "2"}}, [1, 3, 4]),
        ("speech", {}, []),
        ("speech", {"health": "healthy-or-else-all"}, [5]),
        ("speech", {"health": "healthy-or-else-all", "filter": {"model": "large"}}, []),
        ("ocr", {"health": "all"}, []),
    ],
)
def test_health_and_metadata_filters(ddb: Any, capability: str, options: Dict[str, Any], expected: List[int]) -> None:
    agents = discover_agents(TABLE, capability, dynamodb=ddb, **options)
    assert [a.agent_id for a in agents] == [f"agent-{n}" for n in expected]


def test_the_table_from_the_environment_and_a_client_from_region(ddb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_LB_REGISTRY_TABLE", TABLE)
    assert [a.port for a in discover_agents(None, "vision", region=REGION, consistent=True)] == [8080, 8080]


@pytest.mark.parametrize(
    "args,options,message",
    [
        ((TABLE, "Vision"), {}, 'capability "Vision" must match ^[a-z0-9][a-z0-9_-]{0,62}$'),
        ((TABLE, "vision"), {"health": "passing"}, 'health filter "passing" must be one of healthy, all, healthy-or-else-all'),
        ((TABLE, "vision"), {"filter": {"gpus": 2}}, "filter must map metadata keys to strings"),
        ((None, "vision"), {}, "discover_agents needs the registry state table: pass table_name or set AGENT_LB_REGISTRY_TABLE"),
        ((TABLE, "vision"), {"region": REGION, "dynamodb": object()}, "give either dynamodb (a client) or region/endpoint_url, not both"),
        ((TABLE, "vision"), {"dynamodb": object()}, 'discover_agents: dynamodb must be a boto3 DynamoDB client (boto3.client("dynamodb")), got object'),
    ],
)
def test_bad_options_are_refused_in_one_line(ddb: Any, args: Any, options: Dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        discover_agents(*args, **options)
    assert message in str(raised.value)
    assert raised.value.code == "INVALID_CONFIG"


def test_a_failing_table_is_a_registry_state_error(ddb: Any) -> None:
    with pytest.raises(RegistryStateError) as raised:
        discover_agents("no-such-table", "vision", dynamodb=ddb)
    assert raised.value.code == "REGISTRY_STATE"
    assert str(raised.value).startswith("discover_agents on table no-such-table failed: ResourceNotFoundException: ")
    assert raised.value.context == {"table": "no-such-table", "capability": "vision"}


def test_pages_past_one_megabyte_are_followed(client: Any) -> None:
    first, second = member("vision", 1, "healthy", "large"), member("vision", 2, "healthy", "large")
    request = {
        "TableName": TABLE,
        "KeyConditionExpression": "#pk = :pk",
        "ExpressionAttributeNames": {"#pk": "pk"},
        "ExpressionAttributeValues": {":pk": {"S": "members#vision"}},
        "ConsistentRead": False,
    }
    last_key = {"pk": first["pk"], "sk": first["sk"]}
    with Stubber(client) as stub:
        stub.add_response("query", {"Items": [first], "LastEvaluatedKey": last_key}, request)
        stub.add_response("query", {"Items": [second]}, {**request, "ExclusiveStartKey": last_key})
        agents = discover_agents(TABLE, "vision", dynamodb=client)
        stub.assert_no_pending_responses()
    assert [a.target for a in agents] == ["10.0.1.1:8080", "10.0.1.2:8080"]
