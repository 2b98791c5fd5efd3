"""Clients and servers of the local-mode tests: an agent's HTTP server on 127.0.0.1 and a steady
load through the load balancer that records who answered and every failure."""

from __future__ import annotations

import http.client
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional
from urllib.parse import urlparse

import boto3

LOCAL_CREDENTIALS = {"aws_access_key_id": "agentlblocal", "aws_secret_access_key": "agentlblocal"}


def health_path_of(local_state: Dict[str, Any], capability: str) -> str:
    """What a capability's group checks, read from its target group as any ELBv2 client would."""
    elbv2 = boto3.client("elbv2", region_name=local_state["region"], endpoint_url=local_state["elbv2Endpoint"], **LOCAL_CREDENTIALS)
    return elbv2.describe_target_groups(TargetGroupArns=[local_state["targetGroups"][capability]])["TargetGroups"][0]["HealthCheckPath"]


class AgentServer:
    """An HTTP/1.1 server on 127.0.0.1 (keep-alive, as a load balancer's pool expects) that
    answers the health check path with 200 and every other path with its name."""

    def __init__(self, name: str, health_path: str) -> None:
        self.name = name
        self.served = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path == health_path:
                    body = b"ok"
                else:
                    server.served += 1
                    body = json.dumps({"agent": name, "path": self.path}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _who(body: bytes) -> str:
    """The answering agent: `{"agent": name}` from the tests' servers, the first word from others."""
    text = body.decode("utf-8", "replace")
    if text.startswith("{"):
        return str(json.loads(text).get("agent"))
    return text.split(" ", 1)[0]


class Load:
    """Requests to a capability through the load balancer, one after another on one keep-alive
    connection per thread, until stopped; every status and who answered is kept."""

    def __init__(self, endpoint: str, capability: str, threads: int = 2) -> None:
        url = urlparse(endpoint)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.capability = capability
        self.results: List[Any] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        conn: Optional[http.client.HTTPConnection] = None
        while not self._stop.is_set():
            try:
                conn = conn or http.client.HTTPConnection(self.host, self.port, timeout=10)
                conn.request("GET", f"/agents/{self.capability}/work")
                response = conn.getresponse()
                body = response.read()
                agent = _who(body) if response.status == 200 else body[:200]
                self.results.append((response.status, agent))
            except (OSError, http.client.HTTPException, ValueError) as error:
                self.results.append(("error", repr(error)))
                conn = None
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)

    def failed(self) -> List[Any]:
        return [r for r in self.results if r[0] != 200]


