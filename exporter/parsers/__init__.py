"""Log formats. Each module is pure: it turns one line of text into events, with no I/O and no metrics.

Every format module defines:
    NAME: str                   the format's name as used in --source and the config file
    APP_LOG: bool               True for application-log formats (one code per entry, direction configured)
    make_parser(**options)      returns parse(line: str) -> ParseResult (see exporter.events);
                                stateful formats (a #Fields: header) return a fresh object's method
    sniff(line: str) -> bool    True when the line is unmistakably of this format (used by `auto`)

and may define:
    STATEFUL: bool              True when lines depend on earlier ones (a header): the pipeline makes a
                                parser per file and, resuming mid-file, feeds it the earlier lines again
    count_block(text) -> (outcome, ignored, unparsed, {Event: n}) | None
                                a faster way to count a whole block of complete lines (str, or bytes when
                                ASCII), giving exactly what parse() line by line would; None: use parse()
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

# Format name -> module name inside this package. Add a format here and in config.py's options.
_MODULES = {
    "postfix": "postfix",
    "exim": "exim",
    "sendmail": "sendmail",
    "iis": "iis",
    "exchange": "exchange",
    "opensmtpd": "opensmtpd",
    "qmail": "qmail",
    "haraka": "haraka",
    "courier": "courier",
    "jsonl": "jsonl",
    "csv": "csvfmt",
    "regex": "regexfmt",
    "auto": "auto",
}


def available() -> list[str]:
    """Names of the formats whose modules are present."""
    names = []
    for name, module in _MODULES.items():
        if importlib.util.find_spec(f"{__name__}.{module}") is not None:
            names.append(name)
    return names


def get(name: str) -> ModuleType:
    """The module of a format; KeyError with the known names if there is none."""
    module = _MODULES.get(name)
    if module is None:
        raise KeyError(f"unknown format {name!r} (known: {', '.join(available())})")
    return importlib.import_module(f"{__name__}.{module}")
