"""A real Postfix on loopback writes a real mail log; the exporter must count what it says, code by code.

One private Postfix instance per module (tests/realstack/postfix_env.py) is driven by swaks and
relays to an SMTP sink that answers chosen codes (tests/realstack/sink.py). The scenario
(tests/realstack/scenario.py) returns an independent record of what the log must contain, built
from swaks' transcripts and the sink's own reply log. The first test checks that record against the
log with plain searches; the others check the exporter (daemon and replay) against the record.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from conftest import need_binary
from prometheus_client.parser import text_string_to_metric_families
from realstack import scenario
from realstack.postfix_env import HOST, free_port
from realstack.sink import DATA, GREETING

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SOURCE = "postfix"

_STATUS_LINE = re.compile(r": to=<[^>]*>, .*\bstatus=([a-z]+)")


@pytest.fixture(scope="module")
def run():
    """Postfix, the sink and the whole scenario, once for this module; everything stopped afterwards."""
    postfix = need_binary("postfix", "/usr/sbin/postfix")
    swaks = need_binary("swaks", "/usr/bin/swaks")
    with scenario.postfix_with_sink(postfix) as (instance, sink, unreachable_port):
        yield scenario.run(instance, sink, unreachable_port, swaks)


def _status_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if _STATUS_LINE.search(line)]


def test_record_covers_every_path(run):
    """The scenario really exercised each path: a record that is nearly empty would prove nothing."""
    exp = run.expected
    inbound = {code for code, direction in exp.responses if direction == scenario.INBOUND}
    assert inbound == {"421", "450", "451", "452", "501", "504", "550", "552", "553", "554"}
    for code in scenario.SINK_CODES:
        # once at MAIL FROM, once at RCPT TO, once at the end of DATA (plus a greeting for 421 and 554)
        assert exp.responses[(code, scenario.OUTBOUND)] >= 3, code
    assert exp.responses[("250", scenario.OUTBOUND)] >= 1
    assert exp.local_deliveries == 1
    assert exp.unreachable_deferrals == 1
    assert {r.stage for r in exp.inbound} == {"MAIL", "RCPT", "DATA", "END-OF-MESSAGE"}
    assert [r.code for r in exp.unlogged_inbound] == ["552"]
    assert set(exp.statuses) == {"sent", "deferred", "bounced", "rejected"}


def test_mail_log_agrees_with_the_independent_record(run):
    """Every reply the sink gave and every rejection swaks saw is in the log, once, with its code."""
    text = run.log_text
    exp = run.expected
    status_lines = _status_lines(text)
    tail = "\n".join(text.splitlines()[-60:])

    # Outbound: the sink's reply text is quoted in the log, after "said:" or "refused to talk to me:".
    seen: Counter = Counter()
    for line in status_lines:
        m = re.search(r"said: ([0-9]{3}) .*\(in reply to (.+?) command\)\)$", line)
        if m:
            seen[(m.group(1), m.group(2))] += 1
        m = re.search(r"refused to talk to me: ([0-9]{3}) ", line)
        if m:
            seen[(m.group(1), GREETING)] += 1
        m = re.search(r"status=sent \(([0-9]{3}) ", line)
        if m:
            seen[(m.group(1), DATA)] += 1
    assert seen == Counter((r.code, r.stage) for r in exp.outbound), tail
    for reply in exp.outbound:
        if reply.stage == GREETING:
            quoted = f"refused to talk to me: {reply.line})"
        elif reply.code == "250":
            quoted = f"status=sent ({reply.line})"
        else:
            quoted = f"said: {reply.line} (in reply to {reply.stage} command))"
        assert quoted in text, f"{reply} not quoted in the log:\n{tail}"

    # Inbound: one reject line per failure reply swaks saw, at the same SMTP stage, same text.
    rejects = [line for line in text.splitlines() if ": reject: " in line]
    logged = Counter()
    for line in rejects:
        m = re.search(r": reject: (\S+) from [^ ]*\]: ([0-9]{3}) ", line)
        assert m, line
        logged[(m.group(2), m.group(1))] += 1
    assert logged == Counter((r.code, r.stage) for r in exp.inbound), "\n".join(rejects)
    for rej in exp.inbound:
        said = f"{rej.code} {rej.enhanced} {rej.text};" if rej.enhanced else f"{rej.code} {rej.text};"
        assert any(said in line for line in rejects), f"{rej} has no reject line"

    # A path whose reply is not logged: the over-long body gets a 552 but only a warning in the log.
    for rej in exp.unlogged_inbound:
        assert not any(rej.text in line for line in rejects)
    assert "queue file size limit exceeded" in text

    # Results without a reply code: the closed port and the local mailbox.
    refused = f"status=deferred (connect to {HOST}[{HOST}]:{run.unreachable_port}: Connection refused)"
    assert sum(refused in line for line in status_lines) == exp.unreachable_deferrals
    assert sum("status=sent (delivered to mailbox)" in line for line in status_lines) == exp.local_deliveries

    # Dispositions: one status line per delivery attempt, one reject line per rejection.
    statuses = Counter(_STATUS_LINE.search(line).group(1) for line in status_lines)
    statuses["rejected"] = len(rejects)
    assert statuses == exp.statuses, tail
    # Pinned timers: no retry, no expiry, no destination put on hold within the test.
    assert "delivery temporarily suspended" not in text
    assert "status=expired" not in text


# --- the exporter against the record -------------------------------------------------------------


def _families(text: str, source: str | None) -> tuple[Counter, Counter, Counter]:
    """(code, direction) -> n, status -> n, outcome of code "none" -> n; zero samples left out.

    source: count only samples with this source label (None: every source).
    """
    responses: Counter = Counter()
    statuses: Counter = Counter()
    none: Counter = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (source is not None and labels.get("source") != source) or not sample.value:
                continue
            if sample.name == "mail_responses_total":
                responses[(labels["code"], labels["direction"])] += int(sample.value)
                if labels["code"] == scenario.NONE:
                    none[labels["outcome"]] += int(sample.value)
            elif sample.name == "mail_delivery_status_total":
                statuses[labels["status"]] += int(sample.value)
    return responses, statuses, none


def _expected(run) -> tuple[Counter, Counter, Counter]:
    exp = run.expected
    return +Counter(exp.responses), +Counter(exp.statuses), +Counter(exp.none_outcomes)


def _need_exporter_cli() -> None:
    if not (REPO / "exporter" / "cli.py").exists():
        pytest.skip("exporter daemon not available yet")


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5) as resp:
        return resp.read().decode("utf-8")


def test_daemon_counts_equal_the_record(run, tmp_path):
    """The exporter daemon following the real log reports, code by code, what the record says."""
    _need_exporter_cli()
    port = free_port()
    out = (tmp_path / "daemon.out").open("wb")
    cmd = [
        sys.executable, "-m", "exporter", "run",
        "--source", f"{SOURCE}=postfix:{run.postfix.log_path}",
        "--web.listen-address", f"{HOST}:{port}",
        "--state-file", str(tmp_path / "state.json"),
        "--from-beginning",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    want = _expected(run)
    got = None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                got = _families(_scrape(port), SOURCE)
            except OSError:
                got = None
            if got == want:
                break
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        out.close()
    log = (tmp_path / "daemon.out").read_text(errors="replace")
    assert got is not None, f"no /metrics from the daemon (exit {proc.returncode}):\n{log}"
    responses, statuses, none = got
    assert responses == want[0], log
    assert statuses == want[1], log
    assert none == want[2], log


def test_replay_counts_equal_the_record(run):
    """`exporter replay` over the same log prints the same counts."""
    _need_exporter_cli()
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", "replay", "--format", "postfix", str(run.postfix.log_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    responses, statuses, none = _families(proc.stdout, None)
    want = _expected(run)
    assert responses == want[0]
    assert statuses == want[1]
    assert none == want[2]


# --- a real Prometheus scrapes the daemon that follows the real log -------------------------------


def test_prometheus_scrapes_the_daemon_and_sees_the_record(run, tmp_path):
    """The whole chain: Postfix -> log -> daemon -> /metrics -> Prometheus (shipped config) -> PromQL.

    The daemon follows a file that receives Postfix's log only after Prometheus has scraped it twice,
    as on a live server, so rates and increases over the dashboard's windows are real.
    """
    import test_deploy as deploy  # the shipped-config and dashboard helpers, shared with the deploy tests
    from helpers import Daemon

    prometheus = need_binary("prometheus")
    promtool = need_binary("promtool")
    want_responses, want_statuses, _ = _expected(run)
    followed = tmp_path / "mail.log"
    followed.write_bytes(b"")
    with Daemon(
        "--source", f"{SOURCE}=postfix:{followed}", "--state-file", str(tmp_path / "state.json")
    ) as daemon:
        target = f"127.0.0.1:{daemon.port}"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [prometheus, f"--config.file={deploy._prometheus_config(tmp_path, target)}",
               f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
               "--log.level=warn"]  # fmt: skip
        with deploy._process(cmd, tmp_path / "prometheus.log"):

            def scrapes() -> list:
                q = "count_over_time(up{job='mailcode'}[5m]) >= 2 and up{job='mailcode'} == 1"
                return deploy._query(base, q)["data"]["result"]

            deploy._wait_for("two successful scrapes of the daemon", scrapes)
            with followed.open("ab") as f:  # the mail log arrives, as it would live
                f.write(Path(run.postfix.log_path).read_bytes())
            daemon.wait_for(lambda smp: _families_from(smp)[0] == want_responses, timeout=30)

            # promtool lints the daemon's own /metrics output (not only the golden file)
            body = _scrape(daemon.port)
            lint = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True)
            assert lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(), lint.stdout + lint.stderr

            def per_code() -> Counter:
                q = "sum by (code, direction) (mail_responses_total{job='mailcode'}) > 0"
                rows = deploy._query(base, q)["data"]["result"]
                return Counter(
                    {(r["metric"]["code"], r["metric"]["direction"]): int(float(r["value"][1])) for r in rows}
                )

            deploy._wait_for("Prometheus to hold the record", lambda: per_code() == want_responses)
            assert per_code() == want_responses
            rows = deploy._query(base, "sum by (status) (mail_delivery_status_total) > 0")["data"]["result"]
            assert Counter({r["metric"]["status"]: int(float(r["value"][1])) for r in rows}) == want_statuses

            # every dashboard panel's query runs against this Prometheus; the key ones return data
            queries = deploy.dashboard_queries(deploy.DASHBOARD, {"instance": target, "source": SOURCE})
            key = {
                "Replies/s by direction and outcome",
                "Top reply codes over the time range, with their descriptions",
                "Dispositions/s by status",
                "Lines/s by result",
            }
            assert key <= {t for t, _ in queries}

            def key_panels_with_data() -> bool:
                return all(deploy._query(base, e)["data"]["result"] for t, e in queries if t in key)

            deploy._wait_for("the key panels to show data", key_panels_with_data)
            for title, expr in queries:
                answer = deploy._query(base, expr)
                assert answer["status"] == "success", f"{title}: {answer.get('error')}\n{expr}"


def _families_from(smp: dict) -> tuple[Counter, Counter]:
    responses: Counter = Counter()
    statuses: Counter = Counter()
    for (name, labels), value in smp.items():
        lbl = dict(labels)
        if not value or lbl.get("source") != SOURCE:
            continue
        if name == "mail_responses_total":
            responses[(lbl["code"], lbl["direction"])] += int(value)
        elif name == "mail_delivery_status_total":
            statuses[lbl["status"]] += int(value)
    return responses, statuses
