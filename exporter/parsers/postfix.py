"""Postfix syslog lines: recipient status lines, qmgr expiries and smtpd/postscreen/cleanup rejects."""

from __future__ import annotations

import re

from ..events import (
    BOUNCED,
    DEFERRED,
    EXPIRED,
    IGNORED,
    INBOUND,
    OUTBOUND,
    REJECTED,
    SENT,
    Event,
    ParseResult,
)

NAME = "postfix"
APP_LOG = False
STATEFUL = False

# "Dec  4 15:36:10 host prog[pid]: msg" or "2026-12-04T15:36:10.123+00:00 host prog[pid]: msg".
# The program is a Postfix service path: postfix/smtp, postfix/submission/smtpd, postfix-out/smtp ...
_HEADER = re.compile(
    r"(?:[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r" \S+ (?P<prog>[\w.-]+(?:/[\w.-]+)+|postfix[\w.-]*)(?:\[\d+\])?: "
)

# "QUEUEID: to=<a>, [orig_to=<b>,] relay=..., delay=..., delays=..., dsn=X.Y.Z, status=WORD (text)"
_STATUS = re.compile(r", dsn=(?P<dsn>[0-9.]+), status=(?P<status>[A-Za-z-]+)(?: \((?P<text>.*))?")
# A reply code in the parenthesised text: "(250 2.0.0 Ok)", "said: 550 5.1.1 ...", "said: 550-5.1.1",
# "refused to talk to me: 421 ...". The code must be followed by a space, a dash or the end.
_REPLY = re.compile(r"(?:^|(?: said| refused to talk to me): )(\d{3})(?:[ -]|$)")

# "reject: RCPT from host[1.2.3.4]: 554 5.7.1 ...", postscreen "from [1.2.3.4]:5678: 550 5.5.1 ...".
_REJECT = re.compile(
    r"(?:milter-)?reject: (?P<cmd>[A-Z][A-Z-]*) from [^\s\[]*\[[^\]]*\](?::\d+)?: "
    r"(?:(?P<code>\d{3})[ -])?(?:(?P<enh>[245]\.\d{1,3}\.\d{1,3})\b)?"
)
# cleanup: "reject: header Subject: ... from h[1.2.3.4]; from=<a> to=<b> proto=ESMTP helo=<h>: 5.7.1 text"
_CLEANUP_ENH = re.compile(r"(?:>|proto=\S+): ([245]\.\d{1,3}\.\d{1,3})\b(?!.*(?:>|proto=\S+): [245]\.)")

_STATUS_MAP = {
    "sent": SENT,
    "deferred": DEFERRED,
    "SOFTBOUNCE": DEFERRED,
    "bounced": BOUNCED,
    "expired": EXPIRED,
    "force-expired": EXPIRED,
}


def sniff(line: str) -> bool:
    m = _HEADER.match(line)
    return m is not None and ("postfix" in m.group("prog") or "/" in m.group("prog"))


def parse(line: str) -> ParseResult:
    """Events of one Postfix log line; None if the line is not a Postfix syslog line."""
    m = _HEADER.match(line)
    if m is None:
        return None
    # After the header: "QUEUEID: ..." or "NOQUEUE: ..."; results sit right behind the queue id.
    colon = line.find(": ", m.end())
    if colon < 0:
        return IGNORED
    rest = line[colon + 2 :]
    if rest.startswith("to=<"):
        return _parse_status(rest)
    if rest.startswith(("reject: ", "milter-reject: ")):
        return _parse_reject(rest, m.group("prog"))
    if rest.startswith("from=<") and "expired, returned to sender" in rest:
        return (Event(None, EXPIRED, OUTBOUND, None),)
    return IGNORED


def _after_address(text: str, start: int) -> int:
    """Index just past the <address> starting at text[start] ("<"), honouring a quoted local part."""
    i = start + 1
    if text.startswith('"', i):  # "any, text (even >, status=sent)"@domain: skip the quoted string
        i += 1
        while i < len(text):
            ch = text[i]
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                break
            i += 1
    end = text.find(">", i)
    return len(text) if end < 0 else end + 1


def _parse_status(rest: str) -> ParseResult:
    # The addresses come first and may hold anything a sender chose; the fields Postfix writes follow.
    pos = _after_address(rest, 3)
    if rest.startswith(", orig_to=<", pos):
        pos = _after_address(rest, pos + 10)
    s = _STATUS.search(rest.rstrip("\r"), pos)
    if s is None:
        return IGNORED
    status = _STATUS_MAP.get(s.group("status"))
    if status is None or status == EXPIRED:  # deliverable/undeliverable are address probes, not results
        return IGNORED
    code = None
    text = s.group("text")
    if text:
        r = _REPLY.search(text)
        if r is not None:
            code = r.group(1)
    return (Event(code, status, OUTBOUND, s.group("dsn")),)


def _parse_reject(rest: str, prog: str) -> ParseResult:
    # cleanup (header/body checks, milters) logs only an enhanced code: the code label is "none".
    if prog.endswith("/cleanup") or rest.startswith(("reject: header ", "reject: body ")):
        e = _CLEANUP_ENH.search(rest)
        return (Event(None, REJECTED, INBOUND, e.group(1) if e else None),)
    r = _REJECT.match(rest)
    if r is None:
        return (Event(None, REJECTED, INBOUND, None),)
    return (Event(r.group("code"), REJECTED, INBOUND, r.group("enh")),)


def make_parser(**options: object) -> object:
    if options:
        raise TypeError(f"the postfix format takes no options (got {', '.join(sorted(options))})")
    return parse
