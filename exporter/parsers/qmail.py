"""qmail-send's activity log (qmail-log(5)): "delivery N: success|deferral|failure: report".

Lines come from multilog (with a tai64n "@4000..." stamp, or tai64nlocal's local time) or from
syslog through splogger ("host qmail: 1701700570.123456 delivery 3: ..."). In the report qmail
writes "_" for each space, as in "Remote_host_said:_550_5.1.1_...".
"""

from __future__ import annotations

import re
from collections.abc import Callable

from exporter.events import BOUNCED, DEFERRED, IGNORED, OUTBOUND, SENT, Event, ParseResult
from exporter.parsers._syslog import SYSLOG_TIME

NAME = "qmail"
APP_LOG = False

_SYSLOG = re.compile(SYSLOG_TIME + r" \S+ qmail[\w-]*(?:\[\d{1,10}\])?: (?:\d{1,12}\.\d{1,9} )?", re.ASCII)
# multilog's tai64n label, or the same converted by tai64nlocal.
_STAMP = re.compile(r"(?:@[0-9a-f]{24}|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{1,9}) +", re.ASCII)
_DELIVERY = re.compile(r"delivery \d{1,12}: (success|deferral|failure): ", re.ASCII)
# Lines of qmail-send that belong to its message handling: unmistakably qmail's.
_MESSAGE_LINES = ("starting delivery ", "new msg ", "info msg ", "end msg ", "bounce msg ", "status: local ")
# Every other line qmail-send writes (qmail-log(5)); none carries a result.
_OTHER_LINES = (
    *_MESSAGE_LINES,
    "delivery ",
    "status: ",
    "triple bounce: ",
    "double bounce: ",
    "alert: ",
    "warning: ",
    "local deliveries will be",
    "remote deliveries will be",
    "number of deliveries left",
)
_REMOTE_SAID = re.compile(
    r"Remote_host_said:[_ ]([2-5]\d\d)[_ -]#?([245]\.\d{1,3}\.\d{1,3}(?!\.?\d))?", re.ASCII
)
# qmail's own notes end in an enhanced code: "Sorry,_no_mailbox_here_by_that_name._(#5.1.1)".
_HASH_CODE = re.compile(r"\(#([245]\.\d{1,3}\.\d{1,3}(?!\.?\d))\)", re.ASCII)

_STATUS = {"success": SENT, "deferral": DEFERRED, "failure": BOUNCED}


def make_parser(**options: object) -> Callable[[str], ParseResult]:
    """The parser; this format takes no options."""
    if options:
        raise TypeError(f"format {NAME!r} takes no options (got {', '.join(sorted(options))})")
    return parse


def _body(line: str) -> tuple[str, bool]:
    """The qmail-send message after any syslog header or multilog stamp; True if syslog named qmail."""
    if "qmail" in line[:160]:
        header = _SYSLOG.match(line)
        if header is not None:
            return line[header.end() :], True
    if line[:1] == "@" or line[:4].isdigit():
        stamp = _STAMP.match(line)
        if stamp is not None:
            return line[stamp.end() :], False
    return line, False


def parse(line: str) -> ParseResult:
    """Events of one qmail-send log line (see exporter.events for the meaning of the result)."""
    body, from_syslog = _body(line.rstrip("\r"))
    delivery = _DELIVERY.match(body) if body.startswith("delivery ") else None
    if delivery is None:
        known = from_syslog or body.startswith(_OTHER_LINES) or body in ("running", "exiting")
        return IGNORED if known else None
    report = body[delivery.end() :]
    code = enhanced = None
    if "Remote_host_said" in report:
        said = _REMOTE_SAID.search(report)
        if said is not None:
            code, enhanced = said.group(1), said.group(2)
    if enhanced is None and "(#" in report:
        noted = _HASH_CODE.search(report)
        if noted is not None:
            enhanced = noted.group(1)
    return (Event(code, _STATUS[delivery.group(1)], OUTBOUND, enhanced),)


def sniff(line: str) -> bool:
    """True for a line that is unmistakably qmail-send's."""
    body, from_syslog = _body(line)
    return from_syslog or _DELIVERY.match(body) is not None or body.startswith(_MESSAGE_LINES)
