"""A syslog listener as a source: RFC 3164 and RFC 5424 messages over UDP or TCP (RFC 6587 framing).

Each message becomes the classic line the parsers read ("TIME HOST APP[PID]: MESSAGE"). Syslog has no
replay, so the source is at-most-once across a restart; whatever it cannot take (a malformed or oversized
frame, too many connections, a full queue) is dropped and counted in mail_exporter_dropped_total.
"""

from __future__ import annotations

import contextlib
import logging
import re
import selectors
import socket
import time
from collections.abc import Callable
from typing import Any

from .streams import DEFAULT_INBOX_BYTES, QueuedReader, WakePipe

log = logging.getLogger(__name__)

MALFORMED = "malformed"
OVERSIZE = "oversize"
QUEUE_FULL = "queue_full"
CONNECTION_LIMIT = "connection_limit"
TRUNCATED = "truncated"  # a TCP connection closed in the middle of an octet-counted frame

_PRI = re.compile(rb"<(\d{1,3})>")
# RFC 5424: "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID " then STRUCTURED-DATA, then " MSG".
_RFC5424 = re.compile(rb"<\d{1,3}>1 (\S{1,64}) (\S{1,255}) (\S{1,48}) (\S{1,128}) \S{1,32} ")
_RFC3339 = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)")
# RFC 3164: "Mmm dd hh:mm:ss " (the day padded with a space); relays such as rsyslog may send RFC 3339.
_BSD_TIME = re.compile(
    rb"(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d"
    rb"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?) "
)
_BOM = b"\xef\xbb\xbf"
_OCTET_HEADER = re.compile(rb"([1-9]\d{0,8}) ")


