"""Haraka's log (default text format): "[LEVEL] [uuid] [origin] message".

Outbound: "delivered file=... rcpts=ok/deferred/rejected" (its response= no longer holds the
code), "recipient <a> rejected: 550 ...", "recipient <a> deferred: 451 ...", "Temp failing <file>
for N seconds: <why>" and "bouncing mail: <why>". Inbound: the disposition Haraka logs for a
sender, a recipient, a message or its queueing as code=DENY|DENYSOFT|... — Haraka's own names: the
SMTP code it answered is not logged, so the event has one only when the msg= text starts with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from exporter.events import (
    BOUNCED,
    DEFERRED,
    IGNORED,
    INBOUND,
    OUTBOUND,
    REJECTED,
    SENT,
    Event,
    ParseResult,
)

NAME = "haraka"
APP_LOG = False

# "[NOTICE] [8F1C...-1.1] [outbound] " possibly after a syslog or multilog prefix; some versions add
# further bracketed parts after the origin ("[core] [outbound]", "[outbound] [uuid]").
_HEADER = re.compile(
    r"\[(?:DATA|PROTOCOL|DEBUG|INFO|NOTICE|WARN|ERROR|CRIT|ALERT|EMERG)\] \[[^\]\s]*\] \[[^\]\s]+\]"
    r"(?: \[[^\]\s]+\])* +",
    re.ASCII,
)
_ENHANCED = r"([245]\.\d{1,3}\.\d{1,3}(?!\.?\d))"
_LEADING_CODE = re.compile(r"([2-5]\d\d)[ -]#?(?:" + _ENHANCED + r")?", re.ASCII)
_RECIPIENT_RESULT = re.compile(r"recipient (?:<[^>]*>|\S+) (rejected|deferred): ", re.ASCII)
_RCPTS = re.compile(r"(?:^|\s)rcpts=(\d{1,6})/\d{1,6}/\d{1,6}\b", re.ASCII)
_RESPONSE = re.compile(r'(?:^|\s)response="([^"]*)', re.ASCII)
_TEMP_FAILING = re.compile(r"Temp failing \S+ for \d+ seconds: ", re.ASCII)
_UPSTREAM = "Upstream error: "
# Inbound dispositions: "recipient <a> code=DENY msg="..." sender=...", "sender <a> code=...",
# "message mid=... code=DENY msg=...", "queue code=DENYSOFT msg=...".
_DISPOSITION = re.compile(r"(?:recipient|sender|message|queue)\b.*?\scode=(DENY\w*)(?=\s|$)", re.ASCII)
_MSG = re.compile(r'(?:^|\s)msg="?([^"]*)', re.ASCII)

# Beyond this many accepted recipients on one "delivered" line the count is not believable.
_MAX_RCPTS = 100_000


def make_parser(**options: object) -> Callable[[str], ParseResult]:
    """The parser; this format takes no options."""
    if options:
        raise TypeError(f"format {NAME!r} takes no options (got {', '.join(sorted(options))})")
    return parse


def _code(text: str) -> tuple[str | None, str | None]:
    found = _LEADING_CODE.match(text)
    return (found.group(1), found.group(2)) if found is not None else (None, None)


def _delivered(message: str) -> ParseResult:
    rcpts = _RCPTS.search(message)
    count = int(rcpts.group(1)) if rcpts is not None else 1
    if count == 0 or count > _MAX_RCPTS:
        return IGNORED
    response = _RESPONSE.search(message)
    code, enhanced = _code(response.group(1)) if response is not None else (None, None)
    return (Event(code, SENT, OUTBOUND, enhanced),) * count


def _failed(why: str, status: str) -> ParseResult:
    """A whole-message failure; those that only sum up per-recipient lines carry nothing new."""
    if why.startswith(("Some recipients temp failed", "Some recipients failed")):
        return IGNORED
    if why.startswith(_UPSTREAM):
        why = why[len(_UPSTREAM) :]
    code, enhanced = _code(why)
    return (Event(code, status, OUTBOUND, enhanced),)


def _outbound(message: str) -> ParseResult | None:
    """Events of an outbound delivery line; None when the message is not one."""
    if message.startswith("delivered "):
        return _delivered(message)
    if message.startswith("recipient "):
        found = _RECIPIENT_RESULT.match(message)
        if found is None:
            return None
        code, enhanced = _code(message[found.end() :])
        status = BOUNCED if found.group(1) == "rejected" else DEFERRED
        return (Event(code, status, OUTBOUND, enhanced),)
    if message.startswith("Temp failing "):
        found = _TEMP_FAILING.match(message)
        return None if found is None else _failed(message[found.end() :], DEFERRED)
    if message.startswith("bouncing mail: "):
        return _failed(message[len("bouncing mail: ") :], BOUNCED)
    return None


def _inbound(message: str) -> ParseResult:
    found = _DISPOSITION.match(message)
    if found is None:
        return IGNORED
    disposition = found.group(1)
    if disposition not in ("DENY", "DENYDISCONNECT", "DENYSOFT", "DENYSOFTDISCONNECT"):
        return IGNORED
    text = _MSG.search(message, found.end())
    code, enhanced = _code(text.group(1)) if text is not None else (None, None)
    # The code, when the message gives one, tells temporary from permanent; without it the status must.
    status = DEFERRED if code is None and disposition.startswith("DENYSOFT") else REJECTED
    return (Event(code, status, INBOUND, enhanced),)


def parse(line: str) -> ParseResult:
    """Events of one Haraka log line (see exporter.events for the meaning of the result)."""
    if "] [" not in line:
        return None
    header = _HEADER.search(line)
    if header is None:
        return None
    message = line[header.end() :].rstrip("\r")
    outbound = _outbound(message)
    if outbound is not None:
        return outbound
    if " code=DENY" in message:
        return _inbound(message)
    return IGNORED


def sniff(line: str) -> bool:
    """True for a line that is unmistakably Haraka's."""
    return "] [" in line and _HEADER.search(line) is not None
