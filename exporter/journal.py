"""The systemd journal as a source: `journalctl --follow --output=json` as a managed subprocess.

Each entry of the source becomes the classic syslog line the parsers read ("TIME HOST IDENT[PID]: MESSAGE").
The cursor of the last entry handed to the sink is the source's position in the state file, so a restart
resumes right after it: no entry lost, none counted twice. journalctl is restarted (with backoff) whenever
it ends; a missing or unreadable journal is reported (source_up 0, the reason on /readyz) and retried.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import os
import re
import selectors
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import Any

from .streams import FILE_EVENT, OVERSIZE, READ_ERROR, LineSplitter, QueuedReader

log = logging.getLogger(__name__)

# "s=…;i=…;b=…;m=…;t=…;x=…": a journalctl --after-cursor argument it will accept.
_CURSOR = re.compile(r"[a-z]=[0-9a-fA-F]+(?:;[a-z]=[0-9a-fA-F]+)*")
_GLOB_CHARS = frozenset("*?[")
# journalctl's own hint when it shows only the user's entries: the system journal is not readable.
_NOT_READABLE = "not seeing messages"


def _text(value: Any) -> str | None:
    """A journal JSON field as text: a string, a byte array (non-UTF-8 data), or the first of many values."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        if all(isinstance(b, int) for b in value):
            try:
                return bytes(value).decode("utf-8", "replace")
            except ValueError:
                return None
        return _text(value[0])
    return None


class LineBuilder:
    """A journal entry -> "2026-12-04T10:00:00.123456+00:00 HOST IDENT[PID]: MESSAGE" (times in UTC)."""

    def __init__(self) -> None:
        self._second = -1
        self._stamp = ""

    def _time(self, entry: dict) -> str:
        try:
            usec = int(entry.get("__REALTIME_TIMESTAMP", 0))
        except (TypeError, ValueError):
            usec = 0
        usec = usec or int(time.time() * 1_000_000)
        second, fraction = divmod(usec, 1_000_000)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{fraction:06d}+00:00"

    def line(self, entry: dict) -> str | None:
        message = _text(entry.get("MESSAGE"))
        if message is None:
            return None
        host = _text(entry.get("_HOSTNAME")) or "-"
        ident = _text(entry.get("SYSLOG_IDENTIFIER")) or _text(entry.get("_COMM")) or "-"
        pid = _text(entry.get("SYSLOG_PID")) or _text(entry.get("_PID"))
        if "\n" in message or "\r" in message:  # one entry, one line
            message = message.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
        tag = f"{ident}[{pid}]" if pid and pid.isdigit() else ident
        return f"{self._time(entry)} {host.replace(' ', '_')} {tag.replace(' ', '_')}: {message}"


class EntryFilter:
    """Which entries belong to the source: a unit or a syslog identifier matching one of the globs.

    journalctl can only match exact values, and ANDs -u with -t; so exact values are passed on to it
    (less to read) and globs are matched here. No units and no identifiers: every entry.
    """

    def __init__(self, units: Sequence[str], identifiers: Sequence[str]):
        self.units = list(units)
        self.identifiers = list(identifiers)
        self._unit = _globs(self.units)
        self._ident = _globs(self.identifiers)

    def matches(self, entry: dict) -> bool:
        if self._unit is None and self._ident is None:
            return True
        if self._ident is not None:
            ident = _text(entry.get("SYSLOG_IDENTIFIER"))
            if ident is not None and self._ident.match(ident):
                return True
        if self._unit is not None:
            unit = _text(entry.get("_SYSTEMD_UNIT"))
            if unit is not None and self._unit.match(unit):
                return True
        return False

    def journalctl_matches(self) -> list[str]:
        """FIELD=VALUE arguments ("+" between fields: OR) when every pattern is exact, else none."""
        if any(_GLOB_CHARS & set(p) for p in self.units + self.identifiers):
            return []
        groups = [
            [f"_SYSTEMD_UNIT={u}" for u in self.units],
            [f"SYSLOG_IDENTIFIER={i}" for i in self.identifiers],
        ]
        args: list[str] = []
        for group in (g for g in groups if g):
            args += (["+"] if args else []) + group
        return args


