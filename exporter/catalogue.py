"""The catalogue of response codes and the classification of a logged code into bounded labels."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

SUCCESS = "success"
FAILURE = "failure"
OUTCOMES = (SUCCESS, FAILURE)

SMTP = "smtp"
PLEX = "plex"
UNKNOWN = "unknown"

CODE_NONE = "none"
CODE_OTHER = "other"

_CODE_RE = re.compile(r"^[0-9]{1,6}$")
_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class CatalogueError(ValueError):
    """A catalogue file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True, slots=True)
class Entry:
    code: str
    description: str
    type: str
    outcome: str


def default_outcome(code: str) -> str:
    """Outcome implied by a code's class: 0, 1, 2xx and 3xx succeed; everything else fails."""
    n = int(code)
    return SUCCESS if n in (0, 1) or 200 <= n < 400 else FAILURE


def _normalise(code: str) -> str:
    return str(int(code)) if _CODE_RE.match(code) else code


def _entries_from_yaml(text: str, origin: str) -> list[Entry]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{origin}: not valid YAML: {exc}".replace("\n", " ")) from None
    if doc is None:
        return []
    if not isinstance(doc, dict) or set(doc) - {"codes"}:
        raise CatalogueError(f"{origin}: expected a mapping with one key 'codes' (a list of entries)")
    items = doc.get("codes") or []
    if not isinstance(items, list):
        raise CatalogueError(f"{origin}: 'codes' must be a list of entries")
    entries: list[Entry] = []
    seen: set[str] = set()
    for i, item in enumerate(items, 1):
        where = f"{origin}: entry {i}"
        if not isinstance(item, dict):
            raise CatalogueError(f"{where}: expected a mapping with code, description, type, outcome")
        unknown = set(item) - {"code", "description", "type", "outcome"}
        if unknown:
            raise CatalogueError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        raw = item.get("code")
        if raw is None or not _CODE_RE.match(str(raw)):
            raise CatalogueError(f"{where}: code {raw!r} is not a number of 1 to 6 digits")
        code = _normalise(str(raw))
        if code in seen:
            raise CatalogueError(f"{where}: code {code} appears twice")
        seen.add(code)
        description = item.get("description")
        if not isinstance(description, str) or not description.strip():
            raise CatalogueError(f"{where} (code {code}): description must be a non-empty string")
        typ = item.get("type", SMTP)
        if not isinstance(typ, str) or not _TYPE_RE.match(typ):
            raise CatalogueError(f"{where} (code {code}): type {typ!r} must be a short lowercase word")
        outcome = item.get("outcome", default_outcome(code))
        if outcome not in OUTCOMES:
            raise CatalogueError(f"{where} (code {code}): outcome {outcome!r} must be success or failure")
        entries.append(Entry(code, description, typ, outcome))
    return entries


def builtin_entries() -> list[Entry]:
    """The 28 codes shipped with the package."""
    text = resources.files("exporter").joinpath("data/catalogue.yaml").read_text(encoding="utf-8")
    return _entries_from_yaml(text, "built-in catalogue")


def load_user_entries(path: Path) -> list[Entry]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"catalogue file {path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CatalogueError(f"catalogue file {path}: not UTF-8 text") from None
    return _entries_from_yaml(text, f"catalogue file {path}")


class Catalogue:
    """Maps a logged code to bounded label values (code, type, outcome)."""

    def __init__(self, entries: Iterable[Entry]):
        merged: dict[str, Entry] = {}
        for entry in entries:
            merged[entry.code] = entry  # later entries (a user file) override earlier ones
        self.entries: tuple[Entry, ...] = tuple(sorted(merged.values(), key=lambda e: int(e.code)))
        table: dict[str, tuple[str, str, str]] = {}
        for first in "2345":
            for second in "012345":
                for third in "0123456789":
                    code = first + second + third
                    table[code] = (code, SMTP, default_outcome(code))
        for entry in self.entries:
            table[entry.code] = (entry.code, entry.type, entry.outcome)
        self._table = table
        self._other = (CODE_OTHER, UNKNOWN, FAILURE)
        self._none_sent = (CODE_NONE, SMTP, SUCCESS)
        self._none_failed = (CODE_NONE, SMTP, FAILURE)

    @classmethod
    def load(cls, user_file: Path | None = None) -> Catalogue:
        entries = builtin_entries()
        if user_file is not None:
            entries += load_user_entries(user_file)
        return cls(entries)

    def classify(self, code: str | None, status: str | None = None) -> tuple[str, str, str]:
        """Return (code label, type, outcome); the code label is always from a bounded set."""
        if code is None:
            return self._none_sent if status == "sent" else self._none_failed
        hit = self._table.get(code)
        if hit is not None:
            return hit
        code = code.strip()
        if _CODE_RE.match(code):
            hit = self._table.get(str(int(code)))
            if hit is not None:
                return hit
        return self._other

    def get(self, code: str) -> Entry | None:
        for entry in self.entries:
            if entry.code == code:
                return entry
        return None
