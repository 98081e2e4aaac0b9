"""Follow a path, glob or symlink: bytes on disk -> blocks of complete lines, with durable positions.

A file is known by its identity (device, inode and a fingerprint of its first bytes, since inode numbers
are reused), never by its name. A file whose identity leaves its path (rename, delete, symlink swap) is
read to its end; its trailing partial line is finished only once it has been idle for `rotate_wait`.
A file truncated in place (copytruncate) is first looked for beside its path: the copy holds the bytes
not read yet. Offsets always point just past the last complete line handed on, so a partial line is
never parsed early and never skipped after a restart. This is the only module that imports watchdog.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob as globmod
import hashlib
import logging
import os
import select
import stat
import struct
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

log = logging.getLogger(__name__)

FINGERPRINT_BYTES = 256
DEFAULT_MAX_LINE = 64 * 1024
DEFAULT_CHUNK = 1024 * 1024
_O_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)


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


def _why_unopenable(path: str) -> str:
    """The reason _open() failed, for the log and /readyz ("Permission denied")."""
    try:
        os.close(os.open(path, _O_READ))
    except OSError as exc:
        return exc.strerror or str(exc)
    return "not a regular file, or replaced while it was opened"


def _open(path: str) -> tuple[int, os.stat_result] | None:
    """Open a regular file for reading; its descriptor and fstat, or None (not there, not regular)."""
    try:
        fd = os.open(path, _O_READ)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None
    return fd, st


class TrackedFile:
    """One open file and the position just past its last complete line."""

    __slots__ = ("path", "real", "fd", "dev", "ino", "fp_len", "fp", "offset", "skipping", "size")
    __slots__ += ("idle_since", "rotated", "seen", "ctx")

    def __init__(self, path: str, fd: int, st: os.stat_result, offset: int, now: float):
        self.path = path  # where it was found (the pattern's path, even after it was renamed away)
        self.real = os.path.realpath(path)  # the file behind a symlink, to find it again after a swap
        self.fd = fd
        self.dev, self.ino = st.st_dev, st.st_ino
        self.fp_len = min(st.st_size, FINGERPRINT_BYTES)
        self.fp = _fingerprint(fd, self.fp_len)
        self.offset = offset
        self.skipping = False  # inside an oversize line: drop bytes up to its newline
        self.size = st.st_size  # as last seen: what is known to exist
        self.idle_since = now
        self.rotated = False  # no longer at a path of the source: read to the end, then close
        self.seen = offset  # bytes up to here were counted in read_bytes (a partial line is re-read)
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
            "real": self.real,
            "dev": self.dev,
            "ino": self.ino,
            "fp_len": self.fp_len,
            "fp": self.fp,
            "offset": self.offset,
            "size": self.size,  # known to exist: what a truncation while we are down takes away
            "skipping": self.skipping,
            "rotated": self.rotated,
        }

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = -1


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
        self.started = False  # after the first discovery (or a restore), new files are read from byte 0
        self.up = False
        self.problem: str | None = None  # why the source is not readable, for /readyz
        self._logged_problem: str | None = None
        self._missing: list[dict] = []  # saved files that could not be found on restore
        self._events: list[str] = []  # file events found on restore, handed on at the first poll
        self._resumed: list[TrackedFile] = []  # restored files the sink has not been told about yet
        self._known_paths: set[str] = set()
        self._added = False
        self._lost = 0  # bytes found lost on restore, counted at the first poll

    # -- restart ---------------------------------------------------------------------------------
    def restore(self, saved: Iterable[dict]) -> None:
        """Reopen the files of a saved state at their offsets, found by identity beside the path."""
        self.started = True
        candidates = self._candidates()
        for entry in saved:
            try:
                dev, ino, offset = int(entry["dev"]), int(entry["ino"]), int(entry["offset"])
                fp_len, fp = int(entry["fp_len"]), str(entry["fp"])
                seen = int(entry.get("size", offset))
                paths = [str(entry.get("path", "")), str(entry.get("real") or entry.get("path", ""))]
            except (KeyError, TypeError, ValueError, AttributeError):
                log.warning("%s: a malformed file entry in the state file was ignored", self.pattern)
                self._events.append("missing")
                continue
            if paths[1] and paths[1] != paths[0]:  # a symlink's old target may have been rotated too
                paths += sorted(globmod.glob(globmod.escape(paths[1]) + "?*"))
            paths = list(dict.fromkeys(p for p in [*paths, *candidates] if p))
            found, truncated = self._find_saved(paths, (dev, ino), fp_len, fp, offset)
            done = bool(entry.get("rotated")) and seen <= offset  # nothing more was expected of it
            if truncated and not done:
                self._events.append("truncate")
                copied = found.size if found is not None else 0
                self._lost += max(0, seen - max(offset, copied))  # seen before the crash, never read
            if found is None:
                if done:  # a rotated file read to its end: gone (or its inode reused), nothing lost
                    log.info("%s: %s, rotated and read to its end, is gone", self.pattern, entry.get("path"))
                else:
                    self._missing.append({**entry, "truncated": truncated, "unread": max(0, seen - offset)})
                continue
            found.skipping = bool(entry.get("skipping", False))
            if self._tracked((found.dev, found.ino)) is not None:
                found.close()
                continue
            self.files.append(found)
            self._resumed.append(found)
            if entry.get("path"):
                self._known_paths.add(str(entry["path"]))

    def _find_saved(
        self, paths: list[str], key: tuple[int, int], fp_len: int, fp: str, offset: int
    ) -> tuple[TrackedFile | None, bool]:
        """The saved file by identity or, if it was truncated in place or is gone, its copy by content;
        and whether the file was found truncated in place (its unread rest is then gone or in the copy)."""
        truncated = False
        for path in paths:
            opened = _open(path)
            if opened is None:
                continue
            fd, st = opened
            if (st.st_dev, st.st_ino) != key:
                os.close(fd)
                continue
            if st.st_size >= max(offset, fp_len) and _fingerprint(fd, fp_len) == fp:
                return TrackedFile(path, fd, st, offset, self.clock()), False
            os.close(fd)  # same inode, other content: truncated (or the inode reused) while we were down
            truncated = True
            break
        if fp_len:
            for path in paths:  # copytruncate: the copy beside the path has the same first bytes
                copy = self._open_copy(path, key, fp_len, fp, offset)
                if copy is not None:
                    log.info(
                        "%s: resuming %s, a copy of a file read before, at byte %d",
                        *(self.pattern, path, offset),
                    )
                    return copy, truncated
        return None, truncated

    def _open_copy(
        self, path: str, not_key: tuple[int, int], fp_len: int, fp: str, offset: int
    ) -> TrackedFile | None:
        """A file at path that starts with the same fp_len bytes and holds more than offset bytes."""
        opened = _open(path)
        if opened is None:
            return None
        fd, st = opened
        key = (st.st_dev, st.st_ino)
        if (
            key == not_key
            or any((f.dev, f.ino) == key for f in self.files)
            or st.st_size <= offset
            or st.st_size < fp_len
            or _fingerprint(fd, fp_len) != fp
        ):
            os.close(fd)
            return None
        tf = TrackedFile(path, fd, st, offset, self.clock())
        tf.rotated = True
        return tf

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
        self._report_restore(sink)
        self._discover(sink)
        more = False
        # Rotated files first: their lines are older than those of the file now at the path.
        for tf in sorted(self.files, key=lambda f: not f.rotated):
            pending = True
            while pending and budget > 0:
                used, pending = self._read(tf, sink, budget, now)
                budget -= used
            more = more or pending
        self.files = [f for f in self.files if f.fd >= 0]
        more, self._added = more or self._added, False
        return more

    def _report_restore(self, sink: Sink) -> None:
        for entry in self._missing:
            if entry["truncated"]:
                log.warning(
                    "%s: %s was truncated (or its inode reused) while the exporter was down; what was "
                    "written to it after byte %s and before the truncation cannot be counted",
                    self.pattern,
                    entry.get("path"),
                    entry.get("offset"),
                )
                continue
            log.warning(
                "%s: file %s (inode %s) read up to byte %s is gone (compressed or deleted while the "
                "exporter was down); the %s bytes after that offset, and any written later, cannot be "
                "counted",
                self.pattern,
                entry.get("path"),
                entry.get("ino"),
                entry.get("offset"),
                entry["unread"],
            )
            sink.event("missing")
            if entry["unread"]:
                sink.lost("missing", entry["unread"])
        self._missing.clear()
        for name in self._events:
            sink.event(name)
        self._events.clear()
        if self._lost:
            sink.lost("truncated", self._lost)
            self._lost = 0
        for tf in self._resumed:
            if tf.fd >= 0:
                sink.opened(tf, "resume")
        self._resumed.clear()

    def _discover(self, sink: Sink) -> None:
        globbed = is_glob(self.pattern)
        paths = sorted(globmod.glob(self.pattern)) if globbed else [self.pattern]
        current: set[tuple[int, int]] = set()
        problem = None if paths else f"no file matches {self.pattern} (yet)"
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
                if not (globbed and stat.S_ISDIR(st.st_mode)):
                    problem = f"{path} is not a regular file"
                    sink.read_error()
                continue
            tf = self._tracked((st.st_dev, st.st_ino))
            if tf is None:
                tf = self._open_new(path, sink)
                if tf is None:
                    problem = f"cannot open {path}: {_why_unopenable(path)}"
                    sink.read_error()
                    continue
            tf.path = path
            tf.rotated = False
            current.add((tf.dev, tf.ino))
        now = self.clock()
        for tf in self.files:
            if (tf.dev, tf.ino) not in current and not tf.rotated:
                tf.rotated = True
                tf.idle_since = now
        self.started = True
        self.up = bool(current) and (problem is None or globbed)
        if problem != self._logged_problem:  # log a change, not every poll
            if problem:
                log.warning("source %s: %s", self.pattern, problem)
            elif self._logged_problem:
                log.info("source %s: readable again", self.pattern)
            self._logged_problem = problem
        self.problem = problem if not self.up else None

    def _tracked(self, key: tuple[int, int]) -> TrackedFile | None:
        return next((f for f in self.files if (f.dev, f.ino) == key), None)

    def _open_new(self, path: str, sink: Sink) -> TrackedFile | None:
        opened = _open(path)
        if opened is None:
            return None
        fd, st = opened
        tf = self._tracked((st.st_dev, st.st_ino))
        if tf is not None:  # replaced between stat and open by a file we already follow
            os.close(fd)
            return tf
        tf = TrackedFile(path, fd, st, 0, self.clock())
        if not (self.started or self.from_beginning):
            tf.offset, tf.skipping = self._line_start(fd, st.st_size)
            tf.seen = st.st_size
        if path in self._known_paths:
            event = "rotate" if any(f.path == path and not f.rotated for f in self.files) else "reopen"
        else:
            event = "open"
        self._known_paths.add(path)
        self.files.append(tf)
        sink.event(event)
        sink.opened(tf, event)
        return tf

    def _line_start(self, fd: int, size: int) -> tuple[int, bool]:
        """Where to start in a file read "from its end": after its last newline, so that a line being
        written right now is counted whole once it is complete, and never as a fragment."""
        back = min(size, self.max_line + 1)
        try:
            tail = os.pread(fd, back, size - back)
        except OSError:
            return size, False
        nl = tail.rfind(b"\n")
        if nl >= 0:
            return size - back + nl + 1, False
        if size <= self.max_line:
            return 0, False
        return size, True  # inside a line already too long: skip to its end

    def _truncated(self, tf: TrackedFile, size: int) -> bool:
        """Files only grow; a smaller size or other first bytes mean the file was truncated (or rewritten)."""
        return size < tf.size or size < tf.offset or (size != tf.size and not tf.same_content())

    def _on_truncate(self, tf: TrackedFile, size: int, sink: Sink) -> None:
        """Count what is gone; the bytes not read yet may still be in a copy beside the path."""
        copy = None
        for path in self._candidates() + sorted(globmod.glob(globmod.escape(tf.real) + "?*")):
            copy = self._open_copy(path, (tf.dev, tf.ino), tf.fp_len, tf.fp, tf.offset)
            if copy is not None:
                break
        lost = max(0, tf.size - max(tf.offset, copy.size if copy is not None else 0))
        if lost:
            sink.lost("truncated", lost)
        sink.event("truncate")
        if copy is not None:
            copy.skipping = tf.skipping
            copy.idle_since = self.clock()
            self.files.append(copy)
            self._added = True  # read at once, not at the next wake-up
            sink.opened(copy, "copy")
        log.info(
            "%s: %s was truncated%s%s",
            self.pattern,
            tf.path,
            f"; reading the rest of its copy {copy.path}" if copy is not None else "",
            f"; {lost} bytes not read were lost" if lost else "",
        )
        fp_len = min(size, FINGERPRINT_BYTES)
        tf.fp_len, tf.fp = fp_len, _fingerprint(tf.fd, fp_len)
        tf.offset = tf.seen = tf.size = 0
        tf.skipping = False
        sink.opened(tf, "truncate")

    def _read(self, tf: TrackedFile, sink: Sink, budget: int, now: float) -> tuple[int, bool]:
        try:
            size = os.fstat(tf.fd).st_size
        except OSError:
            sink.read_error()
            return 0, False
        if self._truncated(tf, size):
            self._on_truncate(tf, size, sink)
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
        if tf.offset + len(data) > tf.seen:
            sink.read_bytes(tf.offset + len(data) - tf.seen)
            tf.seen = tf.offset + len(data)
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
            sink.lines(tf, data[end:] + b"\n")
            end = len(data)
        tf.offset += end
        return len(data), tf.offset < size and end > 0

    def _drop_oversize(self, block: bytes, sink: Sink) -> bytes:
        # Fast exact check first: if every aligned window of max_line/2 bytes holds a newline, no line
        # can be longer than max_line, and the block goes on untouched (no split and join per block).
        step = max(1, self.max_line // 2)
        find = block.find
        if all(find(b"\n", i, i + step) >= 0 for i in range(0, len(block), step)):
            return block
        kept = []
        for line in block.split(b"\n")[:-1]:
            if len(line) > self.max_line:
                sink.oversize()
            else:
                kept.append(line)
        return b"\n".join(kept) + b"\n" if kept else b""

    def _finish(self, tf: TrackedFile) -> None:
        tf.close()

    def finish(self, sink: Sink) -> None:
        """End of input (replay): hand on every file's trailing partial line as a last line."""
        for tf in self.files:
            size = os.fstat(tf.fd).st_size
            while tf.offset < size:
                data = os.pread(tf.fd, min(size - tf.offset, self.max_line + 1), tf.offset)
                if not data:
                    break
                if tf.offset + len(data) > tf.seen:
                    sink.read_bytes(tf.offset + len(data) - tf.seen)
                    tf.seen = tf.offset + len(data)
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
        self.files = []


