"""Small value types that flow through the pipeline."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

INBOUND = "inbound"
OUTBOUND = "outbound"
DIRECTIONS = (INBOUND, OUTBOUND)

# Dispositions a log can state for a result (label values of mail_delivery_status_total).
SENT = "sent"
DEFERRED = "deferred"
BOUNCED = "bounced"
EXPIRED = "expired"
REJECTED = "rejected"
STATUSES = (SENT, DEFERRED, BOUNCED, EXPIRED, REJECTED)


class Event(NamedTuple):
    """One logged result for one recipient, or one rejection.

    code: the reply code exactly as logged ("550", "9009"), or None when the result carries none.
    status: the disposition the line states (one of STATUSES), or None when it states none.
    direction: INBOUND (a reply this server gave a client) or OUTBOUND (a reply given to this server).
    enhanced: the RFC 3463 enhanced status code as logged ("5.1.1"), or None.
    """

    code: str | None
    status: str | None
    direction: str
    enhanced: str | None = None


# What a parser returns for one line:
#   None        the line is not a line of this format (counted as "unparsed");
#   ()          a line of the format that carries no result (counted as "ignored");
#   (e1, ...)   one event per result the line records (counted as "outcome").
ParseResult = tuple[Event, ...] | None
IGNORED: tuple[Event, ...] = ()


def tally_lines(text: str, parse: Callable[[str], ParseResult]) -> tuple[int, int, int, dict[Event, int]]:
    """(outcome, ignored, unparsed, {event: n}) of a block of complete lines, parsed one by one.

    The shape a format's count_block() returns, which must equal this for the same text.
    """
    lines = text.split("\n")
    lines.pop()
    outcome = ignored = unparsed = 0
    events: dict[Event, int] = {}  # classified once per distinct event, not once per line
    get = events.get
    for line in lines:
        result = parse(line)
        if result is None:
            unparsed += 1
        elif not result:
            ignored += 1
        else:
            outcome += 1
            for ev in result:
                events[ev] = get(ev, 0) + 1
    return outcome, ignored, unparsed, events
