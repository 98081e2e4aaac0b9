"""Courier's syslog lines: courieresmtpd's rejections and the delivery modules' per-recipient results.

A delivery module (courieresmtp, courierlocal, ...) logs the remote reply on one line
(``id=Q,from=<s>,addr=<r>: 550 5.1.1 ...``) and the outcome on a later one
(``id=Q,from=<s>,addr=<r>,status: failure``); successes may also log
``...,size=N,success: delivered: host [ip]`` (older versions log the "status: success" line too).
So the parser is stateful: it keeps the last reply of each (queue id, recipient) until the outcome
arrives, in a bounded table. It needs no priming when a file is resumed part-way (hence no
STATEFUL flag; one parser serves the whole source, across rotations): an outcome whose reply was
logged before the resume point is counted without a code.
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

NAME = "courier"
APP_LOG = False

# Syslog header naming a Courier MTA process (courierd, courieresmtp, courieresmtpd, courierlocal...).
_SYSLOG = re.compile(r"(?:" + SYSLOG_TIME + r" \S+ )?(courier[a-z]*)(?:\[\d{1,10}\])?: ", re.ASCII)
_ENHANCED = r"([245]\.\d{1,3}\.\d{1,3}(?!\.?\d))"
_LEADING_CODE = re.compile(r'"?([2-5]\d\d)[ -]#?(?:' + _ENHANCED + r")?", re.ASCII)
# id=<queue id>,from=<sender>,addr=<recipient> then ": reply", ",size=N,success: text" or ",status: x".
_DELIVERY = re.compile(
    r"id=([^,\s]{1,64}),from=<[^>]*>,addr=<([^>]*)>(?:,size=\d{1,20})?"
    r"(?:(,success)?: |,status: (success|failure|deferred)$)",
    re.ASCII,
)
# courieresmtpd: "error,relay=::ffff:192.0.2.7,from=<a>,to=<b>: 550 User unknown."
# or "error,relay=...,msg="535 Authentication failed.",cmd: AUTH LOGIN".
_SERVER_ERROR = re.compile(r"error,relay=\S*?(?:: |,msg=)", re.ASCII)

_STATUS = {"success": SENT, "failure": BOUNCED, "deferred": DEFERRED}
# Recipients awaiting their outcome line; past this many the oldest are forgotten.
_MAX_PENDING = 4096


def _code(text: str) -> tuple[str | None, str | None]:
    found = _LEADING_CODE.match(text)
    return (found.group(1), found.group(2)) if found is not None else (None, None)


def _remember(table: dict, key: object, value: object) -> None:
    if key not in table and len(table) >= _MAX_PENDING:
        del table[next(iter(table))]
    table[key] = value


def _server_error(rest: str) -> ParseResult:
    found = _SERVER_ERROR.match(rest)
    if found is None:
        return IGNORED
    code, enhanced = _code(rest[found.end() :])
    if code is None or code[0] not in "45":
        return IGNORED
    return (Event(code, REJECTED, INBOUND, enhanced),)


class _Parser:
    """Holds the last reply of each recipient until its outcome is logged."""

    __slots__ = ("_replies", "_succeeded")

    def __init__(self) -> None:
        self._replies: dict[tuple[str, str], tuple[str | None, str | None]] = {}
        self._succeeded: dict[tuple[str, str], None] = {}

    def parse(self, line: str) -> ParseResult:
        """Events of one Courier syslog line (see exporter.events for the meaning of the result)."""
        if "courier" not in line[:160]:
            return None
        header = _SYSLOG.match(line)
        if header is None:
            return None
        rest = line[header.end() :].rstrip("\r")
        if rest.startswith("id="):
            found = _DELIVERY.match(rest)
            return IGNORED if found is None else self._delivery(found, rest[found.end() :])
        if rest.startswith("error,") and header.group(1) == "courieresmtpd":
            return _server_error(rest)
        return IGNORED

    def _delivery(self, found: re.Match[str], text: str) -> ParseResult:
        key = (found.group(1), found.group(2))
        outcome = found.group(4)
        if outcome is None and found.group(3) is None:
            _remember(self._replies, key, _code(text))
            return IGNORED
        if outcome == "success" and key in self._succeeded:
            del self._succeeded[key]
            return IGNORED  # already counted from its "success: ..." line
        code, enhanced = self._replies.pop(key, None) or _code(text)
        if outcome is None:
            _remember(self._succeeded, key, None)
            outcome = "success"
        return (Event(code, _STATUS[outcome], OUTBOUND, enhanced),)


def make_parser(**options: object) -> Callable[[str], ParseResult]:
    """A fresh parser with its own table of pending replies; this format takes no options."""
    if options:
        raise TypeError(f"format {NAME!r} takes no options (got {', '.join(sorted(options))})")
    return _Parser().parse


def sniff(line: str) -> bool:
    """True for a line that is unmistakably Courier's."""
    return "courier" in line[:160] and _SYSLOG.match(line) is not None
