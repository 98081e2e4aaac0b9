"""Sendmail's syslog lines: one delivery line per attempt (to=, dsn=, stat=) and ruleset/milter rejects."""

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
from exporter.parsers._syslog import SYSLOG_TIME

NAME = "sendmail"
APP_LOG = False

# Syslog header naming a sendmail process; Solaris adds "[ID 801593 mail.info] ".
_SYSLOG = re.compile(
    SYSLOG_TIME + r" \S+ (?:sendmail|sm-mta|sm-msp-queue|sm-msp)(?:\[\d{1,10}\])?: (?:\[ID \d+ [\w.]+\] )?",
    re.ASCII,
)
# Field values are matched where str.find located the field ("name=" at the start or after a space).
# The recipient list ends where the next "name=" field begins.
_TO_VALUE = re.compile(r"(.*?),\s+(?=[a-z]+=)", re.ASCII)
_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}(?!\.?\d)\b", re.ASCII)
_CODE = re.compile(r"([2-5]\d\d)[ -]#?([245]\.\d{1,3}\.\d{1,3}(?!\.?\d))?", re.ASCII)
# A reply code leading a text, possibly after a token in angle brackets: "250 2.0.0 Ok", "<id> 250 ...".
_LEADING_CODE = re.compile(r"(?:<[^<>\s]*> )?([2-5]\d\d)[ -]#?([245]\.\d{1,3}\.\d{1,3}(?!\.?\d))?", re.ASCII)


def make_parser(**options: object) -> Callable[[str], ParseResult]:
    """The parser; this format takes no options."""
    if options:
        raise TypeError(f"format {NAME!r} takes no options (got {', '.join(sorted(options))})")
    return parse


def _field(rest: str, name: str) -> int:
    """Where the value of the field "name=" starts, or -1 when the line has no such field."""
    if rest.startswith(name):
        return len(name)
    at = rest.find(" " + name)
    return -1 if at < 0 else at + 1 + len(name)


def _count_recipients(value: str) -> int:
    """Recipients in a to= list: commas outside <...> and "..." separate them."""
    if '"' not in value and "<@" not in value:  # no quoted name, no source route: no comma inside one
        return sum(1 for piece in value.split(",") if piece and not piece.isspace())
    count, depth, quoted, filled = 0, 0, False, False
    for char in value:
        if char == '"':
            quoted = not quoted
        elif quoted:
            pass
        elif char == "<":
            depth += 1
        elif char == ">":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            count += filled
            filled = False
            continue
        if not char.isspace():
            filled = True
    return count + filled


def _stat_code(stat: str) -> tuple[str | None, str | None]:
    """A reply code at the start of the stat text or of its "Sent (...)" / "Deferred: ..." detail."""
    for prefix in ("Sent (", "Deferred: "):
        if stat.startswith(prefix):
            stat = stat[len(prefix) :]
            break
    found = _LEADING_CODE.match(stat)
    return (found.group(1), found.group(2)) if found is not None else (None, None)


def _delivery(rest: str, to: int, stat: str) -> ParseResult:
    recipients = _TO_VALUE.match(rest, to)
    if recipients is None:
        return IGNORED
    count = _count_recipients(recipients.group(1))
    if count == 0 or stat.startswith("queued"):
        return IGNORED  # "queued": accepted for a later queue run, no result yet
    stat = stat.split(", reply=", 1)[0]
    at = _field(rest, "dsn=")
    dsn = _ENHANCED.match(rest, at) if at >= 0 else None
    enhanced = dsn.group() if dsn is not None else None
    if stat.startswith("Sent"):
        status = SENT
    elif stat.startswith("Deferred") or (enhanced or "").startswith("4"):
        status = DEFERRED
    else:
        status = BOUNCED
    at = _field(rest, "reply=")
    reply = _CODE.match(rest, at) if at >= 0 else None
    code, text_enhanced = (reply.group(1), reply.group(2)) if reply is not None else _stat_code(stat)
    event = Event(code, status, OUTBOUND, enhanced or text_enhanced)
    return (event,) * count


def _rejection(rest: str, at: int) -> ParseResult:
    # As for every logged reject, the code (4xx or 5xx) tells a temporary one from a permanent one.
    found = _CODE.match(rest, at)
    if found is None:
        return (Event(None, REJECTED, INBOUND, None),)
    return (Event(found.group(1), REJECTED, INBOUND, found.group(2)),)


def parse(line: str) -> ParseResult:
    """Events of one sendmail syslog line (see exporter.events for the meaning of the result)."""
    if "sendmail" not in line[:160] and "sm-m" not in line[:160]:
        return None
    header = _SYSLOG.match(line)
    if header is None:
        return None
    rest = line[header.end() :].rstrip("\r")
    stat = _field(rest, "stat=")
    to = _field(rest, "to=") if stat >= 0 else -1
    if to >= 0:
        return _delivery(rest, to, rest[stat:])
    at = _field(rest, "reject=")
    return IGNORED if at < 0 else _rejection(rest, at)


def sniff(line: str) -> bool:
    """True for a line that is unmistakably sendmail's."""
    return _SYSLOG.match(line) is not None
