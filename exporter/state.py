"""The state file: read positions and the counter values that correspond to exactly those positions."""

from __future__ import annotations

import contextlib
import json
import os
import re
import zlib
from glob import escape as glob_escape
from pathlib import Path

FORMAT_VERSION = 1


class StateError(Exception):
    """The state file exists but cannot be used (corrupt, another version); the message says why."""


# On disk: a header line written once when the file is made, then two slots of equal size, each holding
# one copy of the state: a line {"seq": N, "length": L, "crc32": C}, then L bytes of the JSON document,
# then spaces. A save overwrites the older slot in place and fdatasyncs the file: no new file, no rename,
# no directory fsync, so the file's size and metadata never change and one flush makes it durable. A
# save torn by a crash leaves a slot whose checksum fails, and the other slot (the previous save, already
# durable) is read. The file is made anew (temporary file, fsync, rename, fsync of the directory) on the
# first save of a process and when the state outgrows a slot.
MAGIC = b"# mailcode-exporter state file"
HEADER_SIZE = 256
MIN_SLOT = 64 * 1024
_HEADER = re.compile(rb"# mailcode-exporter state file, slots of (\d+) bytes")


def load(path: Path) -> dict | None:
    """The saved state, None when there is none; StateError when it is unusable."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read state file {path}: {exc.strerror or exc}") from None
    if data.startswith(MAGIC):
        data = _current_slot(data, path)
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise StateError(f"state file {path} is not UTF-8 text (corrupt)") from None
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


def _current_slot(data: bytes, path: Path) -> bytes:
    """The document in the slot with the higher sequence number among those whose checksum holds."""
    m = _HEADER.match(data)
    if m is None:
        raise StateError(f"state file {path} is corrupt: its header line is damaged")
    size = int(m.group(1))
    best: tuple[int, bytes] | None = None
    for k in (0, 1):
        slot = data[HEADER_SIZE + k * size : HEADER_SIZE + (k + 1) * size]
        nl = slot.find(b"\n", 0, 256)
        try:
            head = json.loads(slot[:nl]) if nl > 0 else None
            seq, length, crc = head["seq"], head["length"], head["crc32"]
        except (ValueError, TypeError, KeyError):
            continue  # never written, or torn by a crash
        body = slot[nl + 1 : nl + 1 + length] if isinstance(length, int) else b""
        valid = isinstance(seq, int) and len(body) == length and zlib.crc32(body) == crc
        if valid and (best is None or seq > best[0]):
            best = (seq, body)
    if best is None:
        raise StateError(f"state file {path} is corrupt: neither of its two copies passes its checksum")
    return best[1]


def _record(seq: int, body: bytes) -> bytes:
    head = json.dumps({"seq": seq, "length": len(body), "crc32": zlib.crc32(body)}, separators=(",", ":"))
    return head.encode() + b"\n" + body + b"\n"


def _encode(sources: dict, counters: dict | str) -> bytes:
    """The document; counters may come already encoded (Counts.snapshot_json())."""
    if isinstance(counters, str):
        head = json.dumps({"version": FORMAT_VERSION, "sources": sources}, separators=(",", ":"))
        return f'{head[:-1]},"counters":{counters}}}'.encode()
    doc = {"version": FORMAT_VERSION, "sources": sources, "counters": counters}
    return json.dumps(doc, separators=(",", ":")).encode()


_flush = getattr(os, "fdatasync", os.fsync)  # fdatasync: the data, not the (unchanged) metadata


class StateWriter:
    """Saves the state of one exporter into its file: in place, one of two slots in turn."""

    def __init__(self, path: Path, fsync: bool = True):
        self.path = Path(path)
        self.fsync = fsync
        self._fd: int | None = None
        self._ident: tuple[int, int, int] | None = None  # device, inode and size of the file made
        self._slot = 0  # size of a slot
        self._seq = 0
        self._next = 0  # the slot the next save overwrites
        self._extent = [0, 0]  # bytes written into each slot (a shorter save pads over the rest)

    def save(self, sources: dict, counters: dict | str) -> None:
        """Save positions and counters (a dict, or its JSON text as Counts.snapshot_json() gives it)."""
        body = _encode(sources, counters)
        self._seq += 1
        record = _record(self._seq, body)
        if not self._in_place(len(record)):
            self._create(record)
            return
        k = self._next
        out = record + b" " * (self._extent[k] - len(record))
        view, offset = memoryview(out), HEADER_SIZE + k * self._slot
        while view:
            n = os.pwrite(self._fd, view, offset)  # type: ignore[arg-type]
            view, offset = view[n:], offset + n
        if self.fsync:
            _flush(self._fd)  # type: ignore[arg-type]
        self._extent[k] = max(self._extent[k], len(record))
        self._next = 1 - k

    def _in_place(self, size: int) -> bool:
        """Whether this save fits a slot of the file this writer made, still at its path."""
        if self._fd is None or size > self._slot:
            return False
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino, st.st_size) == self._ident  # not replaced, not rewritten

    def _create(self, record: bytes) -> None:
        """Make the file anew with `record` in slot 0: temporary file, fsync, rename, fsync the directory."""
        size = MIN_SLOT
        while size < 2 * len(record):
            size *= 2
        header = MAGIC + f", slots of {size} bytes; the valid copy with the higher seq is current".encode()
        blank = b" " * (size - 1) + b"\n"
        data = b"".join(
            [header.ljust(HEADER_SIZE - 1) + b"\n", record, blank[len(record) :], blank]
        )  # every byte written now: later saves allocate nothing, so they change no metadata
        tmp = self.path.with_name(f".{self.path.name}.save.tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self.fsync:
                os.fsync(fd)
            os.replace(tmp, self.path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self.fsync:
            dirfd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
        self.close()
        st = os.fstat(fd)
        self._fd, self._ident, self._slot = fd, (st.st_dev, st.st_ino, st.st_size), size
        self._next, self._extent = 1, [len(record), 0]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def save(path: Path, sources: dict, counters: dict, fsync: bool = True) -> None:
    """One save by a writer of its own (the file is made anew): for a single save, as in tests."""
    writer = StateWriter(path, fsync=fsync)
    try:
        writer.save(sources, counters)
    finally:
        writer.close()


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
