"""Finding the private address an agent should register, as the Node SDK's ``discoverAddress``
does: the ECS task metadata endpoint v4 (``ECS_CONTAINER_METADATA_URI_V4``), then EC2 instance
metadata (IMDSv2, falling back to IMDSv1 where the service has no tokens, as the AWS SDKs do).
Each request times out after ``timeout`` seconds, so a laptop with neither fails fast."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .address import canonical_address, ip_family, quote_untrusted
from .errors import AddressDiscoveryAttempt, AddressNotFoundError, ConfigError

DEFAULT_DISCOVERY_TIMEOUT = 1.0
SOURCES: Tuple[str, ...] = ("ecs-task-metadata", "ec2-instance-metadata")
_IMDS_V4 = "http://169.254.169.254"
_IMDS_V6 = "http://[fd00:ec2::254]"
_MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class DiscoveredAddress:
    """Where the agent runs: its private address (canonical text), the zone (informational), and where it was found."""

    address: str
    source: str
    availability_zone: Optional[str] = None


class _NoAddress(Exception):
    def __init__(self, message: str, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


def _call(method: str, url: str, headers: Mapping[str, str], timeout: float) -> Tuple[int, str]:
    request = urllib.request.Request(url, method=method, headers=dict(headers), data=b"" if method == "PUT" else None)
    # No proxy: metadata endpoints are link-local, and an HTTP proxy would answer for them.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read(_MAX_BODY + 1).decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, ""
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise _NoAddress(f"{method} {url}: {reason}") from error


def _json(body: str, url: str) -> Dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as error:
        raise _NoAddress(f"GET {url}: not JSON ({error})") from error
    if not isinstance(value, dict):
        raise _NoAddress(f"GET {url}: not a JSON object")
    return value


def _from_ecs(env: Mapping[str, str], timeout: float) -> DiscoveredAddress:
    uri = env.get("ECS_CONTAINER_METADATA_URI_V4", "")
    if not uri:
        raise _NoAddress("ECS_CONTAINER_METADATA_URI_V4 is not set (not an ECS task)")
    status, body = _call("GET", uri, {}, timeout)
    if status != 200:
        raise _NoAddress(f"GET {uri}: HTTP {status}")
    networks = _json(body, uri).get("Networks")
    if not isinstance(networks, list) or not networks:
        raise _NoAddress(f"GET {uri}: no Networks in the container metadata")
    network = networks[0] if isinstance(networks[0], dict) else {}
    mode = network.get("NetworkMode") if isinstance(network.get("NetworkMode"), str) else "unknown"
    if mode == "host":
        raise _NoAddress("network mode host: the task has the instance address")
    v4 = [canonical_address(a) for a in network.get("IPv4Addresses") or [] if isinstance(a, str) and ip_family(a) == 4]
    v6 = [canonical_address(a) for a in network.get("IPv6Addresses") or [] if isinstance(a, str) and ip_family(a) == 6 and "%" not in a]
    address = next((a for a in v4 + v6 if a), None)
    if mode == "bridge":
        raise _NoAddress(
            f"network mode bridge: the container's address {address or '(none)'} is on the Docker bridge, which the load balancer cannot reach; pass the instance's address and the mapped host port",
            final=True,
        )
    if address is None:
        raise _NoAddress(f"GET {uri}: no IPv4Addresses or IPv6Addresses in Networks[0] ({quote_untrusted(network)})")
    zone: Optional[str] = None
    try:
        status, body = _call("GET", f"{uri}/task", {}, timeout)
        value = _json(body, f"{uri}/task").get("AvailabilityZone") if status == 200 else None
        zone = value if isinstance(value, str) and value else None
    except _NoAddress:
        pass  # the zone is informational
    return DiscoveredAddress(address, "ecs-task-metadata", zone)


def _from_ec2(env: Mapping[str, str], timeout: float) -> DiscoveredAddress:
    if env.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        raise _NoAddress("disabled by AWS_EC2_METADATA_DISABLED=true")
    mode = env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "").lower()
    endpoint = (env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or (_IMDS_V6 if mode == "ipv6" else _IMDS_V4)).rstrip("/")
    status, token = _call("PUT", f"{endpoint}/latest/api/token", {"x-aws-ec2-metadata-token-ttl-seconds": "60"}, timeout)
    headers: Dict[str, str] = {}
    if status == 200 and token:
        headers["x-aws-ec2-metadata-token"] = token
    elif status in (403, 404, 405) and env.get("AWS_EC2_METADATA_V1_DISABLED", "").lower() != "true":
        pass  # an IMDSv1-only service is read without a token, as the AWS SDKs do
    else:
        raise _NoAddress(f"PUT {endpoint}/latest/api/token: HTTP {status}{' with an empty token' if status == 200 else ''}")

    def read(path: str) -> Optional[str]:
        url = f"{endpoint}/latest/meta-data/{path}"
        code, body = _call("GET", url, headers, timeout)
        if code == 404:
            return None
        if code == 401:
            raise _NoAddress(f"GET {url}: HTTP 401 ({'token refused' if headers else 'the instance requires IMDSv2 tokens'})")
        if code != 200:
            raise _NoAddress(f"GET {url}: HTTP {code}")
        return body.strip()

    text = read("local-ipv4")
    if text is None:
        text = read("ipv6")
    address = canonical_address(text) if text is not None and ip_family(text) in (4, 6) and "%" not in text else None
    if address is None or address.startswith("i-"):
        raise _NoAddress("neither local-ipv4 nor ipv6 in the instance metadata (HTTP 404)" if text is None else f"not an IP address: {quote_untrusted(text)}")
    zone: Optional[str] = None
    try:
        zone = read("placement/availability-zone") or None
    except _NoAddress:
        pass
    return DiscoveredAddress(address, "ec2-instance-metadata", zone)


_SOURCES: Dict[str, Callable[[Mapping[str, str], float], DiscoveredAddress]] = {"ecs-task-metadata": _from_ecs, "ec2-instance-metadata": _from_ec2}


def discover_address(*, env: Optional[Mapping[str, str]] = None, timeout: float = DEFAULT_DISCOVERY_TIMEOUT, sources: Sequence[str] = SOURCES) -> DiscoveredAddress:
    """The private address to register, from ECS task metadata v4, then EC2 IMDSv2.

    Raises ``AddressNotFoundError`` (code ``ADDRESS_NOT_FOUND``) listing where it looked and why
    each gave nothing; ``ConfigError`` for a bad option."""
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
        raise ConfigError(f"discover_address: timeout must be a number of seconds > 0, got {timeout!r}")
    if not sources or any(s not in _SOURCES for s in sources):
        raise ConfigError(f"discover_address: sources must be {' and/or '.join(_SOURCES)}, got {list(sources)!r}")
    environment = os.environ if env is None else env
    attempts: List[AddressDiscoveryAttempt] = []
    for source in sources:
        try:
            return _SOURCES[source](environment, float(timeout))
        except _NoAddress as error:
            attempts.append(AddressDiscoveryAttempt(source, str(error)))
            if error.final:
                break
    raise AddressNotFoundError(attempts)
