"""The options of an ``AgentLease``: checked one at a time, quoting the bad value and what is
allowed (``ConfigError``), and the DynamoDB client made from them. Mirrors the Node SDK's
``agent-lease-options.ts``."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any, Dict, Optional
from urllib.parse import urlparse

from .contract import LOCAL_CREDENTIALS, MAX_TTL_SECONDS, MIN_TTL_SECONDS
from .errors import ConfigError


@dataclasses.dataclass(frozen=True)
class LeaseState:
    """A snapshot of an ``AgentLease``. ``phase``: ``idle`` (never acquired), ``held`` (acquired
    and renewed), ``reacquiring`` (lost, trying again), ``lost``, ``released``."""

    phase: str
    target: str
    agent_id: str
    held: bool
    #: ``active`` or ``draining``: as written, or to be written at the next (re-)acquire.
    status: str
    lease_token: Optional[str] = None
    #: Epoch seconds of the lease's expiry as last written.
    expires_at: Optional[int] = None
    #: Epoch ms of the last acquire or renewal.
    renewed_at: Optional[int] = None


def is_local(endpoint_url: Optional[str]) -> bool:
    host = urlparse(endpoint_url).hostname if endpoint_url else None
    return host in ("127.0.0.1", "localhost", "::1")


def _plain(value: Any) -> Any:
    """Floats as Decimal (what boto3's serializer takes), recursively."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def encode_metadata(metadata: Any) -> Optional[Dict[str, Any]]:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise ConfigError(f"AgentLease: metadata must be a dict, got {type(metadata).__name__}")
    from boto3.dynamodb.types import TypeSerializer

    try:
        serializer = TypeSerializer()
        return {str(k): serializer.serialize(_plain(v)) for k, v in metadata.items()}
    except (TypeError, ValueError) as error:
        raise ConfigError(f"AgentLease: metadata cannot be stored in DynamoDB: {error}") from error


def make_client(region: Optional[str], endpoint_url: Optional[str], ttl: int, caller: str = "AgentLease") -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    local = is_local(endpoint_url)
    region_name = region or session.region_name or ("us-east-1" if local else None)
    if region_name is None:
        raise ConfigError(f"{caller}: no region: pass region=… or set AWS_REGION (or give a boto3 client as dynamodb=…)")
    # A heartbeat must fail fast enough to be retried before the lease expires.
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=min(5, ttl / 3), read_timeout=min(10, ttl / 3))
    credentials: Dict[str, str] = dict(LOCAL_CREDENTIALS) if local and session.get_credentials() is None else {}
    return session.client("dynamodb", region_name=region_name, endpoint_url=endpoint_url, config=config, **credentials)



def check_options(
    table_name: Any,
    port: Any,
    capabilities: Any,
    ttl: Any,
    rotation_poll_interval: Any,
    dynamodb: Any,
    region: Any,
    endpoint_url: Any,
    agent_id: Any,
) -> None:
    """Raises ``ConfigError`` for the first bad option."""
    def fail(message: str) -> ConfigError:
        return ConfigError(f"AgentLease: {message}")

    if not isinstance(table_name, str) or not table_name.strip():
        raise fail(f"table_name must be a non-empty string, got {table_name!r}")
    if isinstance(port, bool) or not isinstance(port, int):
        raise fail(f"port must be an int, got {port!r}")
    if isinstance(capabilities, str) or not isinstance(capabilities, (list, tuple, set, frozenset)) or not capabilities:
        raise fail(f"capabilities must be a non-empty list of capability names, got {capabilities!r}")
    if not all(isinstance(c, str) for c in capabilities):
        raise fail(f"capabilities must hold only strings, got {list(capabilities)!r}")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not MIN_TTL_SECONDS <= ttl <= MAX_TTL_SECONDS:
        raise fail(f"ttl must be a whole number of seconds in {MIN_TTL_SECONDS}–{MAX_TTL_SECONDS}, got {ttl!r}")
    if isinstance(rotation_poll_interval, bool) or not isinstance(rotation_poll_interval, (int, float)) or not 0.05 <= rotation_poll_interval <= 60:
        raise fail(f"rotation_poll_interval must be 0.05–60 seconds, got {rotation_poll_interval!r}")
    if dynamodb is not None and (region is not None or endpoint_url is not None):
        raise fail("give either dynamodb (a client) or region/endpoint_url, not both")
    if agent_id is not None and (not isinstance(agent_id, str) or not agent_id.strip()):
        raise fail(f"agent_id must be a non-empty string, got {agent_id!r}")


#: The unique id of the handler boto3's resource layer adds to its client: items in and out as
#: Python values (``{"target": "10.0.3.17:8080"}``), where the lease contract is DynamoDB JSON.
_RESOURCE_LAYER_HANDLER = "dynamodb-attr-value-input"


def _converts_values(client: Any) -> bool:
    events = getattr(getattr(client, "meta", None), "events", None)
    emitter = getattr(events, "_emitter", events)  # botocore's EventAliaser wraps the emitter
    handlers = getattr(emitter, "_unique_id_handlers", None)
    return isinstance(handlers, dict) and _RESOURCE_LAYER_HANDLER in handlers


def client_of(dynamodb: Any, caller: str = "AgentLease") -> Any:
    """The boto3 DynamoDB client given, as it is. Refused with ``ConfigError``: anything else, and
    a boto3 resource or its ``meta.client`` (they turn every item into Python values, so an item
    in the contract's DynamoDB JSON would be written as nested maps and read back unrecognised)."""
    wanted = "a boto3 DynamoDB client (boto3.client(\"dynamodb\"))"
    if not hasattr(dynamodb, "put_item"):
        if getattr(getattr(dynamodb, "meta", None), "client", None) is not None:
            raise ConfigError(f"{caller}: dynamodb must be {wanted}, not a resource: a resource converts items to Python values, the lease contract's are DynamoDB JSON")
        raise ConfigError(f"{caller}: dynamodb must be {wanted}, got {type(dynamodb).__name__}")
    if _converts_values(dynamodb):
        raise ConfigError(f"{caller}: dynamodb must be {wanted}, not a resource's client: it converts items to Python values, the lease contract's are DynamoDB JSON")
    return dynamodb
