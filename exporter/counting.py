"""Counting: parse blocks of complete lines and turn events into counter increments (the hot path)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from . import enhanced as enhanced_codes
from . import parsers
from .catalogue import Catalogue
from .config import SourceConfig
from .events import DIRECTIONS, OUTBOUND, STATUSES, Event, tally_lines
from .metrics import Counts, Delta
from .tail import Follower, TrackedFile

LINE_RESULTS = ("outcome", "ignored", "unparsed", "oversize")
FILE_EVENTS = ("open", "rotate", "truncate", "reopen", "missing")
LOST_REASONS = ("truncated", "missing")
_CACHE_LIMIT = 4096


class Classifier:
    """Event -> counter keys for one source, memoised (bounded) since most events repeat exactly."""

    def __init__(self, source: str, catalogue: Catalogue):
        self.source = source
        self.catalogue = catalogue
        self._cache: dict[Event, tuple] = {}
        enhanced_codes.preload()  # ~20 ms of YAML: not on the first line's way to /metrics

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
        # A format may count a whole block at once (exactly as its parser would, line by line).
        self._count_block = (
            getattr(module, "count_block", None) if not (self.stateful or cfg.options) else None
        )
        self.classifier = Classifier(cfg.name, catalogue)
        self.delta = Delta()
        self.last_line: float | None = None
        self.format = cfg.format  # for `auto`: the format it recognised, once it has

    def _detected(self, fmt: str) -> None:
        self.format = fmt

    def set_catalogue(self, catalogue: Catalogue) -> None:
        """A reloaded catalogue: classify from the next line on."""
        self.classifier = Classifier(self.name, catalogue)

    def new_parser(self) -> Callable[[str], Any]:
        if self._shared is not None:
            return self._shared
        if getattr(self.module, "NAME", None) == "auto":
            return self.module.make_parser(on_choose=self._detected)
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
        owner = getattr(parse, "__self__", None)  # `auto` is primed once it knows a stateless format
        while pos < tf.offset and not getattr(owner, "primed", False):
            data = os.pread(tf.fd, min(1 << 20, tf.offset - pos), pos)
            if not data:
                break
            pos += len(data)
            lines = (tail + data).split(b"\n")
            tail = lines.pop()
            for raw in lines:
                parse(raw.decode("utf-8", "replace").rstrip("\r"))
                if getattr(owner, "primed", False):
                    break

    def lines(self, tf: TrackedFile, data: bytes) -> None:
        if tf.ctx is None:  # a file resumed from the state file: its parser starts here
            self.opened(tf, "resume")
        count_block = self._block_counter(tf.ctx)
        if count_block is not None:
            counted = count_block(data)  # bytes, not decoded first where the format can
            if counted is not None:
                self._add_counted(*counted)
                return
        self.count_text(data.decode("utf-8", "replace"), tf.ctx)

    def _block_counter(self, parse: Callable[[str], Any]) -> Callable | None:
        """The format's count_block() when it counts exactly what `parse` would, line by line."""
        if parse is self._shared:
            return self._count_block
        # `auto`, once it chose a stateless format: that format's own block counter
        return getattr(getattr(parse, "__self__", None), "count_block", None) if not self.options else None

    def count_text(self, text: str, parse: Callable[[str], Any]) -> None:
        """Parse and count a block of complete lines (each ends with a newline)."""
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        count_block = self._block_counter(parse)
        counted = count_block(text) if count_block is not None else None
        if counted is not None:
            self._add_counted(*counted)
            return
        self._add_counted(*tally_lines(text, parse))

    def _add_counted(self, outcome: int, ignored: int, unparsed: int, events: dict[Event, int]) -> None:
        """Add the line results and {event: count} of one block to the pending Delta."""
        keys = self.classifier.keys
        responses, statuses, enhanced = self.delta.responses, self.delta.statuses, self.delta.enhanced
        for ev, n in events.items():
            resp, status, enh = keys(ev)
            responses[resp] = responses.get(resp, 0) + n
            if status is not None:
                statuses[status] = statuses.get(status, 0) + n
            if enh is not None:
                enhanced[enh] = enhanced.get(enh, 0) + n
        add = self.delta.add
        for result, n in (("outcome", outcome), ("ignored", ignored), ("unparsed", unparsed)):
            if n:
                add("lines", (self.name, result), n)
        if outcome or ignored or unparsed:
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
        "lost_bytes": [(name, reason) for reason in LOST_REASONS],
    }


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
    counts.source_formats[cfg.name] = sink.format
    counts.set_gauge("up", (cfg.name,), 1)
    counts.set_gauge("behind", (cfg.name,), 0)
