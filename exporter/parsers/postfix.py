"""Postfix syslog lines: recipient status lines, qmgr expiries and smtpd/postscreen/cleanup rejects."""

from __future__ import annotations

import re
from collections import Counter

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
    tally_lines,
)

try:  # the compiled scanner (setup.py builds it where a C compiler is found; it is optional)
    from . import _postfix_scan
except ImportError:
    _postfix_scan = None

NAME = "postfix"
APP_LOG = False
STATEFUL = False

# "Dec  4 15:36:10 host prog[pid]: msg" or "2026-12-04T15:36:10.123+00:00 host prog[pid]: msg".
# The program is a Postfix service path: postfix/smtp, postfix/submission/smtpd, postfix-out/smtp ...
_TIMESTAMP = (
    r"(?:[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
)
_HEADER = re.compile(_TIMESTAMP + r" \S+ (?P<prog>[\w.-]+(?:/[\w.-]+)+|postfix[\w.-]*)(?:\[\d+\])?: ")

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


# -- Counting a whole block at once ---------------------------------------------------------------
# The daemon and `replay` hand over blocks of many complete lines. Calling parse() once per line costs
# a header match per line from Python; count_block() runs ONE regular expression over the block that
# only stops (findall) on the lines that matter: lines that are not Postfix lines, and lines that carry
# a result, whose fields it captures. Identical captures are counted in C (Counter) and turned into
# events once per distinct tuple. It counts exactly what parse() finds line by line (tests/test_counting.py
# checks that): the pieces below are the line parser's patterns, rewritten only where that cannot change
# what they match:
#   - the header is atomic and possessive: its match is unique (the timestamp and the host end at fixed
#     spaces, the program runs to the first "[" or ":"), so there is nothing to backtrack into;
#   - "x?" becomes "(?:x|)", and common shapes ("postfix/smtp", "QUEUEID: ", ", relay=..., dsn=",
#     "host H said: ") are tried first with single-character classes: a repeated group costs the regex
#     engine an allocation, a class repeat is a tight loop;
#   - "leftmost match" searches keep their leftmost meaning (a lazy scan, or a fast shape that proves
#     nothing earlier can match, falling back to the lazy scan);
#   - classes also exclude "\n" (a line never holds one), so nothing runs into the next line.
# Lines no fast branch covers (a quoted local part, cleanup rejects) are captured whole and handed to
# the line parser's own functions. A block with a lone "\r" is declined: the caller parses it by line.
# Pure-ASCII bytes are scanned as bytes (no decoding); the bytes pattern spells out the ASCII meaning
# that \s, \S, \d and \w have for str patterns (str \s also matches \x1c-\x1f, bytes \s does not).
_BLOCK_SOURCE = (
    r"\n(?>"
    r"(?:[A-Z][a-z][a-z] [ 0-9]{D} {D}{D}:{D}{D}:{D}{D}"
    r"|{D}{4}-{D}{D}-{D}{D}T{D}{D}:{D}{D}:{D}{D}(?:\.{D}++|)(?:Z|[+-]{D}{D}(?::|){D}{D}|))"
    r" {NS}++ (?:[a-z]++/(?:cleanup(?P<cleanup>)|[a-z]++)(?=[\[:])"
    r"|{WX}++(?:/{WX}++)++(?:(?<=/cleanup)(?P<cleanup2>)|)|postfix{WX}*+)"
    r"(?:\[{D}++\]|): (?P<ok>)|)"
    # not a Postfix line: the match ends here with every group empty
    r"(?(ok)"
    # The rest starts after the first ": " behind the header (the queue id or NOQUEUE). Most lines
    # have a queue id there; the others are looked at only if ": keyword" occurs in them at all.
    r"(?>[0-9A-Z]++: |(?=[^\n]*: (?:to=<|reject: |milter-reject: |from=<))"
    r"{L}*+(?:: |:(?! ){L}*+(?:: |:(?! ){L}*+(?:: |{Q})|{Q})|{Q}))"
    # Single-character marker groups say which kind of line it is (a capture of one byte is free).
    r"(?:(?P<to>t)o=<(?:"
    # recipient status: addresses without a quoted local part, then _STATUS and _REPLY
    r"(?!\")[^>\n]*+>(?:, orig_to=<(?!\")[^>\n]*+>|(?!, orig_to=<))"
    r"(?:, relay={C}*+, delay={C}*+, delays={C}*+|[^\n]*?)"
    r", dsn=(?P<dsn>[0-9.]++), status=(?P<status>[A-Za-z-]++)"
    r"(?: \((?:(?P<code1>{D}{3})(?![^ \-\n])"
    r"|(?:host (?!said: |refused to talk to me: )[^ \n]*+|[^\n]*?) (?:said|refused to talk to me): "
    r"(?P<code2>{D}{3})(?![^ \-\n])|)|)"
    r"|(?P<status_line>[^\n]*))"  # any other recipient line: the line parser decides
    r"|(?P<expired>f)rom=<(?=[^\n]*expired, returned to sender)"
    # rejects: cleanup's (and header or body checks) go to the line parser; _REJECT for the others
    r"|(?:(?P<milter>m)ilter-r|(?P<plain>r))eject: "
    r"(?(cleanup)(?P<cleanup_line>[^\n]*)|(?(cleanup2)(?P<cleanup_line2>[^\n]*)"
    r"|(?:(?(plain)(?P<header_line>(?:header|body) [^\n]*)|(?!))"
    r"|[A-Z][A-Z-]*+ from {NSB}*+\[[^\]\n]*+\](?::{D}++|): "
    r"(?:(?P<rcode>{D}{3})[ -]|)(?:(?P<renh>[245]\.{D}{1,3}\.{D}{1,3})\b|)|)))"
    r")|)"
)
_Q = r"(?:[^:\n]++|:(?! ))++: "  # the general "up to the first ': '", after the fast tries
_STR_CLASSES = {
    "D": r"\d",
    "NS": r"\S",
    "NSB": r"[^\s\[]",
    "WX": r"[\w.-]",
    "L": r"[\x00-\t\x0b-9;-\xff]",  # Latin-1 but ":" and "\n" (a bitmap test; others go to _Q)
    "C": r"[\x00-\t\x0b-+\--\xff]",  # Latin-1 but "," and "\n"
    "Q": _Q,
}
_ASCII_SPACE = r" \t\n\r\x0b\x0c\x1c-\x1f"  # what str \s matches below 128
_BYTES_CLASSES = {
    "D": r"[0-9]",
    "NS": f"[^{_ASCII_SPACE}]",
    "NSB": f"[^{_ASCII_SPACE}\\[]",
    "WX": r"[A-Za-z0-9_.-]",
    "L": r"[^:\n]",
    "C": r"[^,\n]",
    "Q": _Q,
}


