"""`auto`: recognise a source's format from its lines, then read it with that format's parser."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

from ..events import ParseResult

NAME = "auto"
APP_LOG = False
# Resumed mid-file, the pipeline feeds the earlier lines again until the parser says it is primed
# (for most formats: as soon as one line told the format).
STATEFUL = True

log = logging.getLogger(__name__)

# Formats that can be recognised, most specific first. Application-log formats need options and are
# never guessed: configure them by name.
CANDIDATES = ("iis", "exchange", "exim", "qmail", "haraka", "courier", "opensmtpd", "sendmail", "postfix")
# Give up guessing after this many lines no parser recognised: they stay unparsed, and so does what follows.
MAX_UNRECOGNISED = 1000


class AutoParser:
    """Undecided until a line is unmistakably of one format; then that format reads everything."""

    def __init__(
        self, on_choose: Callable[[str], None] | None = None, candidates: tuple[str, ...] = CANDIDATES
    ):
        self._modules = [importlib.import_module(f"{__package__}.{_module(name)}") for name in candidates]
        self._on_choose = on_choose
        self.chosen: str | None = None
        self._parse: Callable[[str], ParseResult] | None = None
        self._stateful = False
        self._count_block: Callable | None = None
        self._misses = 0

    @property
    def count_block(self) -> Callable | None:
        """The chosen format's block counter, once a stateless format with one is chosen."""
        if self._parse is None or self._stateful:
            return None
        return self._count_block

    @property
    def primed(self) -> bool:
        """True when earlier lines of a resumed file need not be fed again."""
        return self.chosen is not None and not self._stateful

    def parse(self, line: str) -> ParseResult:
        if self._parse is not None:
            return self._parse(line)
        if self._misses >= MAX_UNRECOGNISED:
            return None
        for module in self._modules:
            try:
                hit = module.sniff(line)
            except Exception:  # a sniff must never stop reading; treat it as "not this format"
                hit = False
            if hit:
                self.chosen = module.NAME
                self._stateful = getattr(module, "STATEFUL", False)
                self._parse = module.make_parser()
                self._count_block = getattr(module, "count_block", None)
                log.info("format detected: %s", self.chosen)
                if self._on_choose is not None:
                    self._on_choose(self.chosen)
                return self._parse(line)
        self._misses += 1
        if self._misses == MAX_UNRECOGNISED:
            log.warning(
                "no known format recognised in %d lines; name the format of this source", self._misses
            )
        return None


def _module(name: str) -> str:
    from . import _MODULES

    return _MODULES[name]


def make_parser(on_choose: Callable[[str], None] | None = None) -> Callable[[str], ParseResult]:
    return AutoParser(on_choose).parse


def sniff(line: str) -> bool:
    return False
