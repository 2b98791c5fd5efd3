"""Address discovery against metadata services of the test's own (HTTP servers on 127.0.0.1 that
answer as ECS task metadata v4 and EC2 IMDSv2 do)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, Tuple

import pytest

from agent_lb import AddressNotFoundError, AgentLease, discover_address
from conftest import FakeTable

Routes = Dict[Tuple[str, str], Tuple[int, str]]


@pytest.fixture
def metadata() -> Iterator[Tuple[str, Routes, list]]:
    """A server answering `routes[(method, path)]` (status, body); requests are logged with their token header."""
    routes: Routes = {}
    seen: list = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append((self.command, self.path, self.headers.get("x-aws-ec2-metadata-token")))
            status, body = routes.get((self.command, self.path), (404, ""))
            data = body.encode()
            self.send_response(status)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _answer
        do_PUT = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", routes, seen
    server.shutdown()
    server.server_close()


def test_ecs_task_metadata_gives_the_task_address_and_zone(metadata: Any) -> None:
    url, routes, _ = metadata
    routes[("GET", "/v4/c")] = (200, json.dumps({"Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": ["10.0.3.17"]}]}))
    routes[("GET", "/v4/c/task")] = (200, json.dumps({"AvailabilityZone": "eu-west-1a"}))
    found = discover_address(env={"ECS_CONTAINER_METADATA_URI_V4": f"{url}/v4/c"})
    assert (found.address, found.source, found.availability_zone) == ("10.0.3.17", "ecs-task-metadata", "eu-west-1a")


def test_an_ipv6_only_task_in_canonical_form(metadata: Any) -> None:
    url, routes, _ = metadata
    routes[("GET", "/v4/c")] = (200, json.dumps({"Networks": [{"NetworkMode": "awsvpc", "IPv6Addresses": ["FD00:EC2:0::17"]}]}))
    assert discover_address(env={"ECS_CONTAINER_METADATA_URI_V4": f"{url}/v4/c"}).address == "fd00:ec2::17"


def test_bridge_mode_stops_the_search(metadata: Any) -> None:
    url, routes, seen = metadata
    routes[("GET", "/v4/c")] = (200, json.dumps({"Networks": [{"NetworkMode": "bridge", "IPv4Addresses": ["172.17.0.2"]}]}))
    with pytest.raises(AddressNotFoundError) as caught:
        discover_address(env={"ECS_CONTAINER_METADATA_URI_V4": f"{url}/v4/c", "AWS_EC2_METADATA_SERVICE_ENDPOINT": url})
    assert [a.source for a in caught.value.attempts] == ["ecs-task-metadata"]
    assert "Docker bridge" in str(caught.value)
    assert all(path.startswith("/v4/") for _, path, _ in seen)


def test_imdsv2_with_a_token(metadata: Any) -> None:
    url, routes, seen = metadata
    routes[("PUT", "/latest/api/token")] = (200, "tok-1")
    routes[("GET", "/latest/meta-data/local-ipv4")] = (200, "10.0.9.9\n")
    routes[("GET", "/latest/meta-data/placement/availability-zone")] = (200, "eu-west-1b")
    found = discover_address(env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": url})
    assert (found.address, found.source, found.availability_zone) == ("10.0.9.9", "ec2-instance-metadata", "eu-west-1b")
    assert [token for method, _, token in seen if method == "GET"] == ["tok-1", "tok-1"]


def test_nothing_found_names_every_place_it_looked(metadata: Any) -> None:
    url, _, _ = metadata
    with pytest.raises(AddressNotFoundError) as caught:
        discover_address(env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": url, "AWS_EC2_METADATA_V1_DISABLED": "true"}, timeout=0.5)
    assert caught.value.code == "ADDRESS_NOT_FOUND"
    assert str(caught.value).startswith("no address to register: pass one explicitly (tried ecs-task-metadata: ECS_CONTAINER_METADATA_URI_V4 is not set")
    assert [a.source for a in caught.value.attempts] == ["ecs-task-metadata", "ec2-instance-metadata"]


def test_agent_lease_without_an_address_finds_it_and_notes_the_zone(metadata: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url, routes, _ = metadata
    routes[("GET", "/v4/c")] = (200, json.dumps({"Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": ["10.0.3.17"]}]}))
    routes[("GET", "/v4/c/task")] = (200, json.dumps({"AvailabilityZone": "eu-west-1a"}))
    monkeypatch.setenv("ECS_CONTAINER_METADATA_URI_V4", f"{url}/v4/c")
    table = FakeTable()
    lease = AgentLease("leases", 8080, ["vision"], dynamodb=table)
    lease.acquire()
    assert lease.target == "10.0.3.17:8080" and lease.discovered_address is not None
    assert table.only()["metadata"] == {"M": {"zone": {"S": "eu-west-1a"}}}
    lease.release()


def test_quote_untrusted_escapes_what_json_leaves_raw():
    """C1 controls (a one-character CSI), line separators, bidi overrides, zero-width characters."""
    from agent_lb.address import quote_untrusted

    quoted = quote_untrusted("x\u009b2J\u202eevil\u2028y\u200bz")
    assert quoted == '"x\\u009b2J\\u202eevil\\u2028y\\u200bz"'
    assert quote_untrusted("ünï 日本") == '"ünï 日本"'
