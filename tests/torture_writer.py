"""The torture test's log writer and log rotator: Postfix lines with known codes, written at a high rate,
and the ways files are rotated under a writer (rename, copytruncate, truncate, delete, symlink swap).

Every line has the same length, so that bytes counted as lost can be turned into lines. The writer keeps
its own record of every line it wrote, by source and code: the test compares the exporter's counters
with that record, never with the exporter's parser.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

LINE_BYTES = 300  # every line, newline included
TAIL_BYTES = 9  # the end of a line a writer finishes only after a truncation: "command))\n"

# Postfix's documented line shapes: delivery agent results (outbound) and smtpd rejects (inbound).
_HOST = "mx.example.net[192.0.2.10]"
_RESULTS = {
    "250": ("2.0.0", "sent", "250 2.0.0 Ok: queued as 4F2C1D"),
    "421": ("4.3.2", "deferred", f"host {_HOST} refused to talk to me: 421 4.3.2 Service shutting down"),
    "450": ("4.2.1", "deferred", f"host {_HOST} said: 450 4.2.1 Mailbox busy (in reply to RCPT TO command)"),
    "550": ("5.1.1", "bounced", f"host {_HOST} said: 550 5.1.1 User unknown (in reply to RCPT TO command)"),
    "452": ("4.2.2", "deferred", f"host {_HOST} said: 452 4.2.2 Mailbox full (in reply to RCPT TO command)"),
}
CODES = ("250", "250", "250", "421", "450", "550", "554")  # what the writer picks from (250 most often)
WINDOW_CODE = "452"  # only for the line cut by a truncation (see Rotator.truncate_cutting_a_line)


def make_line(seq: int, code: str) -> bytes:
    """One Postfix line with `code`, exactly LINE_BYTES long; seq makes its first bytes unique."""
    stamp = time.strftime("%b %e %H:%M:%S")
    qid = f"{seq:010X}"
    if code == "554":
        head = f"{stamp} mx1 postfix/smtpd[{1000 + seq % 97}]: NOQUEUE: reject: RCPT from c{seq}.example"
        rest = (
            "[203.0.113.9]: 554 5.7.1 <x@example.com>: Relay access denied; from=<s@example.org> "
            "to=<x@example.com> proto=ESMTP helo=<h"
        )
        text = head + rest + "x" * (LINE_BYTES - 2 - len(head) - len(rest)) + ">"
    else:
        dsn, status, reply = _RESULTS[code]
        head = f"{stamp} mx1 postfix/smtp[{1000 + seq % 97}]: {qid}: to=<u{seq}."
        rest = (
            f"@example.net>, relay={_HOST}:25, delay=1.2, delays=0.1/0.02/0.5/0.6, dsn={dsn}, "
            f"status={status} ({reply})"
        )
        text = head + "x" * (LINE_BYTES - 1 - len(head) - len(rest)) + rest
    data = (text + "\n").encode()
    assert len(data) == LINE_BYTES, (code, len(data))
    return data


class Writer(threading.Thread):
    """Appends lines to every source's current file at a high rate, holding `lock` while it writes.

    The rotator takes the lock to act between two writes (a logrotate run is quick); some lines are
    written in pieces, so the exporter sees half lines.
    """

    def __init__(self, paths: dict[str, Path], rate: float, seed: int):
        super().__init__(name="torture-writer", daemon=True)
        self.lock = threading.RLock()
        self.paths = dict(paths)
        self.fds: dict[str, int | None] = {}
        self.rate = rate  # lines per second, all sources together
        self.rng = random.Random(seed)
        self.seq = 0
        self.written: dict[str, Counter[str]] = {name: Counter() for name in paths}  # complete lines by code
        self.lines: Counter[str] = Counter()  # lines by source, whatever they hold
        self.fragments: Counter[str] = Counter()  # line tails written after a truncation (unparsable)
        self.cut_bytes: Counter[str] = Counter()  # line heads lost to a truncation, seen by the exporter
        self._halt = threading.Event()
        self.error: BaseException | None = None
        for name in paths:
            self.reopen(name)

    # -- used with the lock held -----------------------------------------------------------------
    def reopen(self, name: str, path: Path | None = None) -> None:
        """The writer being told to reopen its log (after a rotation), possibly at another path."""
        self.close(name)
        if path is not None:
            self.paths[name] = path
        self.fds[name] = os.open(self.paths[name], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def close(self, name: str) -> None:
        fd = self.fds.get(name)
        if fd is not None:
            os.close(fd)
        self.fds[name] = None

    def write_line(self, name: str, code: str | None = None, pieces: bool = False) -> None:
        fd = self.fds[name]
        if fd is None:  # its file is gone for now: the daemon logs nowhere
            return
        code = code or self.rng.choice(CODES)
        self.seq += 1
        data = make_line(self.seq, code)
        if pieces:
            cut = sorted(self.rng.sample(range(1, len(data) - 1), 2))
            for a, b in ((0, cut[0]), (cut[0], cut[1]), (cut[1], len(data))):
                os.write(fd, data[a:b])
                time.sleep(0.0005)
        else:
            os.write(fd, data)
        self.written[name][code] += 1
        self.lines[name] += 1

    def write_unfinished(self, name: str) -> None:
        """A last line without its newline, left in a file the writer then stops writing to: the
        exporter must finish it once the file has been idle for rotate_wait."""
        code = self.rng.choice(CODES)
        self.seq += 1
        os.write(self.fds[name], make_line(self.seq, code)[:-1])
        self.written[name][code] += 1
        self.lines[name] += 1

    def write_head(self, name: str) -> bytes:
        """The first part of a line; the rest follows only after the file was truncated."""
        self.seq += 1
        data = make_line(self.seq, WINDOW_CODE)
        os.write(self.fds[name], data[:-TAIL_BYTES])
        return data[-TAIL_BYTES:]

    def write_fragment(self, name: str, tail: bytes) -> None:
        os.write(self.fds[name], tail)
        self.fragments[name] += 1
        self.lines[name] += 1

    # -- the thread ------------------------------------------------------------------------------
    def run(self) -> None:
        names = sorted(self.paths)
        batch = 8
        pause = batch / self.rate
        try:
            while not self._halt.is_set():
                with self.lock:
                    for _ in range(batch):
                        name = self.rng.choice(names)
                        self.write_line(name, pieces=self.rng.random() < 0.03)
                time.sleep(pause)
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def stop(self) -> None:
        self._halt.set()
        if self.ident is not None:  # started
            self.join(timeout=10)
        with self.lock:
            for name in list(self.fds):
                self.close(name)


def shift(path: Path) -> Path:
    """logrotate's numbering: path.N -> path.N+1 for every N, oldest first; returns path.1 (now free)."""
    n = 1
    while path.with_name(f"{path.name}.{n}").exists():
        n += 1
    for k in range(n - 1, 0, -1):
        os.rename(path.with_name(f"{path.name}.{k}"), path.with_name(f"{path.name}.{k + 1}"))
    return path.with_name(f"{path.name}.1")


