"""`/healthz` and Prometheus `/metrics` over plain HTTP, served from one named thread.

`/healthz` answers 200 only while the inference worker is alive and the policy is warmed up, so
an orchestrator never routes robots to a server that would accept sessions and answer nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

from policylink.server.metrics import ServerMetrics


class HealthServer:
    """Owned by `ServerApp`; `stop()` shuts the listener down and joins the thread."""

    def __init__(
        self,
        port: int,
        healthy: Callable[[], bool],
        metrics: ServerMetrics,
        host: str = "127.0.0.1",
    ) -> None:
        handler = _handler_class(healthy, metrics)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="policylink-health", daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


def _handler_class(
    healthy: Callable[[], bool], metrics: ServerMetrics
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                ok = healthy()
                self._send(200 if ok else 503, b"ok\n" if ok else b"unavailable\n", "text/plain")
            elif self.path == "/metrics":
                self._send(200, metrics.exposition(), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b"not found: try /healthz or /metrics\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Probes arrive every few seconds; logging each would drown the audit log."""

    return Handler
