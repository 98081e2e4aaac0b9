"""Readers with a thread of their own (journal, syslog, stdin) and the bounded hand-over to the pipeline.

The reader's thread (or the subprocess it drives) never touches the sink: it puts complete lines into an
Inbox and wakes the pipeline; poll(), on the pipeline thread, takes them out and hands them on. So the
counts stay owned by one thread, exactly as with files.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import threading
from collections import deque
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_INBOX_BYTES = 8 * 1024 * 1024
DEFAULT_BUDGET = 4 * 1024 * 1024
ITEM_COST = 64  # what one queued item costs beside its bytes, so that empty items are bounded too
# Counts a reader thread keeps beside its lines: a drop reason (mail_exporter_dropped_total), or one of
# these, which the sink counts as it does for files.
OVERSIZE = "!oversize"  # an overlong line: mail_exporter_lines_total{result="oversize"}
READ_ERROR = "!read_error"  # mail_exporter_read_errors_total
FILE_EVENT = "!event:"  # prefix: mail_exporter_file_events_total{event=...}


class Stream:
    """What the sink keeps for one stream: its parser (ctx). A file's offset and fd have no meaning here."""

    __slots__ = ("path", "ctx", "offset", "fd")

    def __init__(self, path: str):
        self.path = path
        self.ctx: Any = None
        self.offset = 0  # never "resumed mid-file": a stateful format is not primed from a file
        self.fd = -1


class Inbox:
    """A bounded queue of (bytes of complete lines, mark) from a reader thread, and counts beside it."""

    def __init__(self, max_bytes: int = DEFAULT_INBOX_BYTES):
        self.max_bytes = max_bytes
        self._cond = threading.Condition()
        self._items: deque[tuple[bytes, Any]] = deque()
        self._cost = 0
        self._data = 0
        self._counts: dict[str, int] = {}
        self._closed = False

    def _fits(self, size: int) -> bool:
        return not self._items or self._cost + size + ITEM_COST <= self.max_bytes

    def _append(self, data: bytes, mark: Any) -> None:
        if not data and self._items and not self._items[-1][0]:
            self._items[-1] = (data, mark)  # a run of marks without lines: only the last one matters
            return
        self._items.append((data, mark))
        self._cost += len(data) + ITEM_COST
        self._data += len(data)

    def offer(self, data: bytes, mark: Any = None) -> bool:
        """Add without waiting; False (nothing added) when full or closed."""
        with self._cond:
            if self._closed or not self._fits(len(data)):
                return False
            self._append(data, mark)
            return True

    def put(self, data: bytes, mark: Any = None) -> bool:
        """Add, waiting while full: the writer is slowed down instead of losing lines. False once closed."""
        with self._cond:
            while not self._closed and not self._fits(len(data)):
                self._cond.wait()
            if self._closed:
                return False
            self._append(data, mark)
            return True

    def count(self, what: str, n: int = 1) -> None:
        with self._cond:
            self._counts[what] = self._counts.get(what, 0) + n

    def take(self, budget: int) -> tuple[list[tuple[bytes, Any]], dict[str, int], bool]:
        """Items up to `budget` bytes (at least one), the counts since the last take, whether more wait."""
        with self._cond:
            items: list[tuple[bytes, Any]] = []
            used = 0
            while self._items and (used < budget or not items):
                data, mark = self._items.popleft()
                items.append((data, mark))
                used += len(data)
                self._cost -= len(data) + ITEM_COST
                self._data -= len(data)
            counts, self._counts = self._counts, {}
            if items:
                self._cond.notify_all()
            return items, counts, bool(self._items)

    def pending(self) -> int:
        """Bytes of lines waiting."""
        return self._data

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def count_dropped(sink: Any, reason: str, n: int) -> None:
    """mail_exporter_dropped_total{source, reason} += n (n=0 makes the series exist)."""
    sink.delta.add("dropped", (sink.name, reason), n)


