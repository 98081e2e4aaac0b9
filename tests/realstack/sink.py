"""A small SMTP peer on 127.0.0.1 that answers chosen codes and keeps its own log of every reply.

The code to answer is encoded in the addresses Postfix relays to it:
    rcptNNN@...   answer NNN to RCPT TO for this recipient
    dataNNN@...   accept RCPT, answer NNN at the end of DATA
    mailNNN@...   (as the envelope sender) answer NNN to MAIL FROM
Everything else is accepted with 250. Separate listeners greet with 421 (then hang up) or with 554
(then answer only QUIT), so Postfix logs `refused to talk to me:`.

The reply log is the sink's own record of what it told Postfix; the tests compare the mail log and
the exporter's counters against it, never against the exporter's parser.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from aiosmtpd.smtp import SMTP, Envelope, Session

HOST = "127.0.0.1"

# Reply text per code: an enhanced status code that fits the class, and a short reason.
REPLY_TEXT = {
    "250": "2.0.0 Ok: accepted by the test sink",
    "421": "4.3.2 Service shutting down, closing transmission channel",
    "450": "4.2.1 Mailbox busy, try again later",
    "451": "4.3.0 Local error in processing",
    "452": "4.2.2 Mailbox temporarily over quota",
    "550": "5.1.1 No such user here",
    "551": "5.1.6 User not local",
    "552": "5.2.2 Mailbox full, exceeded storage allocation",
    "553": "5.1.3 Mailbox name not allowed",
    "554": "5.7.1 Transaction failed",
}

_CODED = re.compile(r"^(mail|rcpt|data)([245][0-9][0-9])(?:[+.-][^@]*)?@", re.IGNORECASE)

# Stages as they appear in Postfix's "(in reply to ... command)" and in this sink's log.
GREETING = "greeting"
MAIL = "MAIL FROM"
RCPT = "RCPT TO"
DATA = "end of DATA"


class Reply(NamedTuple):
    """One reply the sink gave: where, at which stage, with which code, about which address."""

    listener: str
    stage: str
    code: str
    address: str
    line: str


def coded(address: str, stage: str) -> str | None:
    """The code an address asks for at a stage ("mail", "rcpt" or "data"), or None."""
    m = _CODED.match(address or "")
    if m and m.group(1).lower() == stage and m.group(2) in REPLY_TEXT:
        return m.group(2)
    return None


def reply_line(code: str, address: str = "") -> str:
    text = REPLY_TEXT[code]
    return f"{code} {text} <{address}>" if address and code != "250" else f"{code} {text}"


class _Handler:
    """aiosmtpd hooks: answer the encoded code, record every reply given at MAIL, RCPT and DATA."""

    def __init__(self, sink: SmtpSink, listener: str):
        self.sink = sink
        self.listener = listener

    def _answer(self, stage: str, code: str, address: str) -> str:
        line = reply_line(code, address)
        self.sink._record(Reply(self.listener, stage, code, address, line))
        return line

    async def handle_MAIL(self, server, session: Session, envelope: Envelope, address, mail_options):
        code = coded(address, "mail") or "250"
        if code == "250":
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
        return self._answer(MAIL, code, address)

    async def handle_RCPT(self, server, session: Session, envelope: Envelope, address, rcpt_options):
        code = coded(address, "rcpt") or "250"
        if code == "250":
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return self._answer(RCPT, code, address)

    async def handle_DATA(self, server, session: Session, envelope: Envelope):
        codes = [c for c in (coded(r, "data") for r in envelope.rcpt_tos) if c]
        code = codes[0] if codes else "250"
        return self._answer(DATA, code, ",".join(envelope.rcpt_tos))


class _Greeter(asyncio.Protocol):
    """A server that refuses at the greeting: 421 then hang up, or 554 then answer only QUIT."""

    def __init__(self, sink: SmtpSink, listener: str, code: str):
        self.sink = sink
        self.listener = listener
        self.code = code
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport):
        self.transport = transport
        self.sink._connections.add(self)
        line = f"{self.code} {REPLY_TEXT[self.code]}"
        self.sink._record(Reply(self.listener, GREETING, self.code, "", line))
        transport.write(line.encode() + b"\r\n")
        if self.code == "421":
            transport.close()

    def data_received(self, data):
        self.buffer += data
        while b"\n" in self.buffer and self.transport is not None:
            command, _, self.buffer = self.buffer.partition(b"\n")
            if command.strip().upper() == b"QUIT":
                self.transport.write(b"221 2.0.0 Bye\r\n")
                self.transport.close()
            else:
                self.transport.write(b"503 5.5.1 Error: no service here\r\n")

    def connection_lost(self, exc):
        self.sink._connections.discard(self)
        self.transport = None


class _SinkSMTP(SMTP):
    """aiosmtpd's SMTP protocol, tracked so the sink can close its connections at shutdown."""

    def __init__(self, sink: SmtpSink, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sink = sink

    def connection_made(self, transport):
        self._sink._connections.add(self)
        super().connection_made(transport)

    def connection_lost(self, error):
        self._sink._connections.discard(self)
        super().connection_lost(error)


class SmtpSink:
    """SMTP listeners on 127.0.0.1 (free ports) in one background event loop; use as a context manager.

    ports["main"] answers by address; ports["greet421"] and ports["greet554"] refuse at the greeting.
    """

    def __init__(self) -> None:
        self.ports: dict[str, int] = {}
        self._replies: list[Reply] = []
        self._lock = threading.Lock()
        self._connections: set = set()
        self._servers: list[asyncio.Server] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _record(self, reply: Reply) -> None:
        with self._lock:
            self._replies.append(reply)

    def replies(self) -> list[Reply]:
        """A copy of the reply log, in the order the replies were given."""
        with self._lock:
            return list(self._replies)

    def wait_for(self, predicate: Callable[[list[Reply]], bool], timeout: float) -> list[Reply]:
        """Poll the reply log until predicate(log) holds; raise TimeoutError with the log otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.replies()
            if predicate(log):
                return log
            if time.monotonic() > deadline:
                raise TimeoutError(f"sink reply log did not reach the expected state: {log}")
            time.sleep(0.05)

    async def _start_servers(self) -> None:
        loop = asyncio.get_running_loop()
        factories = {
            "main": lambda: _SinkSMTP(
                self, _Handler(self, "main"), hostname="sink.test", ident="test sink", loop=loop
            ),
            "greet421": lambda: _Greeter(self, "greet421", "421"),
            "greet554": lambda: _Greeter(self, "greet554", "554"),
        }
        for name, factory in factories.items():
            server = await loop.create_server(factory, HOST, 0)
            self._servers.append(server)
            self.ports[name] = server.sockets[0].getsockname()[1]

    async def _stop_servers(self) -> None:
        for server in self._servers:
            server.close()
        for conn in list(self._connections):
            if conn.transport is not None:
                conn.transport.close()
        for server in self._servers:
            await server.wait_closed()
        await asyncio.sleep(0)
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def start(self) -> SmtpSink:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="smtp-sink", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start_servers(), self._loop).result(timeout=10)
        return self

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._stop_servers(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
