"""The HTTP server under hostile or heavy use: unknown paths, slow and oversized requests, the
connection limit, and many concurrent scrapes while the log grows at full speed.

Waits are bounded (a generous upper bound, never an assertion about speed); only loopback traffic.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from helpers import Daemon, http_get, samples, value
from prometheus_client.parser import text_string_to_metric_families

from exporter import server as server_module
from exporter.catalogue import Catalogue
from exporter.metrics import Counts, Exposition
from exporter.server import MAX_HEAD_BYTES, MAX_REQUEST_LINE, Server, Site

EOF_BOUND = 30.0  # seconds we wait at most for the server to close a connection it should close


@contextlib.contextmanager
def serving(max_connections: int = server_module.MAX_CONNECTIONS) -> Iterator[Server]:
    catalogue = Catalogue.load()
    exposition = Exposition(Counts(), lambda: catalogue, {})
    site = Site(exposition.render, [], lambda: (True, []))
    server = Server("127.0.0.1", 0, site, max_connections=max_connections)
    exposition.register_live(server.collector())
    thread = server.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(server.server_address[:2], timeout=EOF_BOUND)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closed)."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def raw_request(server: Server, request: bytes) -> bytes:
    with connect(server) as sock:
        sock.sendall(request)
        return read_until_closed(sock)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def test_unknown_paths_404_and_other_methods_405():
    with serving() as server:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        for path in ("/nope", "/metrics/extra", "/metricsx", "/../../etc/passwd", "/%00", "/metrics/../x"):
            assert http_get(base + path)[0] == 404, path
        assert http_get(base + "/metrics")[0] == 200
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
        conn.request("POST", "/metrics", body=b"x")
        response = conn.getresponse()
        assert response.status == 405 and response.getheader("Allow") == "GET, HEAD"
        conn.close()
        response = raw_request(server, b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(response) == 501


def test_head_then_get_on_one_connection_gets_a_body():
    with serving() as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
        conn.request("HEAD", "/metrics")
        head = conn.getresponse()
        assert head.status == 200 and head.read() == b""
        conn.request("GET", "/metrics")  # the same kept-alive connection
        body = conn.getresponse().read()
        assert b"mail_responses_total" in body
        conn.close()


def test_half_a_request_is_closed_by_the_server():
    """A client that sends part of its request and then nothing: the server hangs up (default timeout)."""
    with serving() as server:
        with connect(server) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: loc")
            assert read_until_closed(sock) == b""  # recv would raise TimeoutError after EOF_BOUND
        deadline = time.monotonic() + EOF_BOUND
        while server.stats.rejected["timeout"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.stats.rejected["timeout"] == 1
        assert http_get(f"http://127.0.0.1:{server.server_address[1]}/healthz")[0] == 200


def test_a_trickling_client_cannot_keep_its_request_open(monkeypatch):
    """One byte every 0.2 s never completes a head: the deadline covers the whole head, not each read."""
    monkeypatch.setattr(server_module, "REQUEST_TIMEOUT", 2.0)
    with serving() as server, connect(server) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n")
        stop = threading.Event()

        def trickle() -> None:
            with contextlib.suppress(OSError):
                while not stop.wait(0.2):
                    sock.send(b"X")

        thread = threading.Thread(target=trickle, name="trickle")
        thread.start()
        try:
            assert read_until_closed(sock) == b""
        finally:
            stop.set()
            thread.join(timeout=10)
        assert server.stats.rejected["timeout"] == 1


def test_an_idle_keep_alive_connection_is_closed(monkeypatch):
    monkeypatch.setattr(server_module, "REQUEST_TIMEOUT", 2.0)
    with serving() as server, connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        response = read_until_closed(sock)  # served, then closed once idle
        assert status_of(response) == 200 and response.endswith(b"ok\n")


@pytest.mark.parametrize(
    "request_bytes,expected",
    [
        (b"GET /" + b"a" * (MAX_REQUEST_LINE + 10) + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /metrics HTTP/1.1\r\n" + b"X-Big: " + b"b" * (MAX_HEAD_BYTES + 10) + b"\r\n\r\n", 431),
        (
            b"GET /metrics HTTP/1.1\r\n"
            + b"".join(b"X-%d: %s\r\n" % (i, b"c" * 900) for i in range(60))
            + b"\r\n",
            431,
        ),
        (b"GET /metrics HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\n", 431),
        (b"\x16\x03\x01\x02\x00garbage\r\n\r\n", 400),
        (b"GET /metrics HTTP/9.9\r\n\r\n", 505),
    ],
    ids=["long-request-line", "long-header", "many-big-headers", "too-many-headers", "binary", "version"],
)
def test_oversized_or_malformed_requests_are_refused(request_bytes, expected):
    with serving() as server:
        response = raw_request(server, request_bytes)
        assert status_of(response) == expected
        if expected in (414, 431):
            assert server.stats.rejected["oversize"] == 1
        assert http_get(f"http://127.0.0.1:{server.server_address[1]}/healthz")[0] == 200


def test_connections_beyond_the_limit_are_answered_503_at_once():
    with serving(max_connections=3) as server:
        held = [connect(server) for _ in range(3)]
        try:
            deadline = time.monotonic() + EOF_BOUND
            while server.stats.open_connections < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert server.stats.open_connections == 3
            with connect(server) as extra:
                extra.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                response = read_until_closed(extra)
            assert status_of(response) == 503 and b"Retry-After: 1" in response
            assert server.stats.rejected["limit"] == 1
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + EOF_BOUND
        while server.stats.open_connections and time.monotonic() < deadline:
            time.sleep(0.02)
        status, body, _ = http_get(f"http://127.0.0.1:{server.server_address[1]}/metrics")
        assert status == 200
        smp = samples(body)
        assert value(smp, "mail_exporter_http_rejected_total", reason="limit") == 1
        assert value(smp, "mail_exporter_http_connections_max") == 3


LINE = (
    "Dec  4 10:00:{s:02d} mx1 postfix/smtp[{pid}]: {qid}: to=<u{n}@example.net>, relay=mx.example.net"
    "[192.0.2.1]:25, delay=0.2, delays=0/0/0.1/0.1, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X{n})\n"
)


LINES_KEY = (("result", "outcome"), ("source", "postfix"))


@pytest.mark.slow
def test_concurrent_scrapes_while_ingesting_at_full_speed(tmp_path):
    threads_n, scrapes_n, max_lines = 20, 20, 1_000_000  # at most ~200 MB of log
    log = tmp_path / "mail.log"
    log.write_text("")
    written = 0
    with Daemon("--source", f"postfix:{log}", "--state-file", str(tmp_path / "state.json")) as daemon:
        stop = threading.Event()

        def writer() -> None:
            nonlocal written
            with log.open("a") as f:
                while not stop.is_set() and written < max_lines:
                    batch = range(written, written + 1000)
                    f.write("".join(LINE.format(s=n % 60, pid=n % 9999, qid=f"{n:X}", n=n) for n in batch))
                    f.flush()
                    written += 1000

        failures: list[str] = []
        seen_lines: set[float] = set()  # mail_exporter_lines_total values seen: proof the counts moved

        def scraper(k: int) -> None:
            previous: dict = {}
            for _ in range(scrapes_n):
                try:
                    status, body, _ = http_get(daemon.url + "/metrics", timeout=60)
                except OSError as exc:
                    failures.append(f"scraper {k}: {exc!r}")
                    return
                if status != 200:
                    failures.append(f"scraper {k}: status {status}")
                    return
                current = {}
                for family in text_string_to_metric_families(body):
                    if family.type == "counter":
                        for s in family.samples:
                            current[(s.name, tuple(sorted(s.labels.items())))] = s.value
                for key, before in previous.items():
                    if current.get(key, -1) < before:
                        failures.append(f"scraper {k}: {key} went from {before} to {current.get(key)}")
                previous = current
                seen_lines.add(current.get(("mail_exporter_lines_total", LINES_KEY), -1))

        writing = threading.Thread(target=writer, name="writer")
        scrapers = [
            threading.Thread(target=scraper, args=(k,), name=f"scraper-{k}") for k in range(threads_n)
        ]
        writing.start()
        for t in scrapers:
            t.start()
        for t in scrapers:
            t.join(timeout=300)
        stop.set()
        writing.join(timeout=60)
        assert not any(t.is_alive() for t in scrapers)
        assert failures == [], failures[:5]
        assert written > 0, written
        smp = daemon.wait_for(
            lambda s: value(s, "mail_exporter_lines_total", source="postfix", result="outcome") == written,
            timeout=120,
        )
        assert value(smp, "mail_exporter_lines_total", source="postfix", result="outcome") == written
        assert (
            value(smp, "mail_responses_total", source="postfix", code="250", type="smtp", outcome="success",
                  direction="outbound") == written
        )  # fmt: skip
        assert value(smp, "mail_exporter_http_rejected_total", reason="limit") == 0