def _now() -> bytes:
    usec = int(time.time() * 1_000_000)
    second, fraction = divmod(usec, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode() + b".%06d+00:00" % fraction


def _skip_structured_data(msg: bytes, i: int) -> int:
    """Index just past the STRUCTURED-DATA at msg[i:] ("-" or [id param="value" ...]...); -1 if malformed."""
    if msg[i : i + 1] == b"-":
        return i + 1
    n = len(msg)
    if msg[i : i + 1] != b"[":
        return -1
    while i < n and msg[i] == 0x5B:  # "["
        i += 1
        quoted = False
        while i < n:
            c = msg[i]
            if quoted and c == 0x5C:  # a backslash escapes '"', '\' and ']' inside a value
                i += 2
                continue
            if c == 0x22:
                quoted = not quoted
            elif c == 0x5D and not quoted:
                break
            i += 1
        if i >= n:
            return -1
        i += 1
    return i


def to_line(msg: bytes, now: Callable[[], bytes] = _now) -> bytes | None:
    """One syslog message -> "TIME HOST APP[PID]: TEXT" (no newline); None when it is malformed."""
    msg = msg.rstrip(b"\r\n\0")
    m = _PRI.match(msg)
    if m is None or int(m.group(1)) > 191:
        return None
    is_5424 = msg.startswith(b"1 ", m.end())
    line = _rfc5424(msg, now) if is_5424 else _rfc3164(msg[m.end() :], now)
    if line is not None and (b"\n" in line or b"\r" in line):
        line = line.replace(b"\r\n", b" ").replace(b"\n", b" ").replace(b"\r", b" ")  # one message, one line
    return line


def _rfc5424(msg: bytes, now: Callable[[], bytes]) -> bytes | None:
    m = _RFC5424.match(msg)
    if m is None:
        return None
    stamp, host, app, procid = m.groups()
    if stamp == b"-":
        stamp = now()
    elif not _RFC3339.fullmatch(stamp):
        return None
    i = _skip_structured_data(msg, m.end())
    if i < 0:
        return None
    if i == len(msg):
        text = b""
    elif msg[i] == 0x20:
        text = msg[i + 1 :].removeprefix(_BOM)
    else:
        return None
    tag = app if procid == b"-" else app + b"[" + procid + b"]"
    return b"%s %s %s: %s" % (stamp, host, tag, text)


def _rfc3164(rest: bytes, now: Callable[[], bytes]) -> bytes | None:
    t = _BSD_TIME.match(rest)
    if t is None:  # no timestamp: all of it is the content (RFC 3164 4.3.2); stamp it on receipt
        if not rest.strip():
            return None
        return b"%s - %s" % (now(), rest)
    stamp, rest = t.group(0)[:-1], rest[t.end() :]
    first, sep, after = rest.partition(b" ")
    # "host tag[pid]: text", or without a hostname (as local senders do) "tag[pid]: text".
    if sep and first and not first.endswith(b":") and b"[" not in first:
        return b"%s %s %s" % (stamp, first, after)
    if not rest.strip():
        return None
    return b"%s - %s" % (stamp, rest)


class Framer:
    """Splits a TCP byte stream into syslog messages: octet counting or newline framing (RFC 6587 3.4)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.buf = bytearray()
        self.skip = 0  # bytes of an oversized octet-counted frame still to discard
        self.skip_line = False  # discarding up to the next newline (an oversized or malformed frame)

    def feed(self, data: bytes) -> list[bytes | str]:
        """Messages (bytes) and drop reasons (str), in order."""
        buf = self.buf
        buf += data
        out: list[bytes | str] = []
        while buf:
            if self.skip:
                n = min(self.skip, len(buf))
                del buf[:n]
                self.skip -= n
                continue
            if self.skip_line:
                nl = buf.find(b"\n")
                if nl < 0:
                    buf.clear()
                    break
                del buf[: nl + 1]
                self.skip_line = False
                continue
            first = buf[0]
            if first in b"\r\n\0 ":  # stray separators between frames
                del buf[0]
            elif 0x30 <= first <= 0x39:  # "123 <PRI>...": octet counting
                m = _OCTET_HEADER.match(buf)
                if m is None:
                    if len(buf) < 10 and bytes(buf).isdigit():
                        break  # the length is still arriving
                    out.append(MALFORMED)
                    self.skip_line = True
                    continue
                size, start = int(m.group(1)), m.end()
                if size > self.max_bytes:
                    out.append(OVERSIZE)
                    del buf[:start]
                    self.skip = size
                    continue
                if len(buf) < start + size:
                    break
                out.append(bytes(buf[start : start + size]))
                del buf[: start + size]
            elif first == 0x3C:  # "<PRI>...\n": newline framing
                nl = buf.find(b"\n")
                if nl < 0:
                    if len(buf) > self.max_bytes:
                        out.append(OVERSIZE)
                        buf.clear()
                        self.skip_line = True
                    break
                frame = bytes(buf[:nl]).rstrip(b"\r")
                del buf[: nl + 1]
                out.append(frame if len(frame) <= self.max_bytes else OVERSIZE)
            else:
                out.append(MALFORMED)
                self.skip_line = True
        return out

    def finish(self) -> list[bytes | str]:
        """The connection closed: a last newline-framed message needs no newline; a partial frame is lost."""
        buf, self.buf = bytes(self.buf), bytearray()
        if self.skip or self.skip_line or not buf.strip(b"\r\n\0 "):
            return []
        if buf.startswith(b"<"):
            return [buf] if len(buf) <= self.max_bytes else [OVERSIZE]
        return [TRUNCATED]


class SyslogReader(QueuedReader):
    """Listens on one UDP or TCP address; messages go to the pipeline through the inbox, never blocking."""

    DROP_REASONS = (MALFORMED, OVERSIZE, QUEUE_FULL, CONNECTION_LIMIT, TRUNCATED)

    def __init__(
        self,
        transport: str,
        host: str,
        port: int,
        *,
        max_message: int = 8192,
        max_connections: int = 64,
        max_line: int = 64 * 1024,
        location: str | None = None,
        retry: tuple[float, float] = (1.0, 30.0),
        inbox_bytes: int = DEFAULT_INBOX_BYTES,
    ):
        location = location or f"syslog+{transport}://{host}:{port}"
        super().__init__(location, max_line=max_line, inbox_bytes=inbox_bytes)
        self.transport = transport
        self.host = host
        self.port = port
        self.max_message = max_message
        self.max_connections = max_connections
        self.retry = retry
        self.address: tuple[str, int] | None = None
        self._sock: socket.socket | None = None
        self._wakepipe = WakePipe()
        self._delivered = False

    def start(self, waker: Any) -> None:
        self._bind()  # at once: a port in use is reported at start, and tests learn the port
        super().start(waker)

    def _bind(self) -> bool:
        kind = socket.SOCK_DGRAM if self.transport == "udp" else socket.SOCK_STREAM
        sock = None
        try:
            family, _, proto, _, sockaddr = socket.getaddrinfo(
                self.host, self.port, type=kind, flags=socket.AI_PASSIVE
            )[0]
            sock = socket.socket(family, kind, proto)
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            if kind == socket.SOCK_STREAM:
                sock.listen(128)
            sock.setblocking(False)
        except OSError as exc:
            if sock is not None:
                sock.close()
            reason = getattr(exc, "strerror", None) or str(exc)
            self._set_problem(f"cannot listen on {self.transport} {self.host}:{self.port}: {reason}")
            return False
        self._sock = sock
        self.address = sock.getsockname()[:2]
        self._set_problem(None)
        log.info("source %s: listening on %s %s:%s", self.location, self.transport, *self.address)
        return True

    def _run(self) -> None:
        delay = self.retry[0]
        while self._sock is None:
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, self.retry[1])
            if self._bind():
                self._wake()
        sock = self._sock
        conns: dict[socket.socket, Framer] = {}
        sel = selectors.DefaultSelector()
        sel.register(self._wakepipe.r, selectors.EVENT_READ, "wake")
        sel.register(sock, selectors.EVENT_READ, "udp" if self.transport == "udp" else "listen")
        try:
            while not self._stop.is_set():
                for key, _ in sel.select():
                    if key.data == "wake":
                        return
                    if key.data == "udp":
                        self._read_datagrams(sock)
                    elif key.data == "listen":
                        self._accept(sock, sel, conns)
                    else:
                        self._read_stream(key.fileobj, sel, conns)  # type: ignore[arg-type]
                if self._delivered:
                    self._delivered = False
                    self._wake()
        finally:
            for conn in conns:
                conn.close()
            sel.close()
            sock.close()

    def _read_datagrams(self, sock: socket.socket) -> None:
        for _ in range(256):  # then let the other sockets have a turn
            try:
                data = sock.recv(self.max_message + 2)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error reported on the socket: nothing to read
                return
            if len(data.rstrip(b"\r\n\0")) > self.max_message:
                self.inbox.count(OVERSIZE)
            else:
                self.deliver(data)

    def _accept(self, sock: socket.socket, sel: selectors.BaseSelector, conns: dict) -> None:
        while True:
            try:
                conn, peer = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors: back off instead of spinning
                log.warning("source %s: cannot accept a connection: %s", self.location, exc.strerror or exc)
                self._stop.wait(0.5)
                return
            if len(conns) >= self.max_connections:
                conn.close()
                self.inbox.count(CONNECTION_LIMIT)
                log.debug("source %s: refused %s: %d connections open", self.location, peer, len(conns))
                continue
            conn.setblocking(False)
            conns[conn] = Framer(self.max_message)
            sel.register(conn, selectors.EVENT_READ, "conn")

    def _read_stream(self, conn: socket.socket, sel: selectors.BaseSelector, conns: dict) -> None:
        framer = conns[conn]
        try:
            data = conn.recv(256 * 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""  # reset by the peer: as good as closed
        items = framer.feed(data) if data else framer.finish()
        for item in items:
            if isinstance(item, str):
                self.inbox.count(item)
            else:
                self.deliver(item)
        if not data:
            sel.unregister(conn)
            del conns[conn]
            conn.close()

    def deliver(self, msg: bytes) -> None:
        """One received message into the inbox, or counted as dropped."""
        line = to_line(msg)
        if line is None:
            self.inbox.count(MALFORMED)
        elif self.inbox.offer(line + b"\n"):
            self._delivered = True
        else:
            self.inbox.count(QUEUE_FULL)

    def _interrupt(self) -> None:
        self._wakepipe.set()

    def close(self, timeout: float = 5.0) -> None:
        super().close(timeout)
        if self._thread is None:
            with contextlib.suppress(OSError):
                if self._sock is not None:
                    self._sock.close()
        if self._thread is None or not self._thread.is_alive():
            self._wakepipe.close()