def _block_pattern(classes: dict[str, str], as_bytes: bool) -> re.Pattern:
    text = re.sub(r"\{(D|NSB|NS|WX|L|C|Q)\}", lambda m: classes[m.group(1)], _BLOCK_SOURCE)
    return re.compile(text.encode("ascii") if as_bytes else text)


_BLOCK = _block_pattern(_STR_CLASSES, False)
_BLOCK_BYTES = _block_pattern(_BYTES_CLASSES, True)
_GROUPS = {name: number - 1 for name, number in _BLOCK.groupindex.items()}
_SLOW = tuple(_GROUPS[name] for name in ("status_line", "cleanup_line", "cleanup_line2", "header_line"))
_NOT_POSTFIX = ("",) * _BLOCK.groups
_NOT_POSTFIX_BYTES = (b"",) * _BLOCK.groups
_DECIDED: dict[tuple, ParseResult] = {}  # capture tuple -> result, for the tuples that repeat


def _decide(t: tuple) -> ParseResult:
    """The result parse() gives a line whose block match captured t (a tuple of str)."""
    g = _GROUPS
    if t[g["to"]]:
        if t[g["status"]]:
            status = _STATUS_MAP.get(t[g["status"]])
            if status is None or status == EXPIRED:
                return IGNORED
            return (Event(t[g["code1"]] or t[g["code2"]] or None, status, OUTBOUND, t[g["dsn"]]),)
        return _parse_status("to=<" + t[g["status_line"]])
    if t[g["expired"]]:
        return (Event(None, EXPIRED, OUTBOUND, None),)
    verb = "milter-reject: " if t[g["milter"]] else "reject: "
    if t[g["cleanup_line"]] or t[g["cleanup_line2"]]:
        return _parse_reject(verb + (t[g["cleanup_line"]] or t[g["cleanup_line2"]]), "postfix/cleanup")
    if t[g["header_line"]]:
        return _parse_reject(verb + t[g["header_line"]], "")
    # (a cleanup reject with nothing after "reject: " captures an empty rest and lands here too, which
    # gives the event the line parser gives it: rejected, no code, no enhanced code)
    return (Event(t[g["rcode"]] or None, REJECTED, INBOUND, t[g["renh"]] or None),)