class Waker:
    """Wakes the pipeline's reader: set() from any thread or a signal handler; wait() with a timeout.

    A self-pipe, so that the reader can wait in one poll() on it and on descriptors it reads itself (the
    inotify descriptor of a DirectoryWatcher): a file event wakes the reader directly, with no thread
    in between.
    """

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._poller = select.poll()
        self._poller.register(self._r, select.POLLIN)
        self._readers: dict[int, Callable[[], None]] = {}

    def set(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe already holds a wake-up
            os.write(self._w, b"!")

    def add_reader(self, fd: int, on_ready: Callable[[], None]) -> None:
        """Also wake when fd is readable; on_ready() (run by the waiting thread) must drain it."""
        self._readers[fd] = on_ready
        self._poller.register(fd, select.POLLIN)

    def remove_reader(self, fd: int) -> None:
        if self._readers.pop(fd, None) is not None:
            self._poller.unregister(fd)

    def wait(self, timeout: float) -> bool:
        """True when woken (set() or a ready descriptor), False after timeout seconds."""
        ready = self._poller.poll(max(0, int(timeout * 1000)))  # retried by Python on EINTR (PEP 475)
        for fd, _ in ready:
            if fd == self._r:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._r, 4096):
                        pass
            else:
                handler = self._readers.get(fd)
                if handler is not None:
                    handler()
        return bool(ready)

    def close(self) -> None:
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)


