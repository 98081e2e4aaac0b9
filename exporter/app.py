"""Wires the pipeline: tail -> parse -> classify -> count, with durable state, for the daemon and replay."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import parsers, state
from .catalogue import Catalogue
from .config import Settings, SourceConfig
from .counting import SourceSink, zero_series
from .metrics import Counts, Delta
from .sources import open_reader
from .tail import DirectoryWatcher, Follower, Waker

log = logging.getLogger(__name__)


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
    _pending: tuple[Settings, Catalogue] | None = None
    _waker_started: bool = False
    _writer: state.StateWriter | None = None
    _positions: dict[str, list] = field(default_factory=dict)  # each source's, as the last step left them

    def setup(self) -> None:
        saved = self._load_state()
        for cfg in self.settings.sources:
            entry = (saved or {}).get("sources", {}).get(cfg.name)
            self._add_source(cfg, entry if isinstance(entry, dict) else None)

    def _add_source(self, cfg: SourceConfig, saved: dict | None) -> Source:
        module = parsers.get(cfg.format)
        sink = SourceSink(cfg, module, self.catalogue)
        follower = open_reader(cfg, self.settings)
        if saved is not None and isinstance(saved.get("files"), list):
            follower.restore(saved["files"])
        src = Source(cfg, sink, follower)
        self.sources.append(src)
        for family, keys in zero_series(cfg.name, module, cfg.options, self.catalogue).items():
            self.counts.ensure(family, keys)
        self.counts.source_formats[cfg.name] = cfg.format
        self.counts.set_gauge("up", (cfg.name,), 0)
        self.counts.set_gauge("behind", (cfg.name,), 0)
        return src

    def start_readers(self) -> None:
        """Start the readers that run a thread or a subprocess of their own (journal, syslog, stdin)."""
        self._waker_started = True
        for src in self.sources:
            start = getattr(src.follower, "start", None)
            if start is not None:
                start(self.waker)

    # -- reload (SIGHUP) -------------------------------------------------------------------------
    def request_reload(self, settings: Settings, catalogue: Catalogue) -> None:
        """Hand a checked configuration to the reader thread, which applies it between two batches."""
        self._pending = (settings, catalogue)
        self.waker.set()

    def _apply_reload(self) -> None:
        settings, catalogue = self._pending  # type: ignore[misc]
        self._pending = None
        self.catalogue = catalogue
        self.settings = settings
        wanted = {cfg.name: cfg for cfg in settings.sources}
        kept, added, removed = [], [], []
        for src in list(self.sources):
            cfg = wanted.get(src.cfg.name)
            if cfg is not None and cfg.model_dump() == src.cfg.model_dump():
                src.sink.set_catalogue(catalogue)  # same source: keep its reader and its offsets
                kept.append(src.cfg.name)
                for family, keys in zero_series(cfg.name, src.sink.module, cfg.options, catalogue).items():
                    self.counts.ensure(family, keys)
                continue
            src.follower.close()  # removed or changed: its counters stay, its reader goes
            self.sources.remove(src)
            removed.append(src.cfg.name)
        for name, cfg in wanted.items():
            if name not in kept:
                src = self._add_source(cfg, None)
                added.append(name)
                start = getattr(src.follower, "start", None)
                if start is not None and self._waker_started:
                    start(self.waker)
        log.info(
            "configuration reloaded: %d catalogue codes; sources kept: %s; added: %s; removed: %s",
            len(catalogue.entries),
            ", ".join(kept) or "-",
            ", ".join(added) or "-",
            ", ".join(removed) or "-",
        )
        self._save(Delta())

    def _load_state(self) -> dict | None:
        if self.state_file is None:
            return None
        problem = state.check_writable(self.state_file)
        if problem:
            self._not_durable(f"state file {self.state_file} cannot be written: {problem}")
        else:
            state.remove_stale_temp(self.state_file)  # left by a save that a kill -9 interrupted
        if self.settings.reset_state:
            log.info("--reset-state: starting over, ignoring %s", self.state_file)
            if self.state_file.exists() and not problem:
                state.set_aside(self.state_file)  # a crash before the first save must not bring it back
            return None
        try:
            saved = state.load(self.state_file)
        except state.StateError as exc:
            start = "their beginning" if self.settings.from_beginning else "their end"
            aside = None if problem else state.set_aside(self.state_file)
            log.warning(
                "%s; starting without it (counters from 0, files from %s)%s",
                exc,
                start,
                f"; it was kept as {aside}" if aside else "",
            )
            self.counts.state_saves["error"] += 1
            return None
        if saved is None:
            return None
        names = {cfg.name for cfg in self.settings.sources}
        counters = saved.get("counters", {})
        for family, rows in list(counters.items()):
            if isinstance(rows, list):
                counters[family] = [
                    r
                    for r in rows
                    if isinstance(r, list) and r and isinstance(r[0], list) and r[0] and r[0][0] in names
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
        gauges: list[tuple[str, tuple, float]] = []
        positions = {}
        for src in self.sources:
            more = src.follower.poll(src.sink) or more
            d = src.sink.take()
            if not d.empty():
                _merge_into(delta, d)
            # A position can move without a byte read (a file opened, rotated, finished, truncated):
            # compared with what the previous step saw (one positions() per source and step).
            positions[src.cfg.name] = after = src.follower.positions()
            moved = moved or d.read_bytes or self._positions.get(src.cfg.name) != after
            name = (src.cfg.name,)
            gauges += [("up", name, 1 if src.follower.up else 0), ("behind", name, src.follower.behind())]
            if src.sink.last_line is not None:
                gauges.append(("last_line", name, src.sink.last_line))
            if self.counts.source_formats.get(src.cfg.name) != src.sink.format:
                log.info("source %s: format detected: %s", src.cfg.name, src.sink.format)
                self.counts.source_formats[src.cfg.name] = src.sink.format
        if moved or not delta.empty():
            for family in delta.__slots__:  # new series get their creation time before it is saved
                if getattr(delta, family):
                    self.counts.ensure(family, getattr(delta, family))
            self._save(delta, positions)
        self._positions = positions
        # Group commit: what this batch read is published only once the state holding it is on disk.
        self.counts.merge(delta)
        for family, key, value in gauges:
            self.counts.set_gauge(family, key, value)
        self.ready = not more and all(s.follower.up and s.follower.behind() == 0 for s in self.sources)
        return more

    def _save(self, delta: Delta, positions: dict[str, list] | None = None) -> None:
        if self.state_file is None:
            return
        positions = positions or {}
        sources = {
            s.cfg.name: {
                "format": s.cfg.format,
                "path": s.cfg.path,
                "files": positions[s.cfg.name] if s.cfg.name in positions else s.follower.positions(),
            }
            for s in self.sources
        }
        if self._writer is None:
            self._writer = state.StateWriter(self.state_file)
        try:
            self._writer.save(sources, self.counts.snapshot_json(delta))
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
        dirs_due = 0.0
        last_error: str | None = None
        while not stop.is_set():
            if self._pending is not None:
                self._apply_reload()
                interval = self.settings.poll_interval
            try:
                more = self.step()
            except Exception as exc:  # a bug must not stop the exporter: log it (once), back off, retry
                if repr(exc) != last_error:
                    log.exception("unexpected error while reading; retrying every %ss", interval)
                    last_error = repr(exc)
                stop.wait(interval)
                continue
            last_error = None
            # The directories to watch change only with a symlink's target or a glob's new directory:
            # looked at again once per poll interval (a few stat calls), or at once when a watch was lost.
            if watcher is not None and (watcher.lost or time.monotonic() >= dirs_due):
                dirs = self.watch_dirs()
                if dirs != last_dirs or watcher.lost:
                    watcher.update(dirs)
                    last_dirs = dirs
                dirs_due = time.monotonic() + interval
            if not more:
                self.waker.wait(interval)

    def close(self) -> None:
        for s in self.sources:
            s.follower.close()
        if self._writer is not None:
            self._writer.close()
        self.waker.close()


def _merge_into(total: Delta, part: Delta) -> None:
    for family in total.__slots__:
        target = getattr(total, family)
        for key, n in getattr(part, family).items():
            target[key] = target.get(key, 0) + n
