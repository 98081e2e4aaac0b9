"""CSV with a header row; the response code in a configurable column (application logs, Plex)."""

from __future__ import annotations

import csv
from collections.abc import Callable

from ..events import IGNORED, OUTBOUND, Event, ParseResult

NAME = "csv"
APP_LOG = True
# The first line of a file is its header: after a restart mid-file the pipeline feeds it again.
STATEFUL = True


class CsvParser:
    """Reads the header from the first line it is given, then one event per row with a code."""

    def __init__(self, column: str = "code", delimiter: str = ",", direction: str = OUTBOUND):
        self.column = column
        self.delimiter = delimiter
        self.direction = direction
        self.index: int | None = None
        self.width = 0

    def parse(self, line: str) -> ParseResult:
        try:
            row = next(csv.reader([line.rstrip("\r")], delimiter=self.delimiter))
        except (csv.Error, StopIteration):
            return None
        if self.index is None:
            names = [name.strip() for name in row]
            if self.column not in names:
                return None  # not a header of this file: nothing can be read until one comes
            self.index = names.index(self.column)
            self.width = len(names)
            return IGNORED
        if len(row) != self.width:
            return None
        value = row[self.index].strip()
        if not value:
            return IGNORED
        return (Event(value, None, self.direction),)


def make_parser(
    column: str = "code", delimiter: str = ",", direction: str = OUTBOUND
) -> Callable[[str], ParseResult]:
    """A fresh parser (its own header) as a function, like every stateful format."""
    return CsvParser(column, delimiter, direction).parse


def sniff(line: str) -> bool:
    return False  # a header row alone cannot tell a CSV log apart: name the format
