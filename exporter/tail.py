"""Follow a path, glob or symlink: bytes on disk -> blocks of complete lines, with durable positions.

A file is known by its identity (device, inode and a fingerprint of its first bytes, since inode numbers
are reused), never by its name. A file whose identity leaves its path (rename, delete, symlink swap) is
read to its end; its trailing partial line is finished only once it has been idle for `rotate_wait`.
Offsets always point just past the last complete line handed on, so a partial line is never parsed
early and never skipped after a restart. This is the only module that imports watchdog.
"""

from __future__ import annotations

import contextlib
import glob as globmod
import hashlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

log = logging.getLogger(__name__)

FINGERPRINT_BYTES = 256
DEFAULT_MAX_LINE = 64 * 1024
DEFAULT_CHUNK = 1024 * 1024


class Sink(Protocol):
    """Where the follower hands what it finds; the pipeline implements it."""

    def opened(self, tf: TrackedFile, event: str) -> None: ...
    def lines(self, tf: TrackedFile, data: bytes) -> None: ...
    def event(self, name: str) -> None: ...
    def oversize(self) -> None: ...
    def lost(self, reason: str, nbytes: int) -> None: ...
    def read_error(self) -> None: ...
    def read_bytes(self, nbytes: int) -> None: ...


def is_glob(pattern: str) -> bool:
    return globmod.has_magic(pattern)


def _fingerprint(fd: int, n: int) -> str:
    return hashlib.sha1(os.pread(fd, n, 0), usedforsecurity=False).hexdigest() if n else ""


