"""HTTP: /metrics (Prometheus text or OpenMetrics), a landing page, /healthz and /readyz; TLS and auth.

Everything a client can make the server hold is bounded: the number of connections served at once
(MAX_CONNECTIONS; beyond it a connection is answered 503 at once, or closed under TLS), the time a
request head may take to arrive (REQUEST_TIMEOUT, for the whole head, not per byte), its size
(MAX_REQUEST_LINE, MAX_HEAD_BYTES) and the time a response may take to be taken (WRITE_TIMEOUT).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import html
import http.client
import io
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from . import __version__
from .webconfig import BasicAuth, WebConfigFile, WebSettings

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0  # seconds for a whole request head or a TLS handshake; also the keep-alive idle time
WRITE_TIMEOUT = 30.0  # seconds a client may take to take a response
MAX_CONNECTIONS = 64  # connections served at once; more are turned away at once
MAX_REQUEST_LINE = 8192  # bytes; longer: 414
MAX_HEAD_BYTES = 32768  # bytes of request line and headers together; more: 431

# Why the server turned a connection or a request away (label values of mail_exporter_http_rejected_total).
REJECT_REASONS = ("limit", "timeout", "oversize", "tls", "client_san", "auth", "rate")

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 31\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many connections; try again\n"
)


class Site:
    """What the handler serves; ready() returns (ok, reasons) for /readyz."""

    def __init__(
        self,
        render: Callable[[bool], bytes],
        sources: list[tuple[str, str, str]],
        ready: Callable[[], tuple[bool, list[str]]],
    ):
        self.render = render  # render(openmetrics) -> the exposition
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


class HTTPStats:
    """Counts of what the server turned away, and the connections being served."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rejected = dict.fromkeys(REJECT_REASONS, 0)
        self.open_connections = 0

    def reject(self, reason: str) -> None:
        with self._lock:
            self.rejected[reason] += 1

    def opened(self, n: int) -> None:
        with self._lock:
            self.open_connections += n


class HTTPCollector(Collector):
    """The HTTP server's own metrics, and the web configuration's reloads when there is one."""

    def __init__(self, stats: HTTPStats, web: WebConfigFile | None, max_connections: int):
        self._stats, self._web, self._max = stats, web, max_connections

    def values(self) -> tuple:
        """What collect() shows, for a cached rendering to compare."""
        web = (tuple(sorted(self._web.reloads.items())), self._web.last_reload_ok) if self._web else None
        return tuple(self._stats.rejected.values()), self._stats.open_connections, web

    def collect(self) -> Iterator[Metric]:
        rejected = CounterMetricFamily(
            "mail_exporter_http_rejected",
            "Connections or requests the HTTP server turned away: limit (too many connections), timeout "
            "(request not sent in time), oversize (request too large), tls (failed handshake), client_san "
            "(client certificate not allowed), auth (401), rate (429).",
            labels=("reason",),
        )
        for reason, n in self._stats.rejected.items():
            rejected.add_metric((reason,), n)
        yield rejected
        yield GaugeMetricFamily(
            "mail_exporter_http_connections", "HTTP connections being served.", self._stats.open_connections
        )
        yield GaugeMetricFamily(
            "mail_exporter_http_connections_max", "HTTP connections served at once at most.", self._max
        )
        if self._web is None:
            return
        reloads = CounterMetricFamily(
            "mail_exporter_web_config_reloads",
            "Reloads of the web configuration file after it (or a certificate it names) changed, by result.",
            labels=("result",),
        )
        for result, n in sorted(self._web.reloads.items()):
            reloads.add_metric((result,), n)
        yield reloads
        yield GaugeMetricFamily(
            "mail_exporter_web_config_last_reload_successful",
            "1 when the last load of the web configuration file succeeded, 0 when the old one is kept.",
            self._web.last_reload_ok,
        )


class _HeadReader(io.RawIOBase):
    """The connection as a raw stream that enforces the handler's deadline and head budget on each read."""

    def __init__(self, sock: socket.socket, handler: Handler):
        self._sock = sock
        self._handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - io's signature
        h = self._handler
        if h.head_budget <= 0:
            raise http.client.LineTooLong("request head")
        remaining = h.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request did not arrive in time")
        self._sock.settimeout(remaining)
        n = self._sock.recv_into(buffer)
        h.head_budget -= n
        return n


