"""Exchange Server message tracking logs (MSGTRK*.LOG): CSV rows under a "#Fields:" header.

Counted events: DELIVER and SEND (sent), FAIL (bounced; expired when the status says
QUEUE.Expired) and DEFER (deferred), all outbound: the result of handing a message on. RECEIVE
and every other event id carry no result of this kind and are ignored.

recipient-address and recipient-status are parallel lists separated by ";", but a status text may
itself contain ";" ("550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"). A ";" starts the next
recipient's status only when a reply code ("550 "), a "[" (the "[{LED=...};{FQDN=...}]" form) or
To/Cc/Bcc follows it; otherwise it belongs to the status before. When that regrouping does not give
one status per address: a single status that starts like one holds for every address; a single
run of unknown text ("Failed;Failed") is split plainly if that fits; otherwise statuses are paired
in order and the addresses left over have none. A row whose width differs from the header's is
not read (its columns cannot be trusted).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable

from ..events import BOUNCED, DEFERRED, EXPIRED, IGNORED, OUTBOUND, SENT, Event, ParseResult
from ._w3c import HeaderedLog

NAME = "exchange"
APP_LOG = False
STATEFUL = True

_EVENTS = {"DELIVER": SENT, "SEND": SENT, "FAIL": BOUNCED, "DEFER": DEFERRED}
_TAGS = tuple(f",{name}," for name in _EVENTS)
_REQUIRED = ("event-id", "recipient-address", "recipient-status")
_DIRECTIVES = ("#Software:", "#Version:", "#Log-type:", "#Date:")

_STATUS_START = re.compile(r"[0-9]{3}(?:[ -]|$)|\[|(?:To|Cc|Bcc)$", re.ASCII)
_REPLY = re.compile(r"([2-5][0-9]{2})(?:[ -]|$)(?:([245]\.[0-9]{1,3}\.[0-9]{1,3})(?![0-9.]))?", re.ASCII)
_SNIFF = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z,[^\n]*,(?:SMTP|STOREDRIVER|ROUTING|QUEUE|DNS|AGENT|DSN|ADMIN"
    r"|PICKUP|GATEWAY|APPROVAL|BOOTLOADER|MAILBOXRULE|ORAR|POISONMESSAGE|PUBLICFOLDER|REDUNDANCY"
    r"|SAFETYNET|MEETINGMESSAGEPROCESSOR),[A-Z]+,",
    re.ASCII,
)


class ExchangeParser(HeaderedLog):
    """Parses rows of one message tracking log, keeping the column map of its header."""

    def __init__(self) -> None:
        self._cols: tuple[int, int, int] | None = None
        self._width = 0

    def _row(self, line: str) -> ParseResult:
        if self._cols is None:
            return None
        if not any(tag in line for tag in _TAGS):
            return IGNORED if _dated(line) else None
        try:
            row = next(csv.reader((line,)))
        except (csv.Error, StopIteration):
            return None
        if len(row) != self._width:
            return None
        i_event, i_addr, i_status = self._cols
        status = _EVENTS.get(row[i_event])
        if status is None:
            return IGNORED if _dated(line) else None
        return _events(row[i_addr], row[i_status], status)

    def _directive(self, line: str) -> ParseResult:
        if line.startswith("#Fields:"):
            names = [name.strip().lower() for name in line[8:].split(",")]
            if not all(name in names for name in _REQUIRED):
                self._cols = None
                return None
            i_event, i_addr, i_status = (names.index(name) for name in _REQUIRED)
            self._cols = (i_event, i_addr, i_status)
            self._width = len(names)
            return IGNORED
        return IGNORED if line.startswith(_DIRECTIVES) else None


def _dated(line: str) -> bool:
    """Starts like a row: "2022-09-19T...". (Most rows are other events: no regex for them.)"""
    return len(line) > 11 and line[4] == "-" and line[7] == "-" and line[10] == "T" and line[:4].isdigit()


def _events(addresses: str, statuses: str, status: str) -> tuple[Event, ...]:
    addrs = [a for a in (part.strip() for part in addresses.split(";")) if a]
    texts = _statuses(statuses, len(addrs))
    out = []
    for text in texts:
        code, enhanced = _reply(text)
        this = EXPIRED if status == BOUNCED and "QUEUE.Expired" in text else status
        out.append(Event(code, this, OUTBOUND, enhanced))
    return tuple(out)


def _statuses(text: str, count: int) -> list[str]:
    """One status text per recipient (count of them; at least one row when no address is given)."""
    parts = text.split(";") if text.strip() else []
    groups: list[str] = []
    for part in parts:
        if groups and not _STATUS_START.match(part):
            groups[-1] += ";" + part
        else:
            groups.append(part)
    if count == 0:
        return groups or [""]
    if len(groups) == count:
        return groups
    if len(groups) == 1:
        if len(parts) == count and not _STATUS_START.match(parts[0]):
            return parts  # statuses in a form we do not know ("Failed;Failed"): trust the plain split
        return groups * count
    return [groups[i] if i < len(groups) else "" for i in range(count)]


def _reply(text: str) -> tuple[str | None, str | None]:
    """(reply code, enhanced code) at the start of a status, or inside its LED= part."""
    text = text.strip()
    if text.startswith(("[", "{")):
        at = text.find("LED=")
        if at < 0:
            return None, None
        text = text[at + 4 :]
    m = _REPLY.match(text)
    if m is None:
        return None, None
    return m.group(1), m.group(2)


def make_parser() -> Callable[[str], ParseResult]:
    """A fresh parser's parse method (the column map is per file)."""
    return ExchangeParser().parse


def sniff(line: str) -> bool:
    """True for the tracking log header lines and for its dated CSV rows."""
    line = line.lstrip("\ufeff")
    if line.startswith(("#Software: Microsoft Exchange Server", "#Log-type: Message Tracking Log")):
        return True
    if line.startswith("#Fields:"):
        return "date-time," in line and "event-id" in line
    return _SNIFF.match(line) is not None