class QueuedReader:
    """The Follower's interface (poll, positions, restore, behind, up, problem) over an Inbox."""

    DROP_REASONS: tuple[str, ...] = ()  # series of mail_exporter_dropped_total that exist from the start

    def __init__(self, location: str, *, max_line: int, inbox_bytes: int = DEFAULT_INBOX_BYTES):
        self.location = location
        self.max_line = max_line
        self.inbox = Inbox(inbox_bytes)
        self.stream = Stream(location)
        self.up = False
        self.problem: str | None = None
        self._waker: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._announced = False

    # -- the pipeline's side ---------------------------------------------------------------------
    def poll(self, sink: Any, budget: int = DEFAULT_BUDGET) -> bool:
        """Hand what the thread queued to the sink (up to `budget` bytes); True if more is waiting."""
        if not self._announced:
            self._announced = True
            sink.opened(self.stream, "open")
            for reason in self.DROP_REASONS:
                count_dropped(sink, reason, 0)
        items, counts, more = self.inbox.take(budget)
        block = b"".join(data for data, _ in items)
        if block:
            sink.read_bytes(len(block))
            sink.lines(self.stream, block)
        for what, n in counts.items():
            if what == OVERSIZE:
                for _ in range(n):
                    sink.oversize()
            elif what == READ_ERROR:
                for _ in range(n):
                    sink.read_error()
            elif what.startswith(FILE_EVENT):
                for _ in range(n):
                    sink.event(what.removeprefix(FILE_EVENT))
            else:
                count_dropped(sink, what, n)
        if items:
            self._taken(items)
        return more

    def _taken(self, items: list[tuple[bytes, Any]]) -> None:
        """Items were handed to the sink (the journal remembers the cursor of the last one)."""

    def positions(self) -> list[dict]:
        return []  # nothing to resume from: at-most-once across a restart

    def restore(self, saved: Any) -> None:
        pass

    def behind(self) -> int:
        return self.inbox.pending()

    def watch_dirs(self) -> set[str]:
        return set()

    # -- the thread's side -----------------------------------------------------------------------
    def start(self, waker: Any) -> None:
        self._waker = waker
        self._thread = threading.Thread(target=self._run_guarded, name=type(self).__name__, daemon=True)
        self._thread.start()

    def _run_guarded(self) -> None:
        try:
            self._run()
        except Exception:  # a bug must not go unseen; the pipeline and the other sources carry on
            log.exception("source %s: reader stopped by an unexpected error", self.location)
            self._set_problem("reader stopped by an unexpected error (see the log)")
            self._wake()

    def _run(self) -> None:
        raise NotImplementedError

    def _wake(self) -> None:
        if self._waker is not None:
            self._waker.set()

    def _set_problem(self, problem: str | None, up: bool = False) -> None:
        if problem != self.problem:
            if problem:
                log.warning("source %s: %s", self.location, problem)
            elif self.problem:
                log.info("source %s: readable again", self.location)
        self.problem = problem
        self.up = up if problem else True

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.inbox.close()
        self._interrupt()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self.up = False

    def _interrupt(self) -> None:
        """Make the thread notice the stop (close a pipe, end a subprocess)."""


class WakePipe:
    """A pipe whose read end becomes readable on set(): lets close() interrupt a thread in poll()."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.w, False)

    def set(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self.w, b"x")

    def close(self) -> None:
        for fd in (self.r, self.w):
            with contextlib.suppress(OSError):
                os.close(fd)


class LineSplitter:
    """Bytes of a stream -> blocks of complete lines; an overlong line is dropped and counted, once."""

    def __init__(self, max_line: int):
        self.max_line = max_line
        self.tail = b""
        self.skipping = False  # inside an overlong line: drop bytes up to its newline

    def feed(self, data: bytes) -> tuple[bytes, int]:
        """Complete lines (each ending in a newline) and how many overlong lines were dropped."""
        data = self.tail + data
        start = 0
        oversize = 0
        if self.skipping:
            nl = data.find(b"\n")
            if nl < 0:
                self.tail = b""
                return b"", 0
            start = nl + 1
            self.skipping = False
        end = data.rfind(b"\n", start) + 1
        block = data[start:end] if end > start else b""
        if len(block) > self.max_line:
            kept = [line for line in block.split(b"\n")[:-1] if len(line) <= self.max_line]
            oversize = block.count(b"\n") - len(kept)
            block = b"".join(line + b"\n" for line in kept)
        self.tail = data[max(end, start) :]
        if len(self.tail) > self.max_line:
            oversize += 1
            self.skipping = True
            self.tail = b""
        return block, oversize

    def finish(self) -> bytes:
        """At the end of the input the last line needs no newline."""
        tail, self.tail = self.tail, b""
        return tail + b"\n" if tail and not self.skipping else b""


class StdinReader(QueuedReader):
    """Lines from standard input (a pipe from `kubectl logs -f`, `docker logs -f` or a shell)."""

    def __init__(self, *, max_line: int, fd: int = 0, read_size: int = 64 * 1024):
        super().__init__("-", max_line=max_line)
        self.fd = fd
        self.read_size = read_size
        self._wakepipe = WakePipe()

    def start(self, waker: Any) -> None:
        self.up = True
        super().start(waker)

    def _run(self) -> None:
        splitter = LineSplitter(self.max_line)
        poller = select.poll()  # not epoll: it refuses a regular file given as stdin (`< mail.log`)
        poller.register(self.fd, select.POLLIN)
        poller.register(self._wakepipe.r, select.POLLIN)
        while not self._stop.is_set():
            ready = {fd for fd, _ in poller.poll()}
            if self._wakepipe.r in ready or self._stop.is_set():
                return
            try:
                data = os.read(self.fd, self.read_size)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                self.inbox.count(READ_ERROR)
                self._end(f"cannot read standard input: {exc.strerror or exc}")
                return
            if not data:
                last = splitter.finish()
                if last and not self.inbox.put(last):
                    return
                self._end("end of input: standard input was closed")
                return
            block, oversize = splitter.feed(data)
            if oversize:
                self.inbox.count(OVERSIZE, oversize)
            if block and not self.inbox.put(block):
                return
            self._wake()

    def _end(self, problem: str) -> None:
        log.info("source -: %s; the counts so far stay served", problem)
        self.problem = problem
        self.up = False
        self._wake()

    def _interrupt(self) -> None:
        self._wakepipe.set()

    def close(self, timeout: float = 5.0) -> None:
        super().close(timeout)
        if self._thread is None or not self._thread.is_alive():
            self._wakepipe.close()
