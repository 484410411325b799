"""`/healthz` and Prometheus `/metrics` over plain HTTP, served from one named thread.

`/healthz` answers 200 only while the inference worker is alive and the policy is warmed up, so
an orchestrator never routes robots to a server that would accept sessions and answer nothing.

Whatever reaches the port, the cost is bounded: at most `MAX_CONNECTIONS` requests are served at
once (more are closed unanswered), a client has `REQUEST_TIMEOUT_S` to send its request, and a
client that hangs up mid-answer costs nothing but a debug line, and /metrics is rendered at most
once every `METRICS_MAX_AGE_S` however often it is asked for.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from policylink.server.metrics import ServerMetrics

log = logging.getLogger("policylink.server")

MAX_CONNECTIONS = 64
REQUEST_TIMEOUT_S = 2.0
# How old an answer to /metrics may be. Rendering every series takes a millisecond or more of
# the interpreter, which the request path shares; a scraper asks every few seconds, so a flood
# of requests is answered from one rendering per interval instead of stalling the robots'.
METRICS_MAX_AGE_S = 0.5


class _BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per request, but never more than `MAX_CONNECTIONS` of them."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up or stalled is its own problem; anything else is logged."""
        log.debug("health port: request from %s failed", client_address, exc_info=True)


class _RenderedMetrics:
    """The latest /metrics rendering, redone only once it is older than METRICS_MAX_AGE_S."""

    def __init__(self, metrics: ServerMetrics, clock: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._clock = clock
        # Guards the rendering and its time: concurrent requests wait for one rendering.
        self._lock = threading.Lock()
        self._body = b""
        self._rendered_s = -math.inf

    def body(self) -> bytes:
        with self._lock:
            now = self._clock()
            if now - self._rendered_s >= METRICS_MAX_AGE_S:
                self._body, self._rendered_s = self._metrics.exposition(), now
            return self._body


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
        self._server = _BoundedHTTPServer((host, port), handler)
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
    rendered = _RenderedMetrics(metrics)

    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT_S

        def do_GET(self) -> None:
            if self.path == "/healthz":
                ok = healthy()
                self._send(200 if ok else 503, b"ok\n" if ok else b"unavailable\n", "text/plain")
            elif self.path == "/metrics":
                self._send(200, rendered.body(), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b"not found: try /healthz or /metrics\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            with contextlib.suppress(ConnectionError, socket.timeout):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Probes arrive every few seconds; logging each would drown the audit log."""

    return Handler