class TrackedFile:
    """One open file and the position just past its last complete line."""

    __slots__ = ("path", "fd", "dev", "ino", "fp_len", "fp", "offset", "skipping", "size", "idle_since")
    __slots__ += ("rotated", "ctx")

    def __init__(self, path: str, fd: int, st: os.stat_result, offset: int, now: float):
        self.path = path
        self.fd = fd
        self.dev, self.ino = st.st_dev, st.st_ino
        self.fp_len = min(st.st_size, FINGERPRINT_BYTES)
        self.fp = _fingerprint(fd, self.fp_len)
        self.offset = offset
        self.skipping = False  # inside an oversize line: drop bytes up to its newline
        self.size = st.st_size
        self.idle_since = now
        self.rotated = False  # no longer at a path of the source: read to the end, then close
        self.ctx: Any = None  # the pipeline's per-file state (a parser for stateful formats)

    def same_content(self) -> bool:
        """True while the first bytes are still the ones this file started with."""
        return self.fp_len == 0 or _fingerprint(self.fd, self.fp_len) == self.fp

    def grow_fingerprint(self, size: int) -> None:
        if self.fp_len < FINGERPRINT_BYTES and size > self.fp_len:
            self.fp_len = min(size, FINGERPRINT_BYTES)
            self.fp = _fingerprint(self.fd, self.fp_len)

    def position(self) -> dict:
        return {
            "path": self.path,
            "dev": self.dev,
            "ino": self.ino,
            "fp_len": self.fp_len,
            "fp": self.fp,
            "offset": self.offset,
            "skipping": self.skipping,
        }

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class Follower:
    """Follows every file of one source. Driven by poll(); it never sleeps or starts threads itself."""

    def __init__(
        self,
        pattern: str,
        *,
        from_beginning: bool = False,
        max_line: int = DEFAULT_MAX_LINE,
        rotate_wait: float = 5.0,
        chunk: int = DEFAULT_CHUNK,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.pattern = pattern
        self.from_beginning = from_beginning
        self.max_line = max_line
        self.rotate_wait = rotate_wait
        self.chunk = max(chunk, 2 * max_line + 2)
        self.clock = clock
        self.files: list[TrackedFile] = []
        self.started = False  # after the first discovery, new files are read from byte 0
        self.up = False
        self.problem: str | None = None  # why the source is not readable, for the log and /readyz
        self._missing: list[dict] = []  # saved files that could not be found on restore
        self._known_paths: set[str] = set()

    # -- restart ---------------------------------------------------------------------------------
    def restore(self, saved: Iterable[dict]) -> None:
        """Reopen the files of a saved state at their offsets, found by identity beside the path."""
        self.started = True
        candidates = self._candidates()
        for entry in saved:
            try:
                dev, ino, offset = int(entry["dev"]), int(entry["ino"]), int(entry["offset"])
                fp_len, fp = int(entry["fp_len"]), str(entry["fp"])
            except (KeyError, TypeError, ValueError):
                continue
            found = None
            for path in [entry.get("path", ""), *candidates]:
                try:
                    st = os.stat(path)
                except (OSError, ValueError):
                    continue
                if (st.st_dev, st.st_ino) != (dev, ino) or st.st_size < fp_len:
                    continue
                try:
                    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                except OSError:
                    continue
                if _fingerprint(fd, fp_len) != fp:
                    os.close(fd)
                    continue
                found = TrackedFile(path, fd, st, min(offset, st.st_size), self.clock())
                found.skipping = bool(entry.get("skipping", False))
                break
            if found is None:
                self._missing.append(entry)
            elif not any((f.dev, f.ino) == (found.dev, found.ino) for f in self.files):
                self.files.append(found)
            else:
                found.close()

    def _candidates(self) -> list[str]:
        """Paths where a file of this source may be now: the pattern and rotated names beside it."""
        paths = set(globmod.glob(self.pattern)) | set(globmod.glob(globmod.escape(self.pattern) + "?*"))
        if is_glob(self.pattern):
            paths |= set(globmod.glob(self.pattern + "?*"))
        return sorted(paths)

    # -- following -------------------------------------------------------------------------------
    def poll(self, sink: Sink, budget: int = 4 * DEFAULT_CHUNK) -> bool:
        """Discover files, read up to `budget` bytes of complete lines; True if more is waiting."""
        now = self.clock()
        for entry in self._missing:
            log.warning(
                "%s: file %s (inode %s) read up to byte %s is gone (compressed or deleted while the "
                "exporter was down); what it held after that offset cannot be counted",
                self.pattern,
                entry.get("path"),
                entry.get("ino"),
                entry.get("offset"),
            )
            sink.event("missing")
        self._missing.clear()
        self._discover(sink)
        more = False
        # Rotated files first: their lines are older than those of the file now at the path.
        for tf in sorted(self.files, key=lambda f: not f.rotated):
            if budget <= 0:
                more = True
                break
            used, pending = self._read(tf, sink, budget, now)
            budget -= used
            more = more or pending
        self.files = [f for f in self.files if f.fd >= 0]
        return more

    def _discover(self, sink: Sink) -> None:
        paths = sorted(globmod.glob(self.pattern)) if is_glob(self.pattern) else [self.pattern]
        current: set[tuple[int, int]] = set()
        problem = None
        opened_any = False
        for path in paths:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                problem = f"{path} does not exist (yet)"
                continue
            except OSError as exc:
                problem = f"{path}: {exc.strerror or exc}"
                sink.read_error()
                continue
            if not stat.S_ISREG(st.st_mode):
                if not (is_glob(self.pattern) and stat.S_ISDIR(st.st_mode)):
                    problem = f"{path} is not a regular file"
                    sink.read_error()
                continue
            key = (st.st_dev, st.st_ino)
            tf = next((f for f in self.files if (f.dev, f.ino) == key), None)
            if tf is not None:
                tf.path = path
                tf.rotated = False
                current.add(key)
                opened_any = True
                continue
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except OSError as exc:
                problem = f"cannot open {path}: {exc.strerror or exc}"
                sink.read_error()
                continue
            start = 0 if (self.started or self.from_beginning) else st.st_size
            tf = TrackedFile(path, fd, st, start, self.clock())
            if path in self._known_paths:
                event = "rotate" if any(f.path == path for f in self.files) else "reopen"
            else:
                event = "open"
            self._known_paths.add(path)
            self.files.append(tf)
            sink.event(event)
            sink.opened(tf, event)
            current.add(key)
            opened_any = True
        for tf in self.files:
            if (tf.dev, tf.ino) not in current:
                if not tf.rotated:
                    tf.idle_since = self.clock()
                tf.rotated = True
        self.started = True
        self.up = opened_any and (problem is None or is_glob(self.pattern))
        if problem != self.problem:
            if problem:
                log.warning("source %s: %s", self.pattern, problem)
            elif self.problem:
                log.info("source %s: readable again", self.pattern)
        self.problem = problem if not self.up else None

    def _read(self, tf: TrackedFile, sink: Sink, budget: int, now: float) -> tuple[int, bool]:
        try:
            st = os.fstat(tf.fd)
        except OSError:
            sink.read_error()
            return 0, False
        size = st.st_size
        if size < tf.offset or (size != tf.size and not tf.same_content()):
            # Truncated (copytruncate) or rewritten in place: what was unread before is gone.
            lost = max(0, tf.size - tf.offset)
            if lost:
                sink.lost("truncated", lost)
            sink.event("truncate")
            tf.offset = 0
            tf.skipping = False
            tf.fp_len, tf.fp = min(size, FINGERPRINT_BYTES), _fingerprint(tf.fd, min(size, FINGERPRINT_BYTES))
            sink.opened(tf, "truncate")
        tf.grow_fingerprint(size)
        if size != tf.size:
            tf.idle_since = now  # "idle" means: the file has not grown
            tf.size = size
        if tf.offset >= size:
            if tf.rotated and now - tf.idle_since >= self.rotate_wait:
                self._finish(tf)
            return 0, False
        want = min(size - tf.offset, self.chunk, max(budget, self.max_line + 2))
        try:
            data = os.pread(tf.fd, want, tf.offset)
        except OSError:
            sink.read_error()
            return 0, False
        if not data:
            return 0, False
        sink.read_bytes(len(data))
        start = 0
        if tf.skipping:
            nl = data.find(b"\n")
            if nl < 0:
                tf.offset += len(data)
                return len(data), tf.offset < size
            start = nl + 1
            tf.skipping = False
        end = data.rfind(b"\n", start) + 1
        if end > start:
            block = data[start:end] if start or end < len(data) else data
            if len(block) > self.max_line:
                block = self._drop_oversize(block, sink)
            if block:
                sink.lines(tf, block)
        else:
            end = start
        rest = len(data) - end
        if rest > self.max_line:
            sink.oversize()
            tf.skipping = True
            end = len(data)
        elif (
            rest and tf.rotated and tf.offset + len(data) >= size and now - tf.idle_since >= self.rotate_wait
        ):
            # The last line of a rotated file that nobody writes to any more: finish it now.
            if not tf.skipping:
                sink.lines(tf, data[end:] + b"\n")
            end = len(data)
        tf.offset += end
        return len(data), tf.offset < size and end > 0

    def _drop_oversize(self, block: bytes, sink: Sink) -> bytes:
        kept = []
        for line in block.split(b"\n")[:-1]:
            if len(line) > self.max_line:
                sink.oversize()
            else:
                kept.append(line)
        return b"\n".join(kept) + b"\n" if kept else b""

    def _finish(self, tf: TrackedFile) -> None:
        tf.close()
        tf.fd = -1

    def finish(self, sink: Sink) -> None:
        """End of input (replay): hand on every file's trailing partial line as a last line."""
        for tf in self.files:
            size = os.fstat(tf.fd).st_size
            while tf.offset < size:
                data = os.pread(tf.fd, min(size - tf.offset, self.max_line + 1), tf.offset)
                if not data:
                    break
                sink.read_bytes(len(data))
                if not tf.skipping and len(data) <= self.max_line:
                    sink.lines(tf, data + b"\n")
                elif not tf.skipping:
                    sink.oversize()
                tf.offset += len(data)
                tf.skipping = True  # whatever follows belongs to the same (oversize) line

    # -- reporting -------------------------------------------------------------------------------
    def positions(self) -> list[dict]:
        return [tf.position() for tf in self.files]

    def behind(self) -> int:
        return sum(max(0, tf.size - tf.offset) for tf in self.files)

    def watch_dirs(self) -> set[str]:
        """Directories whose events should wake the reader: the pattern's and symlink targets'."""
        dirs = set()
        base = self.pattern
        while is_glob(base):
            base = os.path.dirname(base)
        dirs.add(os.path.dirname(os.path.abspath(base)) if not os.path.isdir(base) else os.path.abspath(base))
        for path in globmod.glob(self.pattern) if is_glob(self.pattern) else [self.pattern]:
            if os.path.islink(path):
                dirs.add(os.path.dirname(os.path.realpath(path)))
        return {d for d in dirs if os.path.isdir(d)}

    def close(self) -> None:
        for tf in self.files:
            tf.close()
            tf.fd = -1
        self.files = []


class Waker:
    """Wakes the pipeline: set() by file events (watchdog) or by anything else; wait() with a timeout."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        woke = self._event.wait(timeout)
        self._event.clear()
        return woke


class DirectoryWatcher:
    """Watches directories with watchdog (inotify where it works) and wakes the pipeline on any event."""

    def __init__(self, waker: Waker, poll: bool = False):
        self._waker = waker
        self._poll = poll
        self._observer = None
        self._watched: set[str] = set()

    def start(self, dirs: Iterable[str]) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        waker = self._waker

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):  # noqa: ANN001 - watchdog's signature
                if event.event_type not in ("opened", "closed_no_write"):
                    waker.set()

        if self._poll:
            self._observer = None  # the pipeline's timer is the only wake-up source
            return
        self._handler = Handler()
        self._observer = Observer()
        self._observer.daemon = True
        self.update(dirs)
        self._observer.start()

    def update(self, dirs: Iterable[str]) -> None:
        if self._observer is None:
            return
        for d in set(dirs) - self._watched:
            try:
                self._observer.schedule(self._handler, d, recursive=False)
                self._watched.add(d)
            except OSError as exc:
                log.warning("cannot watch %s (%s); polling it instead", d, exc)

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
            self._observer = None
