"""The Collector against a fresh registry, the golden exposition, and promtool's lint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from conftest import need_binary
from helpers import ROOT, samples, value
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector, CollectorRegistry

from exporter.catalogue import Catalogue
from exporter.metrics import COUNTERS, GAUGES, Counts, CountsText, Delta, MailCollector, make_registry

GOLDEN = ROOT / "tests" / "golden" / "replay-postfix.prom"
SAMPLE = ROOT / "tests" / "data" / "postfix-sample.log"


def collector(counts: Counts, **kw) -> MailCollector:
    return MailCollector(counts, Catalogue.load, {"5.1.1": "Bad destination mailbox address"}, **kw)


def test_collector_reports_the_pipelines_counts():
    counts = Counts(clock=lambda: 1000.0)
    counts.ensure("responses", [("mx", "9009", "plex", "failure", "outbound")])
    d = Delta()
    d.add("responses", ("mx", "550", "smtp", "failure", "inbound"), 3)
    d.add("statuses", ("mx", "rejected"), 3)
    counts.merge(d)
    registry = make_registry(collector(counts, with_created=False), process=False)
    smp = samples(generate_latest(registry).decode())
    assert (
        value(
            smp,
            "mail_responses_total",
            source="mx",
            code="550",
            type="smtp",
            outcome="failure",
            direction="inbound",
        )
        == 3
    )
    assert (
        value(
            smp,
            "mail_responses_total",
            source="mx",
            code="9009",
            type="plex",
            outcome="failure",
            direction="outbound",
        )
        == 0
    )
    assert value(smp, "mail_delivery_status_total", source="mx", status="rejected") == 3
    assert (
        value(
            smp,
            "mail_enhanced_status_code_info",
            enhanced="5.1.1",
            description="Bad destination mailbox address",
        )
        == 1
    )
    assert value(smp, "mail_exporter_state_durable") == 1
    assert sum(1 for (name, _) in smp if name == "mail_response_code_info") == 28
    build = [dict(lbl) for (name, lbl) in smp if name == "mail_exporter_build_info"]
    assert len(build) == 1 and build[0]["version"] and build[0]["python_version"]
    assert not any(name.endswith("_created") for (name, _) in smp)  # classic text: no _created series
    assert not any(name == "up" for (name, _) in smp)


def test_openmetrics_has_created_times():
    counts = Counts(clock=lambda: 1234.5)
    d = Delta()
    d.add("responses", ("mx", "250", "smtp", "success", "outbound"), 1)
    counts.merge(d)
    text = generate_openmetrics(make_registry(collector(counts), process=False)).decode()
    labels = 'code="250",direction="outbound",outcome="success",source="mx",type="smtp"'
    assert f"mail_responses_created{{{labels}}} 1234.5" in text
    assert text.rstrip().endswith("# EOF")


def test_merging_is_additive_and_snapshot_round_trips():
    counts = Counts(clock=lambda: 10.0)
    for _ in range(3):
        d = Delta()
        d.add("lines", ("mx", "outcome"), 2)
        counts.merge(d)
    pending = Delta()
    pending.add("lines", ("mx", "outcome"), 1)
    snap = json.loads(counts.snapshot_json(pending))
    restored = Counts()
    restored.restore(snap)
    assert restored.values["lines"][("mx", "outcome")] == 7
    assert restored.created["lines"][("mx", "outcome")] == 10.0
    assert counts.values["lines"][("mx", "outcome")] == 6  # the pending delta is not published by a snapshot


def test_restore_skips_malformed_rows():
    counts = Counts()
    counts.restore(
        {
            "lines": [[["mx", "outcome"], 5, 1.0], [["mx"], 1, 1.0], [["a", "b"], -1, 1.0], "x"],
            "nonsense": [[["a"], 1, 1.0]],
        }
    )
    assert counts.values["lines"] == {("mx", "outcome"): 5}


def _normalise(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if line.startswith("mail_exporter_build_info"):
            line = 'mail_exporter_build_info{python_version="3.x",version="x.y.z"} 1.0'  # varies by machine
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_golden_exposition():
    out = subprocess.run(
        [sys.executable, "-m", "exporter", "replay", "--format", "postfix", str(SAMPLE)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    got = _normalise(out)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(got)
    assert got == GOLDEN.read_text(), "exposition changed: review it, then rerun with UPDATE_GOLDEN=1"


def test_promtool_check_metrics_passes_on_golden():
    promtool = need_binary("promtool")
    r = subprocess.run(
        [promtool, "check", "metrics"], input=GOLDEN.read_text(), capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "" and r.stderr.strip() == ""


def test_exposition_renders_again_only_after_a_change():
    from exporter.metrics import Exposition

    counts = Counts()
    catalogue = Catalogue.load()
    exposition = Exposition(counts, lambda: catalogue, {"5.1.1": "Bad destination mailbox address"})
    first = exposition.render(False)
    assert exposition.render(False).split(b"# HELP process_")[0] == first.split(b"# HELP process_")[0]
    d = Delta()
    d.add("responses", ("mx", "550", "smtp", "failure", "inbound"), 2)
    counts.merge(d)
    smp = samples(exposition.render(False).decode())
    assert (
        value(
            smp,
            "mail_responses_total",
            source="mx",
            code="550",
            type="smtp",
            outcome="failure",
            direction="inbound",
        )
        == 2
    )
    counts.set_gauge("up", ("mx",), 1)
    assert value(samples(exposition.render(False).decode()), "mail_exporter_source_up", source="mx") == 1
    counts.state_durable = 0  # the live part is rendered on every scrape
    assert value(samples(exposition.render(False).decode()), "mail_exporter_state_durable") == 0
    om = exposition.render(True).decode()
    assert om.count("# EOF") == 1 and om.endswith("# EOF\n")
    assert "mail_responses_created{" in om and "process_cpu_seconds_total" in om


# -- CountsText: the daemon's fast writer for the counts, held equal to prometheus_client's output -----

_LABEL_TEXT = st.text(alphabet=st.sampled_from('ab5_ "\\\n{},=é\u2028'), max_size=6)
_FAMILIES = sorted(COUNTERS)


@st.composite
def _operation(draw):
    kind = draw(st.sampled_from(["ensure", "merge", "gauge", "restore"]))
    if kind == "gauge":
        family = draw(st.sampled_from(sorted(GAUGES)))
        key = tuple(draw(_LABEL_TEXT) for _ in GAUGES[family][2])
        number = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**62), 2**62)
        return kind, family, key, draw(number)
    family = draw(st.sampled_from(_FAMILIES))
    key = tuple(draw(_LABEL_TEXT) for _ in COUNTERS[family][2])
    return kind, family, key, draw(st.integers(0, 2**62))


def _apply(counts: Counts, operation: tuple) -> None:
    kind, family, key, number = operation
    if kind == "ensure":
        counts.ensure(family, [key])
    elif kind == "merge":
        delta = Delta()
        delta.add(family, key, number)
        counts.merge(delta)
    elif kind == "gauge":
        counts.set_gauge(family, key, number)
    else:
        counts.restore({family: [[list(key), number, 1733300000.5]]})


def _reference(counts: Counts, openmetrics: bool) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    collector = MailCollector(counts, Catalogue.load, {}, with_created=openmetrics, parts=("counts",))
    registry.register(collector)
    if openmetrics:
        return generate_openmetrics(registry).removesuffix(b"# EOF\n")
    return generate_latest(registry)


@settings(max_examples=150, deadline=None)
@given(st.lists(_operation(), max_size=25))
def test_counts_text_writes_what_prometheus_client_writes(operations):
    """Byte for byte, in both formats, after every change (the writer keeps lines between renders)."""
    ticks = iter(range(10**6))
    counts = Counts(clock=lambda: 1733300000 + next(ticks) * 0.125)
    writers = {False: CountsText(counts, False), True: CountsText(counts, True)}
    for operation in [("merge", "lines", ("mx", "outcome"), 1), *operations]:
        _apply(counts, operation)
        for openmetrics, writer in writers.items():
            assert writer.render() == _reference(counts, openmetrics)


def test_counts_text_notices_a_new_creation_time_for_the_same_value():
    counts = Counts(clock=lambda: 1733300000.0)
    writer = CountsText(counts, True)
    counts.restore({"responses": [[["mx", "250", "smtp", "success", "outbound"], 4, 1700000000.25]]})
    assert writer.render() == _reference(counts, True)
    counts.restore({"responses": [[["mx", "250", "smtp", "success", "outbound"], 4, 1700000099.5]]})
    assert b"1.7000000995e+09" in writer.render()
    assert writer.render() == _reference(counts, True)


def _snapshot(counts: Counts, delta: Delta) -> dict:
    """What snapshot_json() must encode, computed plainly from the values and creation times."""
    now = counts._clock()
    out = {}
    for family in COUNTERS:
        values = dict(counts.values[family])
        for key, n in getattr(delta, family).items():
            values[key] = values.get(key, 0) + n
        out[family] = [[list(k), v, counts.created[family].get(k, now)] for k, v in values.items()]
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(_operation(), max_size=25), st.lists(_operation(), max_size=4))
def test_snapshot_json_is_the_snapshot_whatever_changed(operations, pending_ops):
    """The state file's counters, encoded row by row with rows kept between saves, are the plain snapshot."""
    clock = [1733300000.0]
    counts = Counts(clock=lambda: clock[0])
    pending = Delta()
    for _, family, key, number in pending_ops:
        if family in COUNTERS:
            pending.add(family, key, number)
    for operation in operations:
        _apply(counts, operation)  # gauges are not in the state file: they change nothing here
        assert json.loads(counts.snapshot_json(pending)) == _snapshot(counts, pending)
        assert json.loads(counts.snapshot_json()) == _snapshot(counts, Delta())
        clock[0] += 0.125


