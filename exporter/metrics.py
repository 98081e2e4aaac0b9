"""Counts owned by the pipeline and the Collector that turns them into metric families at scrape time."""

from __future__ import annotations

import json
import math
import platform
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import generate_latest as _text_latest
from prometheus_client.openmetrics.exposition import generate_latest as _openmetrics_latest
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from . import __version__
from .catalogue import Catalogue

# Counter families whose values follow the log (and are saved with the read positions):
# name -> (metric name without _total, help, label names)
COUNTERS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "responses": (
        "mail_responses",
        "Logged results by response code: one per recipient result and one per rejection.",
        ("source", "code", "type", "outcome", "direction"),
    ),
    "statuses": (
        "mail_delivery_status",
        "Dispositions the log states (sent, deferred, bounced, expired, rejected), with or without a code.",
        ("source", "status"),
    ),
    "enhanced": (
        "mail_enhanced_status_codes",
        "Logged results by RFC 3463 enhanced status code (unknown or malformed codes count as other).",
        ("source", "enhanced", "outcome"),
    ),
    "lines": (
        "mail_exporter_lines",
        "Lines read, by result: outcome, ignored (no result), unparsed (not of the format), oversize.",
        ("source", "result"),
    ),
    "read_bytes": ("mail_exporter_read_bytes", "Bytes read from the source.", ("source",)),
    "file_events": (
        "mail_exporter_file_events",
        "File events seen while following a source: open, rotate, truncate, reopen, missing.",
        ("source", "event"),
    ),
    "read_errors": ("mail_exporter_read_errors", "Failed attempts to open or read the source.", ("source",)),
    "lost_bytes": (
        "mail_exporter_lost_bytes",
        "Bytes that were gone before they could be read (for example written between copy and truncate).",
        ("source", "reason"),
    ),
    "dropped": (
        "mail_exporter_dropped",
        "Messages dropped by a source without replay (syslog, stdin), by reason.",
        ("source", "reason"),
    ),
}

GAUGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "behind": (
        "mail_exporter_behind_bytes",
        "Bytes of the source not read yet (file size minus offset).",
        ("source",),
    ),
    "up": ("mail_exporter_source_up", "1 while the source is readable, 0 otherwise.", ("source",)),
    "last_line": (
        "mail_exporter_last_line_timestamp_seconds",
        "Unix time at which the last complete line was read from the source.",
        ("source",),
    ),
}

Key = tuple[str, ...]
_ROW_ENCODER = json.JSONEncoder(separators=(",", ":"))  # as state.save() encodes the rest of the file


_KEY_TEXT: dict[Key, str] = {}  # label values as JSON, per series (keys are bounded by the series limit)


def _row(key: Key, value: int, created: float) -> str:
    """One series in the state file: [[label values], value, creation time], as json.dumps writes it."""
    labels = _KEY_TEXT.get(key)
    if labels is None:
        if len(_KEY_TEXT) >= 65536:  # bounded even across many Counts (tests, reloads)
            _KEY_TEXT.clear()
        labels = _KEY_TEXT[key] = _ROW_ENCODER.encode(list(key))
    if isinstance(created, float) and math.isfinite(created):
        return f"[{labels},{value},{float.__repr__(created)}]"  # how json writes a float
    return _ROW_ENCODER.encode([list(key), value, created])


class Delta:
    """Increments gathered by one batch of the pipeline, merged into Counts in one step."""

    __slots__ = tuple(COUNTERS)

    def __init__(self) -> None:
        for family in COUNTERS:
            setattr(self, family, {})

    def add(self, family: str, key: Key, n: int = 1) -> None:
        d = getattr(self, family)
        d[key] = d.get(key, 0) + n

    def empty(self) -> bool:
        return not any(getattr(self, family) for family in COUNTERS)


