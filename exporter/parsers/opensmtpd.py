"""OpenSMTPD's smtpd log: "mta|mda delivery ... result= stat=" lines and "smtp failed-command" replies.

Also reads the older (5.x) form "delivery: TempFail for <evpid>: ..., stat=...".
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
from exporter.parsers._syslog import SYSLOG_TIME

NAME = "opensmtpd"
APP_LOG = False

_SYSLOG = re.compile(SYSLOG_TIME + r" \S+ smtpd(?:\[\d{1,10}\])?: ", re.ASCII)
# Since 6.4 every session line starts with the 16-hex-digit session id and the process role.
_SESSION = re.compile(r"[0-9a-f]{16} (smtp|mta|mda|lka|queue|scheduler) (\S+)", re.ASCII)
# Field values, matched where str.rfind located " name=" (result= and stat= end the line).
_RESULT = re.compile(r'"?(Ok|TempFail|PermFail|Loop)\b', re.ASCII)
# 5.x: "delivery: Ok for 0123456789abcdef: from=<a>, to=<b>, ..., stat=Delivered"
_OLD_DELIVERY = re.compile(r"(?:delivery|relay): (Ok|TempFail|PermFail|Loop) for [0-9a-f]{1,16}: ", re.ASCII)
_LEADING_CODE = re.compile(r'"?([2-5]\d\d)[ -]#?([245]\.\d{1,3}\.\d{1,3}(?!\.?\d))?', re.ASCII)

_STATUS = {"Ok": SENT, "TempFail": DEFERRED, "PermFail": BOUNCED, "Loop": BOUNCED}


def make_parser(**options: object) -> Callable[[str], ParseResult]:
    """The parser; this format takes no options."""
    if options:
        raise TypeError(f"format {NAME!r} takes no options (got {', '.join(sorted(options))})")
    return parse


def _value(rest: str, name: str) -> int:
    """Where the value of the last field "name=" starts, or -1 when there is none."""
    at = rest.rfind(" " + name)
    return -1 if at < 0 else at + 1 + len(name)


def _delivered(result: str, rest: str) -> ParseResult:
    at = _value(rest, "stat=")
    found = _LEADING_CODE.match(rest, at) if at >= 0 else None
    code, enhanced = (found.group(1), found.group(2)) if found is not None else (None, None)
    return (Event(code, _STATUS[result], OUTBOUND, enhanced),)


def _session_line(role: str, event: str, rest: str) -> ParseResult:
    if event == "delivery" and role in ("mta", "mda"):
        at = _value(rest, "result=")
        result = _RESULT.match(rest, at) if at >= 0 else None
        return IGNORED if result is None else _delivered(result.group(1), rest)
    if event == "failed-command" and role == "smtp":
        at = _value(rest, "result=")
        reply = _LEADING_CODE.match(rest, at) if at >= 0 and rest[at : at + 1] == '"' else None
        if reply is None or reply.group(1)[0] not in "45":
            return IGNORED
        return (Event(reply.group(1), REJECTED, INBOUND, reply.group(2)),)
    return IGNORED


def parse(line: str) -> ParseResult:
    """Events of one smtpd log line (see exporter.events for the meaning of the result)."""
    header = _SYSLOG.match(line) if "smtpd" in line[:160] else None
    if header is not None:
        rest = line[header.end() :].rstrip("\r")
        session = _SESSION.match(rest)
        if session is not None:
            return _session_line(session.group(1), session.group(2), rest[session.end() :])
        old = _OLD_DELIVERY.match(rest)
        if old is not None:
            return _delivered(old.group(1), rest[old.end() - 1 :])
        return IGNORED
    # Without syslog (smtpd -d, or a collector that strips the header): the session form only.
    session = _SESSION.match(line) if line[16:17] == " " else None
    if session is None:
        return None
    return _session_line(session.group(1), session.group(2), line[session.end() :].rstrip("\r"))


def sniff(line: str) -> bool:
    """True for a line that is unmistakably OpenSMTPD's."""
    return _SYSLOG.match(line) is not None or _SESSION.match(line) is not None
