"""Exim's main log: deliveries (=> -> >>), deferrals (==), failures (**) and rejections.

Lines come from Exim's own log file (``2024-05-06 10:11:12 [pid] ID flag ...``) or from syslog,
where a syslog header may precede Exim's own timestamp (or replace it, with syslog_timestamp false).
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

NAME = "exim"
APP_LOG = False

# Syslog header ("Dec  4 15:36:10 host exim[123]: " or an RFC 3339 stamp) naming an exim process.
_SYSLOG = re.compile(SYSLOG_TIME + r" \S+ exim[\w.-]*(?:\[\d{1,10}\])?: ", re.ASCII)
# Syslog splits long entries into numbered parts; only the first part holds the flag.
_PART = re.compile(r"\[(\d{1,4})[/\\]\d{1,4}\] ?", re.ASCII)
# Exim's own timestamp, with the optional millisec, log_timezone and pid selectors.
_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{3})?(?: [+-]\d{4})?(?: \[\d{1,10}\])? ", re.ASCII)
# Message id (6-6-2, or 6-11-4 since Exim 4.97) followed by a two-character flag.
_ID_FLAG = re.compile(
    r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4} (<=|\(=|=>|->|>>|\*>|\*\*|==) ", re.ASCII
)
_ID = re.compile(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4} ", re.ASCII)
# Lines Exim writes without a message id that still mark a line as Exim's (for sniff).
_EXIM_WORDS = re.compile(
    r"(?:Start queue run|End queue run|SMTP connection from|exim [\d.]+\S* daemon started|H=\S)",
    re.ASCII,
)

# SMTP confirmation on delivery lines: C="250 2.0.0 Ok: queued as ...".
_CONFIRM = re.compile(r' C="([2-5]\d\d)[ -]#?([245]\.\d{1,3}\.\d{1,3}(?!\.?\d))?', re.ASCII)
# The remote reply on deferral and failure lines, in the old ("host H [ip]: 550 ...") and new forms.
_REMOTE_ERROR = re.compile(
    r"(?:SMTP error from remote mail(?:er| server)|LMTP error) after .*?: "
    r"(?:host \S{1,255} \[[^\]]{1,64}\]: )?([2-5]\d\d)[ -]#?([245]\.\d{1,3}\.\d{1,3}(?!\.?\d))?",
    re.ASCII,
)
# A rejection this server gave a client; "temporarily" marks a 4xx one.
_REJECT = re.compile(
    r"(?:^|\s)(temporarily )?rejected "
    r"(?:RCPT|MAIL|after|connection|from|EHLO|HELO|VRFY|EXPN|ETRN|AUTH|DATA|BDAT|by|non-SMTP|\")",
    re.ASCII,
)
# Deliveries that deliver nothing: filter "seen finish" discards and :blackhole: aliases.
_DISCARD = ("discarded ", ":blackhole: ")


def make_parser(**options: object) -> Callable[[str], ParseResult]:
    """The parser; this format takes no options."""
    if options:
        raise TypeError(f"format {NAME!r} takes no options (got {', '.join(sorted(options))})")
    return parse


def _body(line: str) -> str | None:
    """The text after the syslog header, part marker and Exim timestamp; None if not Exim's."""
    rest = line
    syslog = _SYSLOG.match(rest)
    if syslog is not None:
        rest = rest[syslog.end() :]
        part = _PART.match(rest)
        if part is not None:
            if part.group(1) != "1":
                return ""
            rest = rest[part.end() :]
    stamp = _STAMP.match(rest)
    if stamp is not None:
        return rest[stamp.end() :]
    return rest if syslog is not None else None


def _remote(rest: str, status: str) -> ParseResult:
    code = enhanced = None
    if "error " in rest:
        found = _REMOTE_ERROR.search(rest)
        if found is not None:
            code, enhanced = found.group(1), found.group(2)
    return (Event(code, status, OUTBOUND, enhanced),)


def _delivery(rest: str) -> ParseResult:
    if rest.startswith(_DISCARD):
        return IGNORED
    code = enhanced = None
    if ' C="' in rest:
        found = _CONFIRM.search(rest)
        if found is not None:
            code, enhanced = found.group(1), found.group(2)
    return (Event(code, SENT, OUTBOUND, enhanced),)


def parse(line: str) -> ParseResult:
    """Events of one Exim main log line (see exporter.events for the meaning of the result)."""
    if not (line[:4].isdigit() or "exim" in line[:120]):
        return None
    body = _body(line.rstrip("\r"))
    if body is None:
        return None
    flagged = _ID_FLAG.match(body)
    if flagged is not None:
        flag, rest = flagged.group(1), body[flagged.end() :]
        if flag in ("=>", "->", ">>"):
            return _delivery(rest)
        if flag == "==":
            return _remote(rest, DEFERRED)
        if flag == "**":
            return _remote(rest, BOUNCED)
        return IGNORED  # <= arrival, (= fakereject, *> delivery suppressed by -N
    if "rejected " not in body or "error from remote mail" in body:
        return IGNORED
    found = _REJECT.search(body)
    if found is None:
        return IGNORED
    # Exim does not log the code it answered; "temporarily" is what tells a 4xx from a 5xx.
    return (Event(None, DEFERRED if found.group(1) else REJECTED, INBOUND, None),)


def sniff(line: str) -> bool:
    """True for a line that is unmistakably Exim's."""
    if _SYSLOG.match(line) is not None:
        return True
    stamp = _STAMP.match(line)
    if stamp is None:
        return False
    body = line[stamp.end() :]
    return _ID.match(body) is not None or _EXIM_WORDS.match(body) is not None
