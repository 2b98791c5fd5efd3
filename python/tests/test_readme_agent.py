"""The README's Flask agent for local mode, run as the README prints it (its port swapped for a
free one) from a directory holding `.agent-lb/state.json`: it joins, serves through the load
balancer, and on SIGTERM leaves rotation, releases its lease and exits 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any, Dict, List

import boto3
import pytest

from conftest import REPO, wait_for
from lb_client import LOCAL_CREDENTIALS
from test_contract_agent import free_port

pytestmark = pytest.mark.local_mode


def readme_agent() -> str:
    section = (REPO / "README.md").read_text(encoding="utf-8").split("## Python agents", 1)[1].split("\n## ", 1)[0]
    local = section.split("**Against local mode**", 1)[1]
    match = re.search(r"```python\n(.*?)\n```", local, re.S)
    assert match
    return match.group(1) + "\n"


def test_the_readme_flask_agent_joins_serves_and_leaves(local_state: Dict[str, Any], tmp_path: Path) -> None:
    port = free_port()
    source = readme_agent().replace("8081", str(port))
    (tmp_path / ".agent-lb").mkdir()
    (tmp_path / ".agent-lb" / "state.json").write_text(__import__("json").dumps(local_state))
    (tmp_path / "agent.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # no credentials: the lease uses local ones
    agent = subprocess.Popen([sys.executable, "agent.py"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: List[str] = []
    threading.Thread(target=lambda: lines.extend(iter(agent.stdout.readline, "")), daemon=True).start()  # type: ignore[union-attr]

    def through_lb(path: str = "/agents/vision/hello", headers: Dict[str, str] = {}) -> str:
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{local_state['loadBalancerEndpoint']}{path}", headers=headers), timeout=5) as r:
                return r.read().decode()
        except OSError:
            return ""

    try:
        wait_for(lambda: f'"py-{port}"' in through_lb(), 60, lambda: f"the README agent answering through the load balancer; output: {lines}")
        # Routed by header, the request keeps the client's own path: the agent answers it too (the group may hold other agents).
        wait_for(lambda: f'"py-{port}"' in through_lb("/hello", {"X-Agent-Capability": "vision"}), 60, lambda: f"the README agent answering a header-routed request; output: {lines}")
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(timeout=60)
    finally:
        if agent.poll() is None:
            agent.kill()
    ddb = boto3.client("dynamodb", region_name=local_state["region"], endpoint_url=local_state["dynamodbEndpoint"], **LOCAL_CREDENTIALS)
    assert code == 0, lines
    assert "Item" not in ddb.get_item(TableName=local_state["tableName"], Key={"target": {"S": f"127.0.0.1:{port}"}}, ConsistentRead=True)
    assert any("release done" in line for line in lines), lines