# inotify(7) events that can mean new lines, a rotation or a file coming or going: not opens, reads or
# closes without writing.
_IN_MODIFY, _IN_ATTRIB, _IN_CLOSE_WRITE = 0x2, 0x4, 0x8
_IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x40, 0x80, 0x100, 0x200
_IN_DELETE_SELF, _IN_MOVE_SELF, _IN_Q_OVERFLOW, _IN_IGNORED = 0x400, 0x800, 0x4000, 0x8000
_WATCH_MASK = (
    _IN_MODIFY
    | _IN_ATTRIB
    | _IN_CLOSE_WRITE
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
    | _IN_DELETE_SELF
    | _IN_MOVE_SELF
)
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then len bytes of name


def _inotify() -> Any:
    """watchdog's inotify(7) binding, or None where there is none (not Linux, an old libc)."""
    try:
        from watchdog.observers import inotify_c
    except (ImportError, OSError, AttributeError):
        return None
    return inotify_c


class DirectoryWatcher:
    """Wakes the pipeline on file events in the directories of its sources.

    On Linux, the reader thread itself waits on an inotify descriptor (watchdog's inotify binding), so
    an append wakes it at once. Elsewhere, watchdog's observer for the platform (kqueue, FSEvents ...)
    calls Waker.set() from its thread. With poll=True, or where neither works, the pipeline's timer
    (poll_interval) is the only wake-up.
    """

    def __init__(self, waker: Waker, poll: bool = False):
        self._waker = waker
        self._poll = poll
        self._observer: Any = None
        self._fd: int | None = None
        self._wds: dict[int, str] = {}
        self._watched: set[str] = set()
        self.lost = False  # a watched directory went away: update() should be called again

    def start(self, dirs: Iterable[str]) -> None:
        if self._poll:
            return  # the pipeline's timer is the only wake-up source
        inotify_c = _inotify()
        if inotify_c is None:  # not Linux: watchdog's observer for this platform
            self._start_observer()
        else:
            fd = inotify_c.inotify_init()
            if fd < 0:
                err = ctypes.get_errno()
                raise OSError(err, f"inotify_init: {os.strerror(err)}")
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)
            self._fd, self._add_watch = fd, inotify_c.inotify_add_watch
            self._waker.add_reader(fd, self._drain)
        self.update(dirs)

    def _start_observer(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        waker = self._waker

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):  # noqa: ANN001 - watchdog's signature
                if event.event_type not in ("opened", "closed_no_write"):
                    waker.set()

        self._handler = Handler()
        self._observer = Observer()
        self._observer.daemon = True
        self._observer.start()

    def update(self, dirs: Iterable[str]) -> None:
        for d in set(dirs) - self._watched:
            try:
                if self._fd is not None:
                    wd = self._add_watch(self._fd, os.fsencode(d), _WATCH_MASK)
                    if wd < 0:
                        err = ctypes.get_errno()
                        raise OSError(err, os.strerror(err))
                    self._wds[wd] = d
                elif self._observer is not None:
                    self._observer.schedule(self._handler, d, recursive=False)
                else:
                    return
                self._watched.add(d)
            except OSError as exc:
                log.warning("cannot watch %s (%s); polling it instead", d, exc.strerror or exc)
        self.lost = False

    def _drain(self) -> None:
        """Read the pending inotify events (the reader thread, woken by them); note removed watches."""
        size = 65536
        while True:
            try:
                data = os.read(self._fd, size)  # type: ignore[arg-type]
            except OSError:  # BlockingIOError: nothing (more) to read
                return
            pos = 0
            while pos + _EVENT.size <= len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, pos)
                pos += _EVENT.size + length
                if mask & _IN_IGNORED:  # the directory was removed or unmounted: watch it again later
                    d = self._wds.pop(wd, None)
                    if d is not None:
                        self._watched.discard(d)
                        self.lost = True
                elif mask & _IN_Q_OVERFLOW:
                    log.debug("inotify queue overflowed; the next read looks at every file anyway")
            if len(data) < size - 4096:  # the kernel returns whole events: this was all of them
                return

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
            self._observer = None
        if self._fd is not None:
            self._waker.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
