"""JSON lines: one object per line, the response code in a configurable field (application logs, Plex)."""

from __future__ import annotations

import json
from collections.abc import Callable

from ..events import IGNORED, OUTBOUND, Event, ParseResult

NAME = "jsonl"
APP_LOG = True
STATEFUL = False

_decode = json.JSONDecoder().decode


def _lookup(obj: dict, path: tuple[str, ...]) -> object:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def make_parser(field: str = "code", direction: str = OUTBOUND) -> Callable[[str], ParseResult]:
    """field may name a nested key with dots ("response.code")."""
    path = tuple(field.split("."))

    def parse(line: str) -> ParseResult:
        text = line.strip()
        if not text.startswith("{"):
            return None
        try:
            obj = _decode(text)
        except ValueError:
            return None
        if not isinstance(obj, dict):
            return None
        value = _lookup(obj, path)
        if value is None or value == "":
            return IGNORED
        if isinstance(value, bool):
            return (Event(str(value).lower(), None, direction),)  # never a code: classified "other"
        if isinstance(value, int | str):
            return (Event(str(value).strip(), None, direction),)
        if isinstance(value, float) and value.is_integer():
            return (Event(str(int(value)), None, direction),)
        return (Event("?", None, direction),)

    return parse


def sniff(line: str) -> bool:
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return False
    try:
        return isinstance(_decode(text), dict)
    except ValueError:
        return False
