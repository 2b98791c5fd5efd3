"""The README's Flask agent for local mode, run as the README prints it (its port swapped for a
free one) from a directory holding `.agent-lb/state.json`: it joins, serves through the load
balancer, and on SIGTERM leaves rotation, releases its lease and exits 0; the load balancer then
answers its capability with ALB's HTML 503, as the README shows."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List

import boto3
import pytest

from conftest import REPO, wait_for
from lb_client import LOCAL_CREDENTIALS
from test_contract_agent import free_port

pytestmark = pytest.mark.local_mode


def readme_python(after: str) -> str:
    """The README's first Python block after ``after`` in its Python section."""
    section = (REPO / "README.md").read_text(encoding="utf-8").split("## Python agents", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)\n```", section.split(after, 1)[1], re.S)
    assert match
    return match.group(1) + "\n"


def readme_agent() -> str:
    return readme_python("**Against local mode**")


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
        # The README's trusted discovery, run as printed beside it, lists it once the registry has seen it healthy.
        (tmp_path / "discover.py").write_text(readme_python("**Trusted discovery**"))
        listed: List[str] = []

        def discovered() -> bool:
            run = subprocess.run([sys.executable, "discover.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
            listed[:] = [run.stdout + run.stderr]
            return run.returncode == 0 and f"127.0.0.1 {port} healthy {{}}" in run.stdout

        wait_for(discovered, 60, lambda: f"the README's discover_agents listing the agent healthy; it printed: {listed}", interval=0.5)
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(timeout=60)
    finally:
        if agent.poll() is None:
            agent.kill()
    ddb = boto3.client("dynamodb", region_name=local_state["region"], endpoint_url=local_state["dynamodbEndpoint"], **LOCAL_CREDENTIALS)
    assert code == 0, lines
    assert "Item" not in ddb.get_item(TableName=local_state["tableName"], Key={"target": {"S": f"127.0.0.1:{port}"}}, ConsistentRead=True)
    wait_for(lambda: any(line.rstrip().endswith(", released, exit 0") for line in lines), 10, lambda: f"the leave's last line; output: {lines}")
    assert any("release done" in line for line in lines), lines
    # It was vision's last agent: the load balancer answers vision's requests itself with ALB's HTML 503, as the README shows.
    seen: List[str] = []

    def answered_by_the_load_balancer() -> bool:
        try:
            with urllib.request.urlopen(f"{local_state['loadBalancerEndpoint']}/agents/vision/hello", timeout=5) as r:
                seen[:] = [f"{r.status} {r.read().decode()!r}"]
        except urllib.error.HTTPError as e:
            seen[:] = [f"{e.code} {e.read().decode()!r}"]
            return e.code == 503 and "<title>503 Service Temporarily Unavailable</title>" in seen[0]
        return False

    wait_for(answered_by_the_load_balancer, 60, lambda: f"ALB's 503 page for vision once its last agent left; last answer: {seen}", interval=0.2)
