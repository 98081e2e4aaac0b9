"""Wires the pipeline: tail -> parse -> classify -> count, with durable state, for the daemon and replay."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from . import enhanced as enhanced_codes
from . import parsers, state
from .catalogue import Catalogue
from .config import Settings, SourceConfig
from .events import DIRECTIONS, OUTBOUND, STATUSES, Event
from .metrics import Counts, Delta
from .tail import DirectoryWatcher, Follower, TrackedFile, Waker

log = logging.getLogger(__name__)

LINE_RESULTS = ("outcome", "ignored", "unparsed", "oversize")
FILE_EVENTS = ("open", "rotate", "truncate", "reopen")
_CACHE_LIMIT = 4096


class Classifier:
    """Event -> counter keys for one source, memoised (bounded) since most events repeat exactly."""

    def __init__(self, source: str, catalogue: Catalogue):
        self.source = source
        self.catalogue = catalogue
        self._cache: dict[Event, tuple] = {}

    def keys(self, ev: Event) -> tuple:
        hit = self._cache.get(ev)
        if hit is not None:
            return hit
        code, typ, outcome = self.catalogue.classify(ev.code, ev.status)
        resp = (self.source, code, typ, outcome, ev.direction if ev.direction in DIRECTIONS else OUTBOUND)
        status = (self.source, ev.status) if ev.status in STATUSES else None
        enh = None
        if ev.enhanced:
            enh = (self.source, enhanced_codes.classify_enhanced(ev.enhanced), outcome)
        hit = (resp, status, enh)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[ev] = hit
        return hit


class SourceSink:
    """Receives complete lines of one source from the follower and counts them into a Delta."""

    def __init__(self, cfg: SourceConfig, module: ModuleType, catalogue: Catalogue):
        self.name = cfg.name
        self.module = module
        self.options = cfg.options
        self.stateful = getattr(module, "STATEFUL", False)
        self._shared = None if self.stateful else module.make_parser(**cfg.options)
        self.classifier = Classifier(cfg.name, catalogue)
        self.delta = Delta()
        self.last_line: float | None = None

    def new_parser(self) -> Callable[[str], Any]:
        if self._shared is not None:
            return self._shared
        made = self.module.make_parser(**self.options)
        return made.parse if hasattr(made, "parse") else made

    # -- the follower's callbacks ----------------------------------------------------------------
    def opened(self, tf: TrackedFile, event: str) -> None:
        tf.ctx = self.new_parser()
        if self.stateful and tf.offset > 0:
            self._prime(tf)

    def _prime(self, tf: TrackedFile) -> None:
        """A stateful format (a header line) resumed mid-file: feed it the lines before the offset."""
        parse, pos, tail = tf.ctx, 0, b""
        while pos < tf.offset:
            data = os.pread(tf.fd, min(1 << 20, tf.offset - pos), pos)
            if not data:
                break
            pos += len(data)
            lines = (tail + data).split(b"\n")
            tail = lines.pop()
            for raw in lines:
                parse(raw.decode("utf-8", "replace").rstrip("\r"))

    def lines(self, tf: TrackedFile, data: bytes) -> None:
        if tf.ctx is None:  # a file resumed from the state file: its parser starts here
            self.opened(tf, "resume")
        self.count_text(data.decode("utf-8", "replace"), tf.ctx)

    def count_text(self, text: str, parse: Callable[[str], Any]) -> None:
        """Parse and count a block of complete lines (each ends with a newline)."""
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        lines = text.split("\n")
        lines.pop()
        outcome = ignored = unparsed = 0
        keys = self.classifier.keys
        responses, statuses, enhanced = self.delta.responses, self.delta.statuses, self.delta.enhanced
        for line in lines:
            result = parse(line)
            if result is None:
                unparsed += 1
            elif not result:
                ignored += 1
            else:
                outcome += 1
                for ev in result:
                    resp, status, enh = keys(ev)
                    responses[resp] = responses.get(resp, 0) + 1
                    if status is not None:
                        statuses[status] = statuses.get(status, 0) + 1
                    if enh is not None:
                        enhanced[enh] = enhanced.get(enh, 0) + 1
        add = self.delta.add
        for result, n in (("outcome", outcome), ("ignored", ignored), ("unparsed", unparsed)):
            if n:
                add("lines", (self.name, result), n)
        if lines:
            self.last_line = time.time()

    def event(self, name: str) -> None:
        self.delta.add("file_events", (self.name, name))

    def oversize(self) -> None:
        self.delta.add("lines", (self.name, "oversize"))

    def lost(self, reason: str, nbytes: int) -> None:
        self.delta.add("lost_bytes", (self.name, reason), nbytes)

    def read_error(self) -> None:
        self.delta.add("read_errors", (self.name,))

    def read_bytes(self, nbytes: int) -> None:
        self.delta.add("read_bytes", (self.name,), nbytes)

    def take(self) -> Delta:
        delta, self.delta = self.delta, Delta()
        return delta


def zero_series(name: str, module: ModuleType, options: dict, catalogue: Catalogue) -> dict[str, list[tuple]]:
    """The series of one source that exist at 0 from the start, so alerts on increase() fire at once."""
    if getattr(module, "APP_LOG", False):
        smtp_dirs: tuple[str, ...] = (options.get("direction", OUTBOUND),)
        plex_dirs = smtp_dirs
    else:
        smtp_dirs, plex_dirs = DIRECTIONS, (OUTBOUND,)
    responses = []
    for e in catalogue.entries:
        for direction in smtp_dirs if e.type == "smtp" else plex_dirs:
            responses.append((name, e.code, e.type, e.outcome, direction))
    return {
        "responses": responses,
        "statuses": [(name, s) for s in STATUSES],
        "lines": [(name, r) for r in LINE_RESULTS],
        "file_events": [(name, ev) for ev in FILE_EVENTS],
        "read_bytes": [(name,)],
        "read_errors": [(name,)],
        "lost_bytes": [(name, "truncated")],
    }


@dataclass
class Source:
    cfg: SourceConfig
    sink: SourceSink
    follower: Follower


@dataclass
class Pipeline:
    """The daemon's one reader thread: poll every source, count, save state, then publish."""

    settings: Settings
    catalogue: Catalogue
    counts: Counts
    state_file: Path | None
    waker: Waker = field(default_factory=Waker)
    sources: list[Source] = field(default_factory=list)
    ready: bool = False
    _durable_reason: str | None = None

    def setup(self) -> None:
        saved = self._load_state()
        for cfg in self.settings.sources:
            module = parsers.get(cfg.format)
            sink = SourceSink(cfg, module, self.catalogue)
            follower = Follower(
                cfg.path,
                from_beginning=self.settings.from_beginning,
                max_line=self.settings.max_line_bytes,
                rotate_wait=self.settings.rotate_wait,
            )
            entry = (saved or {}).get("sources", {}).get(cfg.name)
            if isinstance(entry, dict) and isinstance(entry.get("files"), list):
                follower.restore(entry["files"])
            self.sources.append(Source(cfg, sink, follower))
            for family, keys in zero_series(cfg.name, module, cfg.options, self.catalogue).items():
                self.counts.ensure(family, keys)
            self.counts.source_formats[cfg.name] = cfg.format
            self.counts.set_gauge("up", (cfg.name,), 0)
            self.counts.set_gauge("behind", (cfg.name,), 0)

    def _load_state(self) -> dict | None:
        if self.state_file is None:
            return None
        problem = state.check_writable(self.state_file)
        if problem:
            self._not_durable(f"state file {self.state_file} cannot be written: {problem}")
        if self.settings.reset_state:
            log.info("--reset-state: starting over, ignoring %s", self.state_file)
            return None
        try:
            saved = state.load(self.state_file)
        except state.StateError as exc:
            log.warning("%s; starting without it (counters start from 0, files from their end)", exc)
            self.counts.state_saves["error"] += 1
            return None
        if saved is None:
            return None
        names = {cfg.name for cfg in self.settings.sources}
        counters = saved.get("counters", {})
        for family, rows in list(counters.items()):
            if isinstance(rows, list):
                counters[family] = [
                    r for r in rows if isinstance(r, list) and r and r[0] and r[0][0] in names
                ]
        self.counts.restore(counters)
        gone = set(saved.get("sources", {})) - names
        if gone:
            log.warning("state file holds sources no longer configured, dropped: %s", ", ".join(sorted(gone)))
        return saved

    def _not_durable(self, reason: str) -> None:
        if self._durable_reason != reason:
            log.error("%s; running without the no-loss guarantee across restarts", reason)
        self._durable_reason = reason
        self.counts.state_durable = 0

    def step(self) -> bool:
        """Read what is waiting (bounded), save state with the new counts, then publish them."""
        more = False
        delta = Delta()
        moved = False
        for src in self.sources:
            before = src.follower.positions()
            more = src.follower.poll(src.sink) or more
            d = src.sink.take()
            if not d.empty():
                _merge_into(delta, d)
            moved = moved or d.read_bytes or src.follower.positions() != before
            self.counts.set_gauge("up", (src.cfg.name,), 1 if src.follower.up else 0)
            self.counts.set_gauge("behind", (src.cfg.name,), src.follower.behind())
            if src.sink.last_line is not None:
                self.counts.set_gauge("last_line", (src.cfg.name,), src.sink.last_line)
        if moved or not delta.empty():
            self._save(delta)
        self.counts.merge(delta)
        self.ready = not more and all(s.follower.up and s.follower.behind() == 0 for s in self.sources)
        return more

    def _save(self, delta: Delta) -> None:
        if self.state_file is None:
            return
        sources = {
            s.cfg.name: {"format": s.cfg.format, "path": s.cfg.path, "files": s.follower.positions()}
            for s in self.sources
        }
        try:
            state.save(self.state_file, sources, self.counts.snapshot(delta))
        except OSError as exc:
            self.counts.state_saves["error"] += 1
            self._not_durable(f"cannot save state file {self.state_file}: {exc.strerror or exc}")
            return
        self.counts.state_saves["ok"] += 1
        if self.counts.state_durable == 0:
            log.info("state file %s is saved again", self.state_file)
        self.counts.state_durable = 1
        self._durable_reason = None

    def watch_dirs(self) -> set[str]:
        dirs: set[str] = set()
        for s in self.sources:
            dirs |= s.follower.watch_dirs()
        return dirs

    def run(self, stop: threading.Event, watcher: DirectoryWatcher | None = None) -> None:
        """Loop until stop is set; each wake-up reads everything that is waiting."""
        interval = self.settings.poll_interval
        last_dirs: set[str] = set()
        last_error: str | None = None
        while not stop.is_set():
            try:
                more = self.step()
            except Exception as exc:  # a bug must not stop the exporter: log it (once), back off, retry
                if repr(exc) != last_error:
                    log.exception("unexpected error while reading; retrying every %ss", interval)
                    last_error = repr(exc)
                stop.wait(interval)
                continue
            last_error = None
            if watcher is not None:
                dirs = self.watch_dirs()
                if dirs != last_dirs:
                    watcher.update(dirs)
                    last_dirs = dirs
            if not more:
                self.waker.wait(interval)

    def close(self) -> None:
        for s in self.sources:
            s.follower.close()


