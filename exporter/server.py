"""HTTP: /metrics (Prometheus text or OpenMetrics), a landing page, /healthz and /readyz."""

from __future__ import annotations

import contextlib
import gzip
import html
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from . import __version__

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request: a slow client cannot hold a thread


class Site:
    """What the handler serves; ready() returns (ok, reasons) for /readyz."""

    def __init__(
        self,
        registry: CollectorRegistry,
        sources: list[tuple[str, str, str]],
        ready: Callable[[], tuple[bool, list[str]]],
        openmetrics_registry: CollectorRegistry | None = None,
    ):
        self.registry = registry  # classic text format
        self.openmetrics_registry = openmetrics_registry or registry  # with _created times
        self.sources = sources  # (name, format, location)
        self.ready = ready

    def landing(self) -> bytes:
        rows = "".join(
            f"<tr><td>{html.escape(n)}</td><td>{html.escape(f)}</td><td><code>{html.escape(p)}</code></td></tr>"
            for n, f, p in self.sources
        )
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>mailcode-exporter</title></head><body>"
            f"<h1>mailcode-exporter</h1><p>Version {html.escape(__version__)}</p>"
            "<p><a href='metrics'>Metrics</a> &middot; <a href='healthz'>healthz</a> &middot; "
            "<a href='readyz'>readyz</a></p>"
            f"<h2>Sources</h2><table><tr><th>name</th><th>format</th><th>location</th></tr>{rows}</table>"
            "</body></html>"
        ).encode()


class Handler(BaseHTTPRequestHandler):
    server_version = f"mailcode-exporter/{__version__}"
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        site: Site = self.server.site  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept"))
            openmetrics = content_type.startswith("application/openmetrics-text")
            body = encoder(site.openmetrics_registry if openmetrics else site.registry)
            if "gzip" in (self.headers.get("Accept-Encoding") or ""):
                self._send(200, content_type, gzip.compress(body, 1), {"Content-Encoding": "gzip"})
            else:
                self._send(200, content_type, body)
        elif path == "/":
            self._send(200, "text/html; charset=utf-8", site.landing())
        elif path == "/healthz":
            self._send(200, "text/plain; charset=utf-8", b"ok\n")
        elif path == "/readyz":
            ok, reasons = site.ready()
            text = "ready\n" if ok else "not ready:\n" + "".join(f"- {r}\n" for r in reasons)
            self._send(200 if ok else 503, "text/plain; charset=utf-8", text.encode())
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found; see /metrics\n")

    def do_HEAD(self) -> None:  # noqa: N802
        self._head_only = True
        self.do_GET()

    def _send(self, code: int, content_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not getattr(self, "_head_only", False):
            self.wfile.write(body)

    def _refuse(self) -> None:
        self._send(405, "text/plain; charset=utf-8", b"method not allowed\n", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        log.debug("http %s " + format, self.client_address[0], *args)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, site: Site):
        self.site = site
        if ":" in host or host == "":
            self.address_family = socket.AF_INET6
        try:
            super().__init__((host or "::", port), Handler)
        except OSError:
            if host != "":
                raise
            self.address_family = socket.AF_INET  # no IPv6 here: all IPv4 interfaces
            super().__init__(("0.0.0.0", port), Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # also accept IPv4
        super().server_bind()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        thread.start()
        return thread
