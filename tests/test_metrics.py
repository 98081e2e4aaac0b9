"""The Collector against a fresh registry, the golden exposition, and promtool's lint."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import need_binary
from helpers import ROOT, samples, value
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter.catalogue import Catalogue
from exporter.metrics import Counts, Delta, MailCollector, make_registry

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
    snap = counts.snapshot(pending)
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
