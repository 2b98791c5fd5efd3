"""The complete raw-boto3 agent of docs/lease-contract.md, run exactly as the page prints it,
against a running `agent-lb local`: it serves through the load balancer in the capability the
deployment routes while the registry tells it why it refuses the other, and on SIGTERM leaves
rotation under load without a failed request, then exits 0 with its lease deleted."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List

import boto3
import pytest

from agent_lb import AgentLease
from conftest import REPO, wait_for
from lb_client import LOCAL_CREDENTIALS, AgentServer, Load, health_path_of

pytestmark = pytest.mark.local_mode
WAIT = 60.0


def agent_source() -> str:
    """The first ```python block under the page's "A complete agent in Python with raw boto3"."""
    page = (REPO / "docs" / "lease-contract.md").read_text(encoding="utf-8")
    section = page.split("## A complete agent in Python with raw boto3", 1)[1]
    match = re.search(r"```python\n(.*?)\n```", section, re.S)
    assert match, "no python block in the section"
    return match.group(1) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_pages_agent_serves_learns_its_rejection_and_leaves_under_load_without_a_failed_request(local_state: Dict[str, Any], tmp_path: Path) -> None:
    health = health_path_of(local_state, "vision")
    (tmp_path / "agent.py").write_text(agent_source(), encoding="utf-8")
    port = free_port()
    env = {
        **os.environ,
        "LEASE_TABLE": local_state["tableName"],
        "AGENT_ADDRESS": "127.0.0.1",
        "AGENT_PORT": str(port),
        "CAPABILITIES": "ocr,vision",
        "HEALTH_PATH": health,
        "DYNAMODB_ENDPOINT": local_state["dynamodbEndpoint"],
        "AWS_REGION": local_state["region"],
        "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
    }
    agent = subprocess.Popen([sys.executable, str(tmp_path / "agent.py")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: List[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(agent.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    # A second agent (the SDK's) in vision, so the group is never empty while the page's agent leaves.
    other = AgentServer("py-other", health)
    lease = AgentLease(
        local_state["tableName"], other.port, ["vision"], address="127.0.0.1", allow_loopback=True,
        endpoint_url=local_state["dynamodbEndpoint"], region=local_state["region"], ttl=10,
    )
    try:
        lease.acquire()
        lease.wait_until_serving(timeout=WAIT)
        load = Load(local_state["loadBalancerEndpoint"], "vision")
        mine = f"127.0.0.1:{port}"
        wait_for(lambda: any(r[1] == "py-other" for r in load.results), WAIT, "the other agent answering")
        wait_for(lambda: any(r[1] == mine for r in load.results), WAIT, lambda: f"the page's agent answering; its output: {lines}")
        wait_for(lambda: any(line.startswith("rejected: unknown-capability") for line in lines), WAIT, "the rejection line")

        agent.send_signal(signal.SIGTERM)
        code = agent.wait(timeout=60)
        before = len(load.results)
        wait_for(lambda: len(load.results) >= before + 20, WAIT, "requests after it left")
        load.stop()
    finally:
        if agent.poll() is None:
            agent.kill()
        lease.release()
        other.stop()

    ddb = boto3.client("dynamodb", region_name=local_state["region"], endpoint_url=local_state["dynamodbEndpoint"], **LOCAL_CREDENTIALS)
    assert code == 0, lines
    assert "Item" not in ddb.get_item(TableName=local_state["tableName"], Key={"target": {"S": mine}}, ConsistentRead=True)
    assert load.failed() == []
    assert any('"ocr" is not routed by this deployment' in line for line in lines), lines
    assert lines[-1].strip() == "left rotation, lease released", lines