def test_snapshot_json_notices_a_new_creation_time_for_the_same_value():
    counts = Counts()
    key = ["mx", "250", "smtp", "success", "outbound"]
    counts.restore({"responses": [[key, 4, 1700000000.25]]})
    assert json.loads(counts.snapshot_json())["responses"] == [[key, 4, 1700000000.25]]
    counts.restore({"responses": [[key, 4, 1700000099.5]]})
    assert json.loads(counts.snapshot_json())["responses"] == [[key, 4, 1700000099.5]]


class _Tally(Collector):
    """A collector that counts how often it is collected; values() only if given one."""

    def __init__(self, name: str, values=None):
        self.name, self.calls, self.value = name, 0, 0
        if values is not None:
            self.values = values

    def collect(self):
        self.calls += 1
        yield GaugeMetricFamily(self.name, "test", value=self.value)


def test_exposition_renders_each_part_only_when_what_it_shows_changed(monkeypatch):
    from exporter.metrics import Exposition

    counts = Counts()
    exposition = Exposition(counts, Catalogue.load, {})
    plain = _Tally("t_plain")
    keyed = _Tally("t_keyed", values=lambda: keyed.value)
    exposition.register_live(plain)
    exposition.register_live(keyed)
    process_calls = []
    name, version, reg = exposition._parts[-1]
    assert name == "process"
    real_collect = reg.collect
    monkeypatch.setattr(reg, "collect", lambda: process_calls.append(1) or real_collect())
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    for _ in range(3):
        body = exposition.render(False)
    assert plain.calls == 3  # no values(): every scrape
    assert keyed.calls == 1 and len(process_calls) == 1  # unchanged: rendered once
    keyed.value = 7
    counts.state_durable = 0
    body = exposition.render(False).decode()
    assert keyed.calls == 2 and "t_keyed 7.0" in body and "mail_exporter_state_durable 0.0" in body
    clock[0] += exposition.PROCESS_EVERY
    exposition.render(False)
    assert len(process_calls) == 2  # process_* sampled again once a second has passed