def _globs(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


class JournalReader(QueuedReader):
    """Follows the journal through journalctl; positions() is the cursor of the last entry counted."""

    def __init__(
        self,
        *,
        units: Sequence[str],
        identifiers: Sequence[str],
        directory: str | None = None,
        files: Sequence[str] = (),
        from_beginning: bool = False,
        max_line: int = 64 * 1024,
        journalctl: str = "journalctl",
        backoff: tuple[float, float] = (1.0, 30.0),
        location: str = "journal",
    ):
        super().__init__(location, max_line=max_line)
        self.filter = EntryFilter(units, identifiers)
        self.directory = directory
        self.files = list(files)
        self.from_beginning = from_beginning
        self.journalctl = journalctl
        self.backoff = backoff
        self.cursor: str | None = None  # of the last entry handed to the sink: saved in the state file
        # Of the last entry read (maybe not counted yet): where journalctl resumes when restarted.
        self._read_cursor: str | None = None
        self._since: float | None = None  # no cursor yet: when following began (a restart resumes there)
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._builder = LineBuilder()
        self._max_entry = max(4 * max_line, 1 << 20)  # JSON of one entry: the message and its fields

    # -- state -----------------------------------------------------------------------------------
    def positions(self) -> list[dict]:
        return [{"cursor": self.cursor}] if self.cursor else []

    def restore(self, saved: Any) -> None:
        for entry in saved if isinstance(saved, list) else []:
            cursor = entry.get("cursor") if isinstance(entry, dict) else None
            if isinstance(cursor, str) and _CURSOR.fullmatch(cursor):
                self.cursor = self._read_cursor = cursor
            elif cursor is not None:
                log.warning(
                    "source %s: the saved journal cursor %r is not usable; ignored", self.location, cursor
                )

    def _taken(self, items: list[tuple[bytes, Any]]) -> None:
        for _, mark in reversed(items):
            if mark:
                self.cursor = mark
                return

    # -- journalctl ------------------------------------------------------------------------------
    def command(self) -> list[str]:
        # --merge: without it --follow shows the current boot only, and entries written after the saved
        # cursor but before a reboot would be skipped. --all: fields over 4096 bytes would be null.
        args = [self.journalctl, "--output=json", "--all", "--follow", "--merge", "--no-pager"]
        if self.directory:
            args.append(f"--directory={self.directory}")
        args += [f"--file={f}" for f in self.files]
        if self._read_cursor:
            # --no-tail: with --follow, journalctl would show only the last 10 entries after the cursor.
            args += [f"--after-cursor={self._read_cursor}", "--no-tail"]
        elif self._since is not None:
            args += [f"--since=@{self._since:.6f}", "--no-tail"]
        elif self.from_beginning:
            args.append("--no-tail")
        else:
            args.append("--lines=0")  # only before the first start: _run() then sets _since
        return args + self.filter.journalctl_matches()

    def _run(self) -> None:
        delay = self.backoff[0]
        while not self._stop.is_set():
            if self._read_cursor is None and self._since is None and not self.from_beginning:
                self._since = time.time()  # from now on, also across restarts before the first entry
            args = self.command()
            used_cursor = self._read_cursor
            got, failure = self._run_once(args)
            if self._stop.is_set():
                return
            self.inbox.count(READ_ERROR)
            if used_cursor and not got and "cursor" in failure.lower():
                log.error(
                    "source %s: journalctl cannot seek to the saved cursor (%s); following from now on, "
                    "entries written in between are not counted",
                    self.location,
                    failure,
                )
                self.inbox.count(FILE_EVENT + "missing")
                self._read_cursor = None
                self._since = time.time()
            self._set_problem(f"journalctl: {failure}; retrying in {delay:g}s")
            self._wake()
            delay = self.backoff[0] if got else delay
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, self.backoff[1])

    def _run_once(self, args: list[str]) -> tuple[bool, str]:
        """Run journalctl until it ends; whether it gave entries, and why it ended."""
        try:
            # A session of its own: Ctrl-C or a signal to the process group must not end journalctl before
            # the exporter has finished; it ends when we end it (or, orphaned, at its next write).
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                close_fds=True,
                start_new_session=True,
            )
        except OSError as exc:
            return False, f"cannot run {args[0]}: {exc.strerror or exc}"
        with self._lock:
            self._proc = proc
        if self._stop.is_set():
            self._end(proc)
            return False, "stopped"
        self._set_problem(None)
        self._wake()
        got, last_error = False, ""
        # An entry too long to hold (JSON of all its fields) is dropped and counted as oversize.
        splitters = {proc.stdout: LineSplitter(self._max_entry), proc.stderr: LineSplitter(64 * 1024)}
        sel = selectors.DefaultSelector()
        try:
            for pipe in splitters:
                os.set_blocking(pipe.fileno(), False)
                sel.register(pipe, selectors.EVENT_READ)
            while sel.get_map():
                for key, _ in sel.select():
                    pipe = key.fileobj
                    try:
                        data = os.read(pipe.fileno(), 256 * 1024)
                    except BlockingIOError:
                        continue
                    if not data:
                        sel.unregister(pipe)
                        continue
                    block, oversize = splitters[pipe].feed(data)
                    if pipe is proc.stderr:
                        for raw in block.split(b"\n")[:-1]:
                            last_error = self._stderr(raw) or last_error
                        continue
                    if oversize:
                        self.inbox.count(OVERSIZE, oversize)
                    for raw in block.split(b"\n")[:-1]:
                        if not self._entry(raw):
                            return got, "stopped"
                        got = True
        finally:
            sel.close()
            rc = self._end(proc)
        return got, last_error or f"exited with status {rc}"

    def _entry(self, raw: bytes) -> bool:
        """One line of journalctl's output into the inbox (waiting while it is full); False once closed."""
        if not raw.startswith(b"{"):
            return True  # not an entry (journalctl's "-- No entries --" and the like)
        try:
            entry = json.loads(raw)
            cursor = entry["__CURSOR"]
        except (ValueError, KeyError, TypeError):
            self.inbox.count(READ_ERROR)
            return True
        self._read_cursor = cursor
        if not self.filter.matches(entry):
            return self.inbox.put(b"", cursor)  # not the source's: only the cursor moves on
        line = self._builder.line(entry)
        if line is None:
            return self.inbox.put(b"", cursor)
        data = line.encode("utf-8", "replace") + b"\n"
        if len(data) > self.max_line + 1:
            self.inbox.count(OVERSIZE)
            return self.inbox.put(b"", cursor)
        if not self.inbox.put(data, cursor):
            return False
        self._wake()
        return True

    def _stderr(self, raw: bytes) -> str | None:
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            return None
        if _NOT_READABLE in text:
            self._set_problem(f"the system journal is not readable by this user ({text})")
            self._wake()
        elif not text.startswith("Hint:"):
            log.warning("source %s: journalctl: %s", self.location, text)
        return text

    def _end(self, proc: subprocess.Popen) -> int | None:
        """Stop journalctl (if it still runs) and reap it."""
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.terminate()
            try:
                proc.wait(2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()
        return proc.returncode

    def _interrupt(self) -> None:
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.terminate()