class Rotator:
    """The rotation styles, acting on a Writer's source. `caught_up(pending)` is a barrier: it returns
    once the exporter has read every line written so far and sees `pending` bytes of a partial line."""

    def __init__(self, writer: Writer, caught_up: Callable[[str, int], None], rng: random.Random):
        self.w = writer
        self.caught_up = caught_up
        self.rng = rng
        self.generation: Counter[str] = Counter()

    def _linger(self) -> None:
        time.sleep(self.rng.uniform(0.05, 0.3))

    def rename(self, name: str) -> None:
        """logrotate's default (create): rename, create, signal the writer, all at once."""
        with self.w.lock:
            path = self.w.paths[name]
            os.rename(path, shift(path))
            self.w.reopen(name)

    @contextlib.contextmanager
    def rename_late(self, name: str):
        """Rename; the writer keeps appending to the renamed file until it is signalled, stops in the
        middle of a line there, and only then reopens. The body runs while it still writes the old file."""
        with self.w.lock:
            path = self.w.paths[name]
            os.rename(path, shift(path))
        self._linger()
        yield
        with self.w.lock:
            self.w.write_unfinished(name)
            self.w.reopen(name)

    @contextlib.contextmanager
    def copytruncate(self, name: str):
        """Copy, then truncate in place, between two writes; the body runs between copy and truncate."""
        with self.w.lock:
            path = self.w.paths[name]
            shutil.copyfile(path, shift(path))
            yield
            os.truncate(path, 0)

    def truncate_cutting_a_line(self, name: str, copy: bool) -> None:
        """copytruncate (or a bare truncate) that cuts a line: its head is written after the copy, seen
        by the exporter, then truncated away; the writer finishes the line in the emptied file. The
        head is lost and must be counted as such; the tail is an unparsable fragment."""
        with self.w.lock:
            path = self.w.paths[name]
            if copy:
                shutil.copyfile(path, shift(path))
            else:
                self.caught_up(name, 0)  # a bare truncate loses what was not read: let it be read
            tail = self.w.write_head(name)
            head = LINE_BYTES - TAIL_BYTES
            self.caught_up(name, head)
            os.truncate(path, 0)
            self.w.cut_bytes[name] += head
            self.w.write_fragment(name, tail)

    def delete(self, name: str) -> None:
        """Delete the file; the writer writes a few more lines to it (deleted, still open) and reopens.
        Only the exporter's open descriptor can read those lines: wait until it has."""
        with self.w.lock:
            os.unlink(self.w.paths[name])
            for _ in range(self.rng.randint(1, 5)):
                self.w.write_line(name)
            self.w.reopen(name)
            self.caught_up(name, 0)

    def vanish(self, name: str) -> None:
        """The file disappears for a while (the writer has nowhere to log), then comes back."""
        with self.w.lock:
            os.unlink(self.w.paths[name])
            self.w.close(name)
            self.caught_up(name, 0)
        time.sleep(self.rng.uniform(0.3, 0.6))
        with self.w.lock:
            self.w.reopen(name)

    @contextlib.contextmanager
    def swap_symlink(self, name: str, link: Path):
        """Point the symlink at a new file atomically; the writer keeps its old file for a while."""
        with self.w.lock:
            self.generation[name] += 1
            target = Path(os.path.realpath(link)).with_name(f"t{self.generation[name]}.log")
            target.touch()
            tmp = link.with_name(link.name + ".new")
            tmp.symlink_to(target)
            os.replace(tmp, link)
        self._linger()
        yield
        with self.w.lock:
            self.w.reopen(name)

    def glob_next(self, name: str, directory: Path, delete_done: bool = True) -> None:
        """A new file appears in the glob and the writer moves to it; an older one leaves the glob
        (renamed aside, as a rotation would), and files renamed aside earlier are deleted once read."""
        with self.w.lock:
            self.generation[name] += 1
            old = self.w.paths[name]
            self.w.reopen(name, directory / f"f{self.generation[name]}.log")
            if self.rng.random() < 0.5:
                os.rename(old, old.with_name(old.name + ".done"))
            for done in directory.glob("*.done") if delete_done else ():
                if done.stat().st_mtime < time.time() - 5:
                    self.caught_up(name, 0)
                    done.unlink()
