"""Trusted discovery: the agents of a capability with their address, port, rotation state and
metadata, for callers IAM lets read the registry's member index (``AgentLb.grantDiscovery``),
not through the load balancer. The Node SDK's ``discoverAgents`` (``lib/sdk/discover-agents.ts``,
``lib/core/agent-discovery.ts``) in Python names: one Query of the capability's partition of the
registry state table, Cloud Map's health filters, metadata equalities; the shared test vectors'
``discover`` cases prove both filter alike."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Dict, List, Mapping, Optional, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from .contract import CAPABILITY_NAME, HEALTH_FILTERS, MEMBER_ATTR, REGISTRY_STATE, ROTATION_STATES
from .errors import ConfigError, RegistryStateError
from .options import client_of, make_client

_MAX_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True)
class DiscoveredAgent:
    """One agent as discovery returns it (the Node SDK's ``DiscoveredAgent``). Never its lease token."""

    #: The name agents list: ``vision``, or a variant's ``vision-canary``.
    capability: str
    #: ``<address>:<port>``, the lease key.
    target: str
    address: str
    port: int
    agent_id: str
    #: ``active`` or ``draining``.
    status: str
    #: Its state in the capability's target group as the registry last wrote it; ``None`` before the first write.
    state: Optional[str] = None
    #: Epoch ms since when it is in ``state``.
    since: Optional[int] = None
    availability_zone: Optional[str] = None
    #: The lease's metadata as plain values (str, int/float, bool, None, lists, dicts).
    metadata: Dict[str, Any] = field(default_factory=dict)


def _whole_number(value: Any) -> Optional[int]:
    """An ``N`` attribute as an int when it holds a safe integer (as the Node SDK's ``Number.isSafeInteger``)."""
    text = value.get("N") if isinstance(value, Mapping) else None
    if not isinstance(text, str):
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    if not number.is_finite() or number != number.to_integral_value() or abs(number) > _MAX_SAFE_INTEGER:
        return None
    return int(number)


def _text(value: Any, kind: str) -> Optional[str]:
    found = value.get(kind) if isinstance(value, Mapping) else None
    return found if isinstance(found, str) else None


def _number(text: str) -> Any:
    number = float(text)
    return int(number) if number.is_integer() and abs(number) <= _MAX_SAFE_INTEGER else number


def plain_value(value: Any) -> Any:
    """A DynamoDB attribute value as a plain value, as the Node SDK's ``plainValue`` reads it
    (numbers as int or float, binary as ``None``)."""
    if not isinstance(value, Mapping):
        return None
    if "S" in value:
        return value["S"]
    if "N" in value:
        return _number(value["N"])
    if "BOOL" in value:
        return value["BOOL"]
    if "NULL" in value:
        return None
    if "SS" in value:
        return list(value["SS"])
    if "NS" in value:
        return [_number(n) for n in value["NS"]]
    if "L" in value:
        return [plain_value(v) for v in value["L"]]
    if "M" in value:
        return {k: plain_value(v) for k, v in value["M"].items()}
    return None


def decode_member(item: Mapping[str, Any]) -> Optional[DiscoveredAgent]:
    """A member index item as an agent; ``None`` for an item that is not one (another partition, a
    missing field): only the registry writes these items, but a reader never trusts a table."""
    pk = _text(item.get(REGISTRY_STATE.partition_key), "S")
    target = _text(item.get(REGISTRY_STATE.sort_key), "S")
    address = _text(item.get(MEMBER_ATTR.address), "S")
    port = _whole_number(item.get(MEMBER_ATTR.port))
    agent_id = _text(item.get(MEMBER_ATTR.agent_id), "S")
    status = _text(item.get(MEMBER_ATTR.status), "S")
    registered_at = _whole_number(item.get(MEMBER_ATTR.registered_at))
    if pk is None or not pk.startswith(REGISTRY_STATE.members_partition_prefix) or target is None or address is None or port is None:
        return None
    if agent_id is None or status not in ("active", "draining") or registered_at is None:
        return None
    state = _text(item.get(MEMBER_ATTR.state), "S")
    metadata = item.get(MEMBER_ATTR.metadata)
    metadata = metadata.get("M") if isinstance(metadata, Mapping) else None
    return DiscoveredAgent(
        capability=pk[len(REGISTRY_STATE.members_partition_prefix):],
        target=target,
        address=address,
        port=port,
        agent_id=agent_id,
        status=status,
        state=state if state in ROTATION_STATES else None,
        since=_whole_number(item.get(MEMBER_ATTR.since)),
        availability_zone=_text(item.get(MEMBER_ATTR.availability_zone), "S"),
        metadata=plain_value({"M": metadata}) if isinstance(metadata, Mapping) else {},
    )


def _metadata_text(value: Any) -> Optional[str]:
    """What a metadata filter compares: a string, a number's text as stored, a bool as ``true``/``false``."""
    if not isinstance(value, Mapping):
        return None
    if isinstance(value.get("S"), str):
        return value["S"]
    if isinstance(value.get("N"), str):
        return value["N"]
    if isinstance(value.get("BOOL"), bool):
        return "true" if value["BOOL"] else "false"
    return None


def discover_from(items: Sequence[Mapping[str, Any]], health: str = "healthy", filter: Optional[Mapping[str, str]] = None) -> List[DiscoveredAgent]:
    """The member items that are members and pass the filters, as agents, by target. Pure."""
    wanted = list((filter or {}).items())
    matching: List[DiscoveredAgent] = []
    for item in items:
        agent = decode_member(item)
        # Only targets the registry has put into their group (a rotation state it wrote, not
        # ``absent``): a lease EC2 did not admit, or one past the target quota, is never registered,
        # and its address (anything its writer chose) must not reach a caller through discovery.
        if agent is None or agent.state is None or agent.state == "absent":
            continue
        metadata = item.get(MEMBER_ATTR.metadata)
        raw = metadata.get("M") if isinstance(metadata, Mapping) else None
        if all(isinstance(raw, Mapping) and k in raw and _metadata_text(raw[k]) == v for k, v in wanted):
            matching.append(agent)
    healthy = [a for a in matching if a.status == "active" and a.state == "healthy"]
    chosen = matching if health == "all" or (health == "healthy-or-else-all" and not healthy) else healthy
    return sorted(chosen, key=lambda a: a.target)


def _check(capability: Any, health: Any, filter: Any) -> None:
    if not isinstance(capability, str) or not CAPABILITY_NAME.fullmatch(capability):
        raise ConfigError(f"capability {_quote(capability)} must match ^{CAPABILITY_NAME.pattern}$")
    if health not in HEALTH_FILTERS:
        raise ConfigError(f"health filter {_quote(health)} must be one of {', '.join(HEALTH_FILTERS)}")
    if filter is not None and (not isinstance(filter, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in filter.items())):
        raise ConfigError(f"filter must map metadata keys to strings (numbers and booleans compare by their text: {{'gpus': '2'}}), got {filter!r}")


def _quote(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def discover_agents(
    table_name: Optional[str],
    capability: str,
    *,
    health: str = "healthy",
    filter: Optional[Mapping[str, str]] = None,
    consistent: bool = False,
    dynamodb: Any = None,
    region: Optional[str] = None,
    endpoint_url: Optional[str] = None,
) -> List[DiscoveredAgent]:
    """The agents of ``capability`` (the name agents list: ``vision``, a variant's ``vision-canary``)
    in the registry state table ``table_name`` (stack output ``RegistryStateTableName``; ``None``:
    the ``AGENT_LB_REGISTRY_TABLE`` environment variable), by target.

    ``health``: ``healthy`` (active lease, healthy in the capability's group), ``all``, or
    ``healthy-or-else-all`` (the healthy ones, or every one when none is healthy). ``filter``:
    metadata equalities that must all hold. One Query of the capability's partition (paged past
    1 MB): its cost follows the capability's agents, never the fleet's, and no lease is read.
    What it shows is what the registry last wrote: membership within the stream's latency, health
    within a reconcile (or rotation-poll) interval.

    Raises ``ConfigError`` for a bad capability name, health filter, filter or missing table name,
    ``RegistryStateError`` when DynamoDB fails.
    """
    _check(capability, health, filter)
    table = table_name or os.environ.get(REGISTRY_STATE.table_env)
    if not table:
        raise ConfigError(f"discover_agents needs the registry state table: pass table_name or set {REGISTRY_STATE.table_env} (stack output RegistryStateTableName)")
    if dynamodb is not None and (region is not None or endpoint_url is not None):
        raise ConfigError("discover_agents: give either dynamodb (a client) or region/endpoint_url, not both")
    client = client_of(dynamodb, "discover_agents") if dynamodb is not None else make_client(region, endpoint_url, 30, "discover_agents")
    items: List[Mapping[str, Any]] = []
    request: Dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "#pk = :pk",
        "ExpressionAttributeNames": {"#pk": REGISTRY_STATE.partition_key},
        "ExpressionAttributeValues": {":pk": {"S": REGISTRY_STATE.members_partition_prefix + capability}},
        "ConsistentRead": consistent,
    }
    try:
        while True:
            out = client.query(**request)
            items.extend(out.get("Items", []))
            if not out.get("LastEvaluatedKey"):
                break
            request["ExclusiveStartKey"] = out["LastEvaluatedKey"]
    except (ClientError, BotoCoreError) as error:
        name = error.response.get("Error", {}).get("Code", type(error).__name__) if isinstance(error, ClientError) else type(error).__name__
        raise RegistryStateError(f"discover_agents on table {table} failed: {name}: {error}", context={"table": table, "capability": capability}) from error
    return discover_from(items, health, filter)
