"""The state file: read positions and the counter values that correspond to exactly those positions."""

from __future__ import annotations

import contextlib
import json
import os
from glob import escape as glob_escape
from pathlib import Path

FORMAT_VERSION = 1


class StateError(Exception):
    """The state file exists but cannot be used (corrupt, another version); the message says why."""


def load(path: Path) -> dict | None:
    """The saved state, None when there is none; StateError when it is unusable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read state file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise StateError(f"state file {path} is not UTF-8 text (corrupt)") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise StateError(f"state file {path} is corrupt: {exc}") from None
    if not isinstance(doc, dict):
        raise StateError(f"state file {path} is corrupt: not a JSON object")
    version = doc.get("version")
    if version != FORMAT_VERSION:
        raise StateError(
            f"state file {path} has version {version!r}; this exporter reads version {FORMAT_VERSION}"
        )
    if not isinstance(doc.get("sources", {}), dict) or not isinstance(doc.get("counters", {}), dict):
        raise StateError(f"state file {path} is corrupt: sources and counters must be objects")
    return doc


def save(path: Path, sources: dict, counters: dict, fsync: bool = True) -> None:
    """Write atomically: a temporary file in the same directory, fsync, rename, fsync the directory.

    The temporary file has a fixed name (one exporter owns a state file), so a save costs no random
    names or extra directory entries; remove_stale_temp() clears one a kill -9 left half-written.
    """
    path = Path(path)
    doc = {"version": FORMAT_VERSION, "sources": sources, "counters": counters}
    data = json.dumps(doc, separators=(",", ":")).encode()
    tmp = path.with_name(f".{path.name}.save.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        dirfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)


def remove_stale_temp(path: Path) -> int:
    """Remove temporary files a save killed half-way left beside the state file; how many."""
    path = Path(path)
    removed = 0
    with contextlib.suppress(OSError):
        for tmp in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed += 1
    return removed


def set_aside(path: Path) -> Path | None:
    """Rename an unusable state file out of the way (kept for a look), so a restart cannot trip on it."""
    path = Path(path)
    target = path.with_name(path.name + ".unusable")
    try:
        os.replace(path, target)
    except OSError:
        return None
    return target


def check_writable(path: Path) -> str | None:
    """Why the state file cannot be written, or None when its directory accepts it."""
    parent = Path(path).parent
    if not parent.is_dir():
        return f"directory {parent} does not exist"
    if Path(path).is_dir():
        return f"{path} is a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"directory {parent} is not writable"
    return None
