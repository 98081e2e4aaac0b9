"""Logs in the W3C extended style (IIS SMTP, Exchange message tracking): #-directives, then rows."""

from __future__ import annotations

from ..events import ParseResult


class HeaderedLog:
    """One file's parser: #-directives (a #Fields: header) say how to read the rows that follow."""

    def parse(self, line: str) -> ParseResult:
        """Events of one line; None when it is not a line of this log under a known header."""
        try:
            return self._parse(line)
        except Exception:  # never let one odd line stop the pipeline
            return None

    def _parse(self, line: str) -> ParseResult:
        line = line.removesuffix("\r").removeprefix("\ufeff")
        if line.startswith("#"):
            return self._directive(line)
        return self._row(line)

    def _directive(self, line: str) -> ParseResult:
        raise NotImplementedError

    def _row(self, line: str) -> ParseResult:
        raise NotImplementedError