def _merge_into(total: Delta, part: Delta) -> None:
    for family in total.__slots__:
        target = getattr(total, family)
        for key, n in getattr(part, family).items():
            target[key] = target.get(key, 0) + n


def replay_files(
    paths: Iterable[str],
    cfg: SourceConfig,
    catalogue: Catalogue,
    counts: Counts,
    progress: Callable[[int], None] | None = None,
    max_line: int = 64 * 1024,
) -> None:
    """Read files once, start to end (a last line without a newline counts too), into counts."""
    module = parsers.get(cfg.format)
    sink = SourceSink(cfg, module, catalogue)
    for family, keys in zero_series(cfg.name, module, cfg.options, catalogue).items():
        counts.ensure(family, keys)
    counts.source_formats[cfg.name] = cfg.format
    if progress is not None:
        count_bytes = sink.read_bytes

        def read_bytes(nbytes: int) -> None:
            count_bytes(nbytes)
            progress(nbytes)

        sink.read_bytes = read_bytes  # type: ignore[method-assign]
    for path in paths:
        follower = Follower(path, from_beginning=True, max_line=max_line)
        try:
            while follower.poll(sink):
                pass
            follower.finish(sink)
        finally:
            follower.close()
    counts.merge(sink.take())
    counts.set_gauge("up", (cfg.name,), 1)
    counts.set_gauge("behind", (cfg.name,), 0)