Counted = tuple[int, int, int, dict[Event, int]]


def count_block(text: str | bytes) -> Counted | None:
    """(outcome, ignored, unparsed lines, {event: count}) of complete lines, as parse() counts them.

    Bytes go to the compiled scanner where it is built (any bytes: it hands back the lines it does not
    decide, which parse() then reads); otherwise, and for str, the regular expression below counts.
    None when the block is not one it takes (a carriage return or bytes that are not ASCII on the
    regular-expression path, no final newline): the caller then decodes it or parses by line.
    """
    if _postfix_scan is not None and isinstance(text, bytes):
        return count_scanned(text)
    return count_regex(text)


def count_regex(text: str | bytes) -> Counted | None:
    """count_block() by one regular expression over the block (str, or bytes that are pure ASCII)."""
    if not text:
        return 0, 0, 0, {}
    if isinstance(text, bytes):
        if not text.endswith(b"\n") or not text.isascii() or b"\r" in text:
            return None
        pattern, nl, empty = _BLOCK_BYTES, b"\n", _NOT_POSTFIX_BYTES
    else:
        if not text.endswith("\n") or "\r" in text:
            return None
        pattern, nl, empty = _BLOCK, "\n", _NOT_POSTFIX
    # Every match starts at a newline: the first line gets one in front (a short copy), the rest are
    # scanned in place. The block's own last newline is left out so that it does not start a line.
    first = text.find(nl) + 1
    found = Counter(pattern.findall(nl + text[:first], 0, first))
    found.update(pattern.findall(text, first - 1, len(text) - 1))
    unparsed = found.pop(empty, 0)
    outcome = 0
    events: dict[Event, int] = {}
    for t, n in found.items():
        result = _DECIDED.get(t)
        if result is None:
            decoded = t if nl == "\n" else tuple(x.decode("ascii") for x in t)
            result = _decide(decoded)
            if not any(t[i] for i in _SLOW):  # whole lines rarely repeat: not kept
                if len(_DECIDED) >= 4096:
                    _DECIDED.clear()
                _DECIDED[t] = result
        if result:
            outcome += n
            for ev in result:
                events[ev] = events.get(ev, 0) + n
    return outcome, text.count(nl) - outcome - unparsed, unparsed, events


# -- The compiled scanner ---------------------------------------------------------------------------
# _postfix_scan.scan() decides most lines in C: it returns the ignored and unparsed line counts, {key:
# lines} for the results, and the lines it leaves to parse() (a byte above 127 or a "\r", a quoted
# local part, cleanup and header/body rejects). A key spells one event in bytes; see the C source.
_KEY_EVENTS: dict[bytes, Event] = {}


def _key_event(key: bytes) -> Event:
    kind, fields = key[:1], key[1:].decode("ascii").split("\0")
    if kind == b"S":
        status, code, dsn = fields
        ev = Event(code or None, _STATUS_MAP[status], OUTBOUND, dsn)
    elif kind == b"R":
        code, enh = fields
        ev = Event(code or None, REJECTED, INBOUND, enh or None)
    else:
        ev = Event(None, EXPIRED, OUTBOUND, None)
    if len(_KEY_EVENTS) >= 4096:  # keys repeat; a hostile log with ever new ones must not grow this
        _KEY_EVENTS.clear()
    _KEY_EVENTS[key] = ev
    return ev


def count_scanned(block: bytes) -> Counted | None:
    """count_block() by the compiled scanner: any bytes that end with a newline."""
    if not block:
        return 0, 0, 0, {}
    if not block.endswith(b"\n"):
        return None
    ignored, unparsed, found, slow = _postfix_scan.scan(block)
    outcome = 0
    events: dict[Event, int] = {}
    for key, n in found.items():
        ev = _KEY_EVENTS.get(key) or _key_event(key)
        outcome += n
        events[ev] = events.get(ev, 0) + n
    if slow:  # decoded as the caller would decode the block; "\r\n" ends a line as "\n" does
        text = (b"\n".join(slow) + b"\n").decode("utf-8", "replace").replace("\r\n", "\n")
        more = tally_lines(text, parse)
        outcome, ignored, unparsed = outcome + more[0], ignored + more[1], unparsed + more[2]
        for ev, n in more[3].items():
            events[ev] = events.get(ev, 0) + n
    return outcome, ignored, unparsed, events
