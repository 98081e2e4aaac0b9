"""Any line format, read by a user's regular expression with a named group `code`."""

from __future__ import annotations

import re
from collections.abc import Callable

from ..events import IGNORED, OUTBOUND, Event, ParseResult

NAME = "regex"
APP_LOG = True
STATEFUL = False


def make_parser(pattern: str, direction: str = OUTBOUND) -> Callable[[str], ParseResult]:
    """A line the pattern does not match is unparsed; a match whose `code` group is empty is ignored."""
    compiled = re.compile(pattern)
    if "code" not in compiled.groupindex:
        raise ValueError("the pattern needs a named group (?P<code>...)")
    search = compiled.search

    def parse(line: str) -> ParseResult:
        m = search(line)
        if m is None:
            return None
        code = m.group("code")
        if not code:
            return IGNORED
        return (Event(code.strip(), None, direction),)

    return parse


def sniff(line: str) -> bool:
    return False