class Counts:
    """Thread-safe counter values and creation times; the pipeline thread is the only writer."""

    def __init__(self, clock=time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.values: dict[str, dict[Key, int]] = {family: {} for family in COUNTERS}
        self.created: dict[str, dict[Key, float]] = {family: {} for family in COUNTERS}
        self.gauges: dict[str, dict[Key, float]] = {family: {} for family in GAUGES}
        self.source_formats: dict[str, str] = {}
        self.state_saves: dict[str, int] = {"ok": 0, "error": 0}
        self.state_durable = 1
        self.config_reloads: dict[str, int] = {"ok": 0, "error": 0}
        self.config_reload_ok = 1
        # Bumped by every change to values, created times or gauges: lets a scrape reuse the last rendering.
        self.version = 0
        self._rows: dict[str, dict[Key, str]] = {family: {} for family in COUNTERS}  # each series' JSON row

    def ensure(self, family: str, keys: Iterable[Key]) -> None:
        """Create series at 0 so that alerts on increase() work from the first event."""
        now = self._clock()
        with self._lock:
            values, created = self.values[family], self.created[family]
            rows = self._rows[family]
            for key in keys:
                if key not in values:
                    values[key] = 0
                    created[key] = now
                    rows[key] = _row(key, 0, now)
                    self.version += 1

    def merge(self, delta: Delta) -> None:
        now = self._clock()
        with self._lock:
            for family in COUNTERS:
                inc = getattr(delta, family)
                if not inc:
                    continue
                values, created, rows = self.values[family], self.created[family], self._rows[family]
                for key, n in inc.items():
                    old = values.get(key)
                    if old is None:
                        values[key] = n
                        created[key] = now
                    else:
                        values[key] = old + n
                    rows[key] = _row(key, values[key], created[key])
                self.version += 1

    def set_gauge(self, family: str, key: Key, value: float) -> None:
        gauges = self.gauges[family]
        if gauges.get(key) != value:
            gauges[key] = value  # a single dict store: atomic under the GIL
            self.version += 1

    def snapshot_json(self, delta: Delta | None = None) -> str:
        """Counter values and creation times, plus a pending delta, as the JSON text of the state file's
        "counters": {family: [[[label values], value, creation time], ...]}; restore() reads it back.

        Each series' row is encoded when it changes (ensure, merge, restore), not on every save: a
        batch changes a few series, and encoding all of them on each save was the largest fixed cost
        of a wake-up. Only the rows the pending delta changes are encoded here.
        """
        now = self._clock()
        families = []
        with self._lock:
            for family in COUNTERS:
                rows = self._rows[family]
                pending = getattr(delta, family) if delta is not None else None
                if pending:
                    rows = dict(rows)
                    values, created = self.values[family], self.created[family]
                    for key, n in pending.items():
                        if key in values:
                            rows[key] = _row(key, values[key] + n, created[key])
                        else:  # a new series: created now
                            rows[key] = _row(key, n, now)
                families.append(f'"{family}":[{",".join(rows.values())}]')
        return "{" + ",".join(families) + "}"

    def restore(self, saved: dict) -> None:
        """Load counter values saved by snapshot_json(); unknown families or malformed rows are skipped."""
        with self._lock:
            for family, rows in saved.items():
                if family not in COUNTERS or not isinstance(rows, list):
                    continue
                width = len(COUNTERS[family][2])
                for row in rows:
                    if (
                        isinstance(row, list)
                        and len(row) == 3
                        and isinstance(row[0], list)
                        and len(row[0]) == width
                        and all(isinstance(x, str) for x in row[0])
                        and isinstance(row[1], int)
                        and row[1] >= 0
                        and isinstance(row[2], int | float)
                    ):
                        key = tuple(row[0])
                        self.values[family][key] = row[1]
                        self.created[family][key] = float(row[2])
                        self._rows[family][key] = _row(key, row[1], float(row[2]))
            self.version += 1

    def copy(self) -> tuple[dict, dict, dict]:
        with self._lock:
            values = {f: dict(v) for f, v in self.values.items()}
            created = {f: dict(v) for f, v in self.created.items()}
        gauges = {f: dict(v) for f, v in self.gauges.items()}
        return values, created, gauges


PARTS = ("counts", "info", "live")


class MailCollector(Collector):
    """Yields the mail_* families at scrape time, from Counts and the catalogue.

    parts: "counts" (counters and gauges that follow the log), "info" (the catalogue and the enhanced
    code list: they change only on reload) and "live" (small process-level families); all by default.
    """

    def __init__(
        self,
        counts: Counts,
        catalogue_ref,
        enhanced_info: dict[str, str] | None = None,
        with_created: bool = True,
        parts: tuple[str, ...] = PARTS,
    ) -> None:
        self._counts = counts
        self._with_created = with_created  # OpenMetrics has _created; the classic text format needs none
        self._catalogue_ref = catalogue_ref  # a callable returning the current Catalogue (reloadable)
        self._enhanced_info = enhanced_info or {}
        self._parts = parts

    def collect(self) -> Iterator[Metric]:
        if "counts" in self._parts:
            yield from self._counted()
        if "info" in self._parts:
            yield from self._info()
        if "live" in self._parts:
            yield from self._live()

    def _counted(self) -> Iterator[Metric]:
        values, created, gauges = self._counts.copy()
        for family, (name, doc, labels) in COUNTERS.items():
            m = CounterMetricFamily(name, doc, labels=labels)
            fam_created = created[family] if self._with_created else {}
            for key in sorted(values[family]):
                m.add_metric(key, values[family][key], created=fam_created.get(key))
            yield m
        for family, (name, doc, labels) in GAUGES.items():
            g = GaugeMetricFamily(name, doc, labels=labels)
            for key in sorted(gauges[family]):
                g.add_metric(key, gauges[family][key])
            yield g

    def _info(self) -> Iterator[Metric]:
        catalogue: Catalogue = self._catalogue_ref()
        info = GaugeMetricFamily(
            "mail_response_code_info",
            "Catalogue entry of a response code (always 1); join on code for its description.",
            labels=("code", "type", "outcome", "description"),
        )
        for e in catalogue.entries:
            info.add_metric((e.code, e.type, e.outcome, e.description), 1)
        yield info
        enh = GaugeMetricFamily(
            "mail_enhanced_status_code_info",
            "Meaning of an RFC 3463 enhanced status code (always 1); join on enhanced.",
            labels=("enhanced", "description"),
        )
        for code, description in sorted(self._enhanced_info.items()):
            enh.add_metric((code, description), 1)
        yield enh

    def _live(self) -> Iterator[Metric]:
        src = GaugeMetricFamily(
            "mail_exporter_source_info",
            "The format each source is read as (always 1).",
            labels=("source", "format"),
        )
        for source, fmt in sorted(self._counts.source_formats.items()):
            src.add_metric((source, fmt), 1)
        yield src
        saves = CounterMetricFamily(
            "mail_exporter_state_saves", "Attempts to save the state file, by result.", labels=("result",)
        )
        for result, n in sorted(self._counts.state_saves.items()):
            saves.add_metric((result,), n)
        yield saves
        yield GaugeMetricFamily(
            "mail_exporter_state_durable",
            "1 while the state file is saved durably (counts survive a crash), 0 otherwise.",
            value=self._counts.state_durable,
        )
        reloads = CounterMetricFamily(
            "mail_exporter_config_reloads", "Configuration reloads (SIGHUP), by result.", labels=("result",)
        )
        for result, n in sorted(self._counts.config_reloads.items()):
            reloads.add_metric((result,), n)
        yield reloads
        yield GaugeMetricFamily(
            "mail_exporter_config_last_reload_successful",
            "0 when the last reload (SIGHUP) was refused and the previous configuration stayed in force.",
            value=self._counts.config_reload_ok,
        )
        build = InfoMetricFamily("mail_exporter_build", "Version of mailcode-exporter and of Python.")
        build.add_metric([], {"version": __version__, "python_version": platform.python_version()})
        yield build


_EOF = b"# EOF\n"


def _escape_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class CountsText:
    """The counts part of /metrics, written directly: byte for byte what prometheus_client writes for
    MailCollector(parts=("counts",)) (tests/test_metrics.py holds the two equal), at a fraction of the
    cost. Each series keeps its rendered line, rewritten only when its value (or creation time)
    changed; the sorted order of a family's series is kept until a series is added.

    Used by the daemon's Exposition on every scrape after a change, which is what the live latency
    of a line (append to visible on /metrics) waits for.
    """

    def __init__(self, counts: Counts, openmetrics: bool) -> None:
        self._counts = counts
        self._om = openmetrics
        self._families = [(f, *spec, True) for f, spec in COUNTERS.items()]
        self._families += [(f, *spec, False) for f, spec in GAUGES.items()]
        self._heads: dict[str, str] = {}
        self._lines: dict[str, dict[Key, tuple]] = {f: {} for f, *_ in self._families}
        self._order: dict[str, tuple[int, list[Key]]] = {}
        self._labels: dict[tuple[tuple[str, ...], Key], str] = {}  # {label="value",...} by names and key

    def render(self) -> bytes:
        values, created, gauges = self._counts.copy()
        out: list[str] = []
        for family, name, doc, labels, is_counter in self._families:
            head = self._heads.get(family)
            if head is None:
                head = self._heads[family] = self._head(name, doc, is_counter)
            out.append(head)
            series = values[family] if is_counter else gauges[family]
            born = created[family] if is_counter else {}
            lines = self._lines[family]
            count, order = self._order.get(family, (-1, []))
            if count != len(series):  # series are only ever added: same count, same keys
                order = sorted(series)
                self._order[family] = (len(series), order)
            for key in order:
                value = series[key]
                when = born.get(key) if self._om else None
                hit = lines.get(key)
                if hit is None or hit[0] != value or hit[1] != when:
                    hit = lines[key] = (value, when, self._line(name, labels, key, value, when, is_counter))
                out.append(hit[2])
        return "".join(out).encode("utf-8")

    def _head(self, name: str, doc: str, is_counter: bool) -> str:
        kind = "counter" if is_counter else "gauge"
        if self._om:
            return f"# HELP {name} {_escape_value(doc)}\n# TYPE {name} {kind}\n"
        exposed = name + "_total" if is_counter else name
        help_text = doc.replace("\\", "\\\\").replace("\n", "\\n")
        return f"# HELP {exposed} {help_text}\n# TYPE {exposed} {kind}\n"

    def _line(
        self, name: str, labels: tuple, key: Key, value: float, when: float | None, counter: bool
    ) -> str:
        text = self._labels.get((labels, key))
        if text is None:  # label pairs sorted by name, as prometheus_client writes them
            inner = ",".join(f'{k}="{_escape_value(v)}"' for k, v in sorted(zip(labels, key, strict=True)))
            text = self._labels[(labels, key)] = "{" + inner + "}" if inner else ""
        sample = name + "_total" if counter else name
        line = f"{sample}{text} {floatToGoString(value)}\n"
        if when is not None:
            line += f"{name}_created{text} {floatToGoString(when)}\n"
        return line


Renderable = CollectorRegistry | CountsText  # what Exposition renders and keeps


class Exposition:
    """Renders /metrics for the daemon, each part kept until what it shows changed: the counts (by
    CountsText, series by series) until a batch is published; the catalogue until a reload; the
    exporter's own small families and the HTTP server's until one of their values changes; process_*
    (CPU, memory, descriptors: read from /proc) at most once a second."""

    PROCESS_EVERY = 1.0  # seconds; process_* figures are sampled at most this often

    def __init__(self, counts: Counts, catalogue_ref, enhanced_info: dict[str, str]) -> None:
        from prometheus_client import ProcessCollector

        self._counts = counts
        self._catalogue_ref = catalogue_ref

        def registry(*collectors: Collector) -> CollectorRegistry:
            reg = CollectorRegistry(auto_describe=False)
            for collector in collectors:
                reg.register(collector)
            return reg

        def mail(part: str) -> CollectorRegistry:
            return registry(MailCollector(counts, catalogue_ref, enhanced_info, parts=(part,)))

        self._counted = {False: CountsText(counts, False), True: CountsText(counts, True)}
        # (name, what its rendering depends on, what renders it), in the order they are served
        self._parts: list[tuple[str, Callable[[], object], Renderable]] = [
            ("info", catalogue_ref, mail("info")),
            ("live", self._live_values, mail("live")),
            (
                "process",
                lambda: int(time.monotonic() / self.PROCESS_EVERY),
                registry(ProcessCollector(registry=None)),
            ),
        ]
        self._cache: dict[tuple[str, bool], tuple[object, bytes]] = {}
        self._lock = threading.Lock()

    def _live_values(self) -> tuple:
        c = self._counts
        return (
            tuple(sorted(c.source_formats.items())),
            tuple(c.state_saves.values()),
            c.state_durable,
            tuple(c.config_reloads.values()),
            c.config_reload_ok,
        )

    def register_live(self, collector: Collector) -> None:
        """Another collector's families (the HTTP server's own). Its values() method, if it has one,
        returns what its rendering depends on; without one it is rendered on every scrape."""
        reg = CollectorRegistry(auto_describe=False)
        reg.register(collector)
        values = getattr(collector, "values", None) or time.monotonic
        self._parts.insert(-1, (f"extra{len(self._parts)}", values, reg))

    def render(self, openmetrics: bool) -> bytes:
        with self._lock:  # concurrent scrapes share one rendering instead of each making their own
            out = [self._cached(("counts", openmetrics), self._counts.version, self._counted[openmetrics])]
            out += [self._cached((name, openmetrics), version(), reg) for name, version, reg in self._parts]
        if openmetrics:
            return b"".join(part.removesuffix(_EOF) for part in out) + _EOF
        return b"".join(out)

    def _cached(self, key: tuple[str, bool], version: object, source: Renderable) -> bytes:
        hit = self._cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        if isinstance(source, CountsText):
            body = source.render()
        else:
            body = (_openmetrics_latest if key[1] else _text_latest)(source)
        self._cache[key] = (version, body)  # the version was read first: a change while rendering redoes it
        return body


def make_registry(collector: Collector, process: bool = True) -> CollectorRegistry:
    """A fresh registry holding our collector and (for the daemon) the standard process_* metrics."""
    from prometheus_client import ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if process:
        ProcessCollector(registry=registry)
    return registry
