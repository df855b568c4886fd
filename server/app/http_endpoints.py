"""The operations HTTP endpoints, on a port of their own: ``/healthz``, ``/readyz`` and ``/metrics``.

``/healthz`` answers 200 while the process serves at all; ``/readyz`` answers 200 only when every readiness check
passes (the catalog answers, the gateway is not draining) and 503 naming the failed check otherwise, so a load
balancer stops sending new work before the process goes; ``/metrics`` is Prometheus' text format.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

log = logging.getLogger("nexus_flight.http")

#: A readiness check: None when ready, else why not.
ReadinessCheck = Callable[[], str | None]


class OperationsServer:
    """Serves the three endpoints on a background thread."""

    def __init__(self, host: str, port: int, metrics: Callable[[], bytes], checks: list[ReadinessCheck]) -> None:
        self.metrics = metrics
        self.checks = checks
        handler = _handler_for(self)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="nexus-http", daemon=True)

    @property
    def port(self) -> int:
        """The port bound (useful with port 0)."""
        return self._server.server_address[1]

    def start(self) -> OperationsServer:
        """Start serving."""
        self._thread.start()
        return self

    def not_ready(self) -> str | None:
        """Why the gateway is not ready, or None."""
        for check in self.checks:
            try:
                reason = check()
            except Exception as exc:  # a failing check means not ready, never a crashed endpoint
                reason = f"readiness check failed: {type(exc).__name__}"
            if reason:
                return reason
        return None

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


def _handler_for(ops: OperationsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's API
            path = self.path.split("?", 1)[0]
            try:
                self._answer(path)
            except Exception as exc:  # an answer that cannot be made is a 500 naming why, never a dropped connection
                log.warning("%s could not be answered: %s", path, type(exc).__name__,
                            exc_info=log.isEnabledFor(logging.DEBUG))
                self._send(500, f"{path} could not be answered ({type(exc).__name__})\n".encode())

        def _answer(self, path: str) -> None:
            if path == "/healthz":
                self._send(200, b"ok\n")
            elif path == "/readyz":
                reason = ops.not_ready()
                self._send(503, f"not ready: {reason}\n".encode()) if reason else self._send(200, b"ready\n")
            elif path == "/metrics":
                self._send(200, ops.metrics(), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b"not found: /healthz, /readyz and /metrics are served here\n")

        def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's API
            log.debug("%s %s", self.address_string(), format % args)

    return Handler
