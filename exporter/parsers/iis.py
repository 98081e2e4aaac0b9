"""IIS SMTP service logs in the W3C extended format: replies to RCPT and to the message (DATA).

The columns are whatever the last "#Fields:" directive named, so the parser keeps that map.

Inbound lines (a client talking to this server) carry the command in cs-method and this server's
reply code in sc-status: each RCPT line is one recipient, each DATA line one message. A 4xx/5xx
reply there is a rejection.

Outbound lines (this server delivering) come in pairs with cs-username OutboundConnectionCommand
(verb in cs-method) and OutboundConnectionResponse (the remote reply in cs-uri-query, spaces as
"+", sc-status always 0). A response does not say which command it answers, so per remote host
(c-ip, s-sitename) the parser queues the verbs of the commands not yet answered and gives each
response to the oldest one. In the usual lock-step dialogue that is simply the last command;
with pipelining it is still the right one. Counted: the reply to each RCPT TO, and for the
message the reply after the data: DATA's first reply when it is not 3xx (the data was refused),
otherwise the reply after that 354 (no log line stands for the data itself); the reply to
"BDAT ... LAST". A 220 that is not the answer to STARTTLS is a new connection's greeting and
drops whatever the host still had pending. Two connections open at once to the same remote IP
cannot be told apart by this log; their replies may then be attributed to the wrong command.
Outbound events state no disposition (status None): the line records the remote reply, not what
the service did next (retry later or return the message).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable

from ..events import IGNORED, INBOUND, OUTBOUND, REJECTED, Event, ParseResult
from ._w3c import HeaderedLog

NAME = "iis"
APP_LOG = False
STATEFUL = True

_COMMAND = "OutboundConnectionCommand"
_RESPONSE = "OutboundConnectionResponse"
_DIRECTIVES = ("#Version:", "#Software:", "#Date:", "#Start-Date:", "#End-Date:", "#Remark:")

# The remote reply in cs-uri-query: "250+2.1.5+Recipient+OK", "250-first+line", "421+4.7.0+[TSS04]+...".
_REPLY = re.compile(r"([0-9]{3})(?:[+ -]|$)(?:([245]\.[0-9]{1,3}\.[0-9]{1,3})(?=[+ ]|$))?", re.ASCII)
_SNIFF = re.compile(r"(?:^| )(?:SMTPSVC[0-9]+|OutboundConnection(?:Command|Response)) \S", re.ASCII)

# What the oldest unanswered command was; only these replies become events.
_RCPT, _DATA, _DOT, _LAST, _TLS, _QUIT, _OTHER = "RCPT", "DATA", ".", "LAST", "STARTTLS", "QUIT", "-"
_COUNTED = (_RCPT, _DOT, _LAST)
_VERBS = {"RCPT": _RCPT, "DATA": _DATA, "STARTTLS": _TLS, "QUIT": _QUIT}

_MAX_HOSTS = 4096  # remote hosts with a dialogue in progress; the oldest is dropped beyond this
_MAX_PENDING = 1024  # unanswered commands per host; more means the log lost replies: start over


class IisParser(HeaderedLog):
    """Parses lines of one IIS SMTP log, keeping its column map and the outbound dialogues."""

    def __init__(self) -> None:
        self._cols: dict[str, int] | None = None
        self._width = 0
        self._pending: dict[tuple[str, ...], deque[str]] = {}

    def _row(self, line: str) -> ParseResult:
        cols = self._cols
        if cols is None:
            return None
        if "OutboundConnection" in line:
            fields = line.split(" ")
            if len(fields) != self._width:
                return None
            user = fields[cols["cs-username"]] if "cs-username" in cols else ""
            status = fields[cols["sc-status"]] if "sc-status" in cols else "0"
            # A client can call itself "OutboundConnection..." in HELO; its lines keep a real sc-status.
            if user == _COMMAND and status == "0":
                return self._command(fields, cols)
            if user == _RESPONSE and status == "0":
                return self._response(fields, cols)
            return self._inbound(fields, cols)
        if "RCPT" in line or "DATA" in line or "BDAT" in line:
            fields = line.split(" ")
            if len(fields) != self._width:
                return None
            return self._inbound(fields, cols)
        return IGNORED if line.count(" ") + 1 == self._width else None

    def _directive(self, line: str) -> ParseResult:
        if line.startswith("#Fields:"):
            names = line[8:].split()
            self._pending.clear()  # a new header block: the service restarted
            if "cs-method" not in names:
                self._cols = None
                return None
            self._cols = {name: i for i, name in reversed(list(enumerate(names)))}
            self._width = len(names)
            return IGNORED
        return IGNORED if line.startswith(_DIRECTIVES) else None

    @staticmethod
    def _inbound(fields: list[str], cols: dict[str, int]) -> ParseResult:
        verb = fields[cols["cs-method"]].upper()
        if verb == "BDAT":
            query = fields[cols["cs-uri-query"]] if "cs-uri-query" in cols else ""
            if "LAST" not in query.upper():
                return IGNORED
        elif verb != "RCPT" and verb != "DATA":
            return IGNORED
        if "sc-status" not in cols:
            return IGNORED
        code = fields[cols["sc-status"]]
        if len(code) != 3 or not code.isascii() or not code.isdigit() or code[0] not in "2345":
            return IGNORED
        return (Event(code, REJECTED if code[0] in "45" else None, INBOUND, None),)

    def _key(self, fields: list[str], cols: dict[str, int]) -> tuple[str, ...]:
        return tuple(fields[cols[name]] for name in ("c-ip", "s-sitename") if name in cols)

    def _command(self, fields: list[str], cols: dict[str, int]) -> ParseResult:
        verb = fields[cols["cs-method"]].upper()
        marker = _VERBS.get(verb, _OTHER)
        if verb == "BDAT":
            query = fields[cols["cs-uri-query"]] if "cs-uri-query" in cols else ""
            marker = _LAST if "LAST" in query.upper() else _OTHER
        key = self._key(fields, cols)
        queue = self._pending.get(key)
        if queue is None:
            if len(self._pending) >= _MAX_HOSTS:
                del self._pending[next(iter(self._pending))]
            queue = self._pending[key] = deque()
        elif len(queue) >= _MAX_PENDING:
            queue.clear()
        queue.append(marker)
        return IGNORED

    def _response(self, fields: list[str], cols: dict[str, int]) -> ParseResult:
        query = fields[cols["cs-uri-query"]] if "cs-uri-query" in cols else ""
        m = _REPLY.match(query)
        key = self._key(fields, cols)
        queue = self._pending.get(key)
        if not queue:
            return IGNORED  # the greeting, or a reply we cannot place
        marker = queue.popleft()
        if m is None:
            return IGNORED
        code = m.group(1)
        if code == "220" and marker != _TLS:
            queue.clear()  # a new connection's greeting: what was pending will never be answered
            return IGNORED
        if marker == _DATA:
            if code[0] == "3":
                queue.appendleft(_DOT)  # 354: the next reply is the one to the message itself
                return IGNORED
            marker = _DOT
        if marker == _QUIT:
            self._pending.pop(key, None)
            return IGNORED
        if marker in _COUNTED:
            return (Event(code, None, OUTBOUND, m.group(2)),)
        return IGNORED


def make_parser() -> Callable[[str], ParseResult]:
    """A fresh parser's parse method (the column map and dialogues are per file)."""
    return IisParser().parse


def sniff(line: str) -> bool:
    """True for the IIS header lines and for lines naming an SMTP site or an outbound dialogue."""
    line = line.lstrip("\ufeff")
    if line.startswith("#Software: Microsoft Internet Information Services"):
        return True
    if line.startswith("#Fields:"):
        return " cs-method" in line and "," not in line
    if "SMTPSVC" not in line and "OutboundConnection" not in line:
        return False
    return _SNIFF.search(line) is not None
