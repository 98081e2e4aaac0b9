"""RFC 3463 enhanced status codes: the shipped list and the classification of a logged code."""

from __future__ import annotations

import re
from importlib import resources

import yaml

OTHER = "other"
CLASSES = ("2", "4", "5")

_TEMPLATE_RE = re.compile(r"X\.(?:0|[1-9][0-9]{0,2})\.(?:0|[1-9][0-9]{0,2})", re.ASCII)
# RFC 3463: class "." 1*3digit "." 1*3digit. Leading zeros fit that grammar, so "5.01.001" is 5.1.1.
_CODE_RE = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})", re.ASCII)
_KEYS = {"code", "description", "rfc"}

_known: dict[str, str] | None = None


class EnhancedCodesError(ValueError):
    """The shipped list is not usable; the message names the entry."""


def parse_document(text: str, origin: str = "enhanced status codes") -> tuple[str, dict[str, str]]:
    """(retrieved date, {"X.s.d": description}) from the YAML text; EnhancedCodesError when malformed."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EnhancedCodesError(f"{origin}: not valid YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(doc, dict) or set(doc) != {"retrieved", "codes"}:
        raise EnhancedCodesError(f"{origin}: expected exactly the keys 'retrieved' and 'codes'")
    retrieved = str(doc["retrieved"])
    items = doc["codes"]
    if not isinstance(items, list) or not items:
        raise EnhancedCodesError(f"{origin}: 'codes' must be a non-empty list")
    templates: dict[str, str] = {}
    for i, item in enumerate(items, 1):
        where = f"{origin}: entry {i}"
        if not isinstance(item, dict) or not {"code", "description"} <= set(item) or set(item) - _KEYS:
            raise EnhancedCodesError(f"{where}: expected code, description and optionally rfc")
        code, description = item["code"], item["description"]
        if not isinstance(code, str) or not _TEMPLATE_RE.fullmatch(code):
            raise EnhancedCodesError(f"{where}: code {code!r} is not a template like X.1.1")
        if code in templates:
            raise EnhancedCodesError(f"{where}: code {code} appears twice")
        if not isinstance(description, str) or not description.strip():
            raise EnhancedCodesError(f"{where} ({code}): description must be a non-empty string")
        templates[code] = description.strip()
    return retrieved, templates


def _read() -> tuple[str, dict[str, str]]:
    text = resources.files("exporter").joinpath("data/enhanced_status_codes.yaml").read_text(encoding="utf-8")
    return parse_document(text, "built-in enhanced status codes")


def expand(templates: dict[str, str]) -> dict[str, str]:
    """Concrete codes of every class: {"X.1.1": d} -> {"2.1.1": d, "4.1.1": d, "5.1.1": d}."""
    return {f"{cls}{code[1:]}": text for code, text in templates.items() for cls in CLASSES}


def retrieved() -> str:
    """The date the shipped list was checked against the IANA registry."""
    return _read()[0]


def load() -> dict[str, str]:
    """A fresh map from each known concrete code ("5.1.1") to its short description."""
    return expand(_read()[1])


def _table() -> dict[str, str]:
    global _known
    if _known is None:
        # Each key maps to itself so the label handed out is always the same string object.
        _known = {code: code for code in load()}
    return _known


def preload() -> None:
    """Read the list now (a pipeline starting), not when the first line with an enhanced code comes."""
    _table()


def classify_enhanced(text: str | None) -> str | None:
    """None for None; a known concrete code as itself; anything else (unknown, malformed) -> "other"."""
    if text is None:
        return None
    table = _known if _known is not None else _table()
    hit = table.get(text)
    if hit is not None:
        return hit
    m = _CODE_RE.fullmatch(text.strip())
    if m is None:
        return OTHER
    return table.get(f"{m.group(1)}.{int(m.group(2))}.{int(m.group(3))}", OTHER)