class Handler(BaseHTTPRequestHandler):
    server_version = f"mailcode-exporter/{__version__}"
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # even an answer to garbage starts with a status line
    timeout = REQUEST_TIMEOUT
    server: Server

    deadline = 0.0
    head_budget = MAX_HEAD_BYTES
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK hold the body back ~40 ms on every keep-alive scrape.
    disable_nagle_algorithm = True
    _head_only = False
    _linger = False
    _extra_headers: tuple[tuple[str, str], ...] = ()

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # replaced by a reader that bounds the whole head, not each recv
        self.rfile = io.BufferedReader(_HeadReader(self.connection, self))

    def handle_one_request(self) -> None:
        """Read one request within the deadline and the size limits, check access, answer it."""
        self._head_only = False
        self.deadline = time.monotonic() + REQUEST_TIMEOUT
        self.head_budget = MAX_HEAD_BYTES
        try:
            self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if len(self.raw_requestline) > MAX_REQUEST_LINE:
                self.requestline = self.request_version = self.command = ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            if not self.parse_request():
                return  # an error has been sent (400, 431, 505)
        except TimeoutError:
            self.server.stats.reject("timeout")
            self.close_connection = True
            return
        except http.client.LineTooLong:
            self.requestline = self.request_version = self.command = ""
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
            return
        self.connection.settimeout(WRITE_TIMEOUT)
        web = self.server.web.current() if self.server.web is not None else None
        self._extra_headers = web.headers if web is not None else ()
        method = getattr(self, "do_" + self.command, None)
        if method is None:
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, f"unsupported method {self.command!r}")
            return
        if web is not None and not self._allowed(web):
            return
        method()
        self.wfile.flush()

    def _allowed(self, web: WebSettings) -> bool:
        if web.limiter is not None and not web.limiter.allow():
            self.server.stats.reject("rate")
            self._send(429, "text/plain; charset=utf-8", b"too many requests\n", {"Retry-After": "1"})
            return False
        if web.auth is not None and not self._authenticated(web.auth):
            self.server.stats.reject("auth")
            self._send(
                401,
                "text/plain; charset=utf-8",
                b"unauthorized\n",
                {"WWW-Authenticate": 'Basic realm="mailcode-exporter", charset="UTF-8"'},
            )
            return False
        return True

    def _authenticated(self, auth: BasicAuth) -> bool:
        scheme, _, token = (self.headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            raw = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = raw.partition(b":")
        if not sep:
            return False
        return auth.check(user.decode("utf-8", "surrogateescape"), password)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        if code in (HTTPStatus.REQUEST_URI_TOO_LONG, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE):
            self.server.stats.reject("oversize")
        self.connection.settimeout(WRITE_TIMEOUT)
        self._linger = True
        super().send_error(code, message, explain)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self._linger:
                self._drain()

    def _drain(self) -> None:
        """After an error, read (a bounded amount of) what the client still sends before closing.

        Closing with unread input makes the kernel reset the connection, and the client may then lose
        the error response it has not read yet.
        """
        deadline = time.monotonic() + 2.0
        left = 1 << 20
        with contextlib.suppress(OSError, ValueError):
            self.connection.shutdown(socket.SHUT_WR)
            while left > 0 and (remaining := deadline - time.monotonic()) > 0:
                self.connection.settimeout(remaining)
                data = self.connection.recv(65536)
                if not data:
                    break
                left -= len(data)

    def end_headers(self) -> None:
        for name, text in self._extra_headers:
            self.send_header(name, text)
        super().end_headers()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        site: Site = self.server.site
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            _, content_type = choose_encoder(self.headers.get("Accept"))
            openmetrics = content_type.startswith("application/openmetrics-text")
            body = site.render(openmetrics)
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
        if not self._head_only:
            self.wfile.write(body)

    def _refuse(self) -> None:
        self._send(405, "text/plain; charset=utf-8", b"method not allowed\n", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        log.debug("http %s " + format, self.client_address[0], *args)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # shutdown does not wait for idle keep-alive connections: each ends by itself
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        host: str,
        port: int,
        site: Site,
        web: WebConfigFile | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ):
        self.site = site
        self.web = web
        self.stats = HTTPStats()
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
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

    def collector(self) -> HTTPCollector:
        """The server's own metrics, for the daemon's registries."""
        return HTTPCollector(self.stats, self.web, self.max_connections)

    def process_request(self, request: socket.socket, client_address: tuple) -> None:
        """Serve the connection in a thread of its own while a slot is free; otherwise turn it away now."""
        if not self._slots.acquire(blocking=False):
            self.stats.reject("limit")
            if self.web is None or self.web.settings.tls is None:
                with contextlib.suppress(OSError):
                    request.setblocking(False)
                    request.send(_BUSY)
            self.shutdown_request(request)
            return
        self.stats.opened(1)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: tuple) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        self.stats.opened(-1)
        self._slots.release()

    def finish_request(self, request: socket.socket, client_address: tuple) -> None:
        """In the connection's thread: the TLS handshake (bounded) and the client certificate check."""
        web = self.web.current() if self.web is not None else None
        if web is None or web.tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(REQUEST_TIMEOUT)
        try:
            conn = web.tls.wrap_socket(request, server_side=True)
        except (OSError, ValueError) as exc:
            self.stats.reject("timeout" if isinstance(exc, TimeoutError) else "tls")
            log.debug("http %s: TLS handshake failed: %s", client_address[0], exc)
            return
        try:
            if not web.san_allowed(conn.getpeercert()):
                self.stats.reject("client_san")
                log.debug("http %s: client certificate has no allowed SAN", client_address[0])
                return
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def handle_error(self, request: object, client_address: tuple) -> None:
        """A client going away mid-request is routine (no traceback on stderr); anything else is logged."""
        if isinstance(sys.exc_info()[1], OSError):
            log.debug("http %s: connection ended with an error", client_address[0], exc_info=True)
        else:
            log.error("http %s: unexpected error while serving", client_address[0], exc_info=True)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        thread.start()
        return thread
