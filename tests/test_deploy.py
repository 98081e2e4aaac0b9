"""Tests of deploy/: the Prometheus rules and their unit tests, every dashboard query on a real Prometheus,
Alertmanager's inhibition, and the systemd, container, Kubernetes and logrotate examples.

System binaries (promtool, prometheus, prometheus-alertmanager, amtool, logrotate, node) skip when missing
and fail under CI (see conftest.need_binary). Only loopback traffic; every wait is bounded.
"""

from __future__ import annotations

import fnmatch
import http.server
import importlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REQUIRE_ENV, need_binary, requires_system

from exporter.catalogue import builtin_entries

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
PROM = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "mailcode-dashboard.json"
K8S = DEPLOY / "kubernetes"
FIXTURES = Path(__file__).resolve().parent / "deploy_fixtures"
EXPOSITION = FIXTURES / "exposition.txt"
RUNBOOK = REPO / "docs" / "runbook.md"
RUNBOOK_BASE = "https://github.com/mailcode-exporter/mailcode-exporter/blob/main/docs/runbook.md"
WAIT_SECONDS = 45.0

# The metric contract: family -> label names (besides job and instance, which Prometheus adds).
CONTRACT: dict[str, set[str]] = {
    "mail_responses_total": {"source", "code", "type", "outcome", "direction"},
    "mail_delivery_status_total": {"source", "status"},
    "mail_response_code_info": {"code", "type", "outcome", "description"},
    "mail_enhanced_status_codes_total": {"source", "enhanced", "outcome"},
    "mail_enhanced_status_code_info": {"enhanced", "description"},
    "mail_exporter_lines_total": {"source", "result"},
    "mail_exporter_read_bytes_total": {"source"},
    "mail_exporter_behind_bytes": {"source"},
    "mail_exporter_source_up": {"source"},
    "mail_exporter_file_events_total": {"source", "event"},
    "mail_exporter_read_errors_total": {"source"},
    "mail_exporter_last_line_timestamp_seconds": {"source"},
    "mail_exporter_lost_bytes_total": {"source", "reason"},
    "mail_exporter_state_saves_total": {"result"},
    "mail_exporter_state_durable": set(),
    "mail_exporter_dropped_total": {"source", "reason"},
    "mail_exporter_source_info": {"source", "format"},
    "mail_exporter_build_info": {"version", "python_version"},
}


# ---------------------------------------------------------------------------------------------------
# helpers


def _run(cmd: list[str], timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


def _need_module(name: str) -> Any:
    """Import a test-only PyPI package; skip when missing, fail when CI requires it."""
    if importlib.util.find_spec(name) is None:
        reason = f"Python package for {name!r} is not installed (`.ci/run` installs it)"
        if requires_system():
            pytest.fail(f"{reason}; {REQUIRE_ENV} is set, so a missing package is a failure")
        pytest.skip(reason)
    return importlib.import_module(name)


def _venv_binary(name: str) -> str:
    """A console script installed into this interpreter's environment, or any on PATH."""
    return need_binary(name, str(Path(sys.executable).parent / name))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(what: str, probe: Callable[[], Any], timeout: float = WAIT_SECONDS) -> Any:
    """Poll until probe() returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = probe()
        except (OSError, ValueError) as exc:  # not up yet
            last_error, result = exc, None
        if result:
            return result
        time.sleep(0.25)
    pytest.fail(f"gave up after {timeout:.0f} s waiting for {what} (last error: {last_error})")


def _get_json(url: str, params: dict[str, str] | None = None) -> Any:
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _yaml_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _alert_rules() -> list[dict]:
    groups = _load_yaml(PROM / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _recorded_names() -> set[str]:
    groups = _load_yaml(PROM / "recording_rules.yml")["groups"]
    return {rule["record"] for group in groups for rule in group["rules"]}


def _github_anchors(markdown: str) -> set[str]:
    """Anchors GitHub gives the headings of a Markdown file."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


# ---------------------------------------------------------------------------------------------------
# the dashboard's queries

# Values for the dashboard's variables: each matches what Grafana would send (regex for multi-value
# variables, durations for the built-in intervals).
DEFAULT_VARIABLES = {
    "instance": ".*",
    "source": ".*",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
}
_VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*)(?::\w+)?\}|\$([A-Za-z_]\w*)|\[\[([A-Za-z_]\w*)\]\]")


def _panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row holds its panels


def dashboard_queries(path: Path, values: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of a dashboard, its $variables replaced by `values`.

    Unknown variables raise ValueError, so a misspelt $variable fails a test rather than a query.
    """
    mapping = {**DEFAULT_VARIABLES, **(values or {})}

    def substitute(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in mapping:
            raise ValueError(f"unknown dashboard variable ${name}")
        return mapping[name]

    dashboard = json.loads(Path(path).read_text(encoding="utf-8"))
    queries = []
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if "expr" in target:
                queries.append((panel["title"], _VARIABLE.sub(substitute, target["expr"])))
    return queries


def test_dashboard_queries_substitute_variables_and_reject_unknown_ones(tmp_path: Path) -> None:
    def dashboard(expr: str) -> Path:
        path = tmp_path / "d.json"
        panel = {"title": "p", "type": "timeseries", "targets": [{"refId": "A", "expr": expr}]}
        path.write_text(json.dumps({"panels": [{"type": "row", "title": "r", "panels": [panel]}]}))
        return path

    expr = (
        'rate(x{instance=~"$instance", source=~"${source}"}[$__rate_interval])'
        ' and label_replace(y, "a", "$1", "b", "(.)")'
    )
    assert dashboard_queries(dashboard(expr), {"source": "postfix|plex"}) == [
        (
            "p",
            'rate(x{instance=~".*", source=~"postfix|plex"}[1m]) and label_replace(y, "a", "$1", "b", "(.)")',
        )
    ]
    with pytest.raises(ValueError, match=r"\$instanse"):
        dashboard_queries(dashboard('x{instance=~"$instanse"}'))


# ---------------------------------------------------------------------------------------------------
# Prometheus rules and configuration


def test_rule_files_pass_promtool_check() -> None:
    promtool = need_binary("promtool")
    result = _run([promtool, "check", "rules", str(PROM / "recording_rules.yml"), str(PROM / "alerts.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_passes_promtool_check() -> None:
    promtool = need_binary("promtool")
    result = _run([promtool, "check", "config", str(PROM / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    config = _load_yaml(PROM / "prometheus.yml")
    assert [job["job_name"] for job in config["scrape_configs"]] == ["mailcode"]
    assert sorted(config["rule_files"]) == ["alerts.yml", "recording_rules.yml"]


def test_rule_unit_tests_pass() -> None:
    promtool = need_binary("promtool")
    files = sorted(str(p) for p in (PROM / "tests").glob("*.yml"))
    assert len(files) >= 2
    result = _run([promtool, "test", "rules", *files])
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_catch_a_changed_threshold(tmp_path: Path) -> None:
    """The unit tests are not vacuous: raising one alert's threshold makes them fail."""
    promtool = need_binary("promtool")
    copy = tmp_path / "prometheus"
    shutil.copytree(PROM, copy)
    alerts = (copy / "alerts.yml").read_text(encoding="utf-8")
    broken = alerts.replace('code="9009"}[15m])) > 0', 'code="9009"}[15m])) > 5')
    assert broken != alerts
    (copy / "alerts.yml").write_text(broken, encoding="utf-8")
    result = _run([promtool, "test", "rules", str(copy / "tests" / "mail_alerts_test.yml")])
    assert result.returncode != 0
    assert "MailPlexLoginFailed" in result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in (PROM / "tests").glob("*.yml"):
        for case in _load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test") or []:
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in _alert_rules()}
    assert names - firing == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown staying quiet"


def test_every_alert_has_severity_summary_description_and_a_runbook_section() -> None:
    anchors = _github_anchors(RUNBOOK.read_text(encoding="utf-8"))
    rules = _alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    for name in (
        "MailOutbound5xxReplies",
        "MailOutbound5xxRatioHigh",
        "MailInboundRejectsSurge",
        "MailDeliveriesDeferred",
        "MailPlexLoginFailed",
        "MailPlexSyntaxError",
        "MailExporterDown",
        "MailExporterAbsent",
        "MailExporterSourceUnreadable",
        "MailExporterNoLinesRead",
        "MailExporterStateNotDurable",
    ):
        assert name in names
    for rule in rules:
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in ("critical", "warning", "info"), name
        annotations = rule.get("annotations", {})
        assert annotations.get("summary", "").strip(), name
        assert "Check first:" in annotations.get("description", ""), name
        url = annotations.get("runbook_url", "")
        base, _, anchor = url.partition("#")
        assert base == RUNBOOK_BASE, name
        assert anchor == name.lower() and anchor in anchors, f"{name}: no runbook section #{anchor}"


def test_plex_alerts_cover_the_catalogue_codes() -> None:
    """The Plex alerts name the catalogue's failure codes of type plex, and nothing else."""
    plex_failures = {e.code for e in builtin_entries() if e.type == "plex" and e.outcome == "failure"}
    exprs = {rule["alert"]: rule["expr"] for rule in _alert_rules()}
    named = set()
    for alert in ("MailPlexLoginFailed", "MailPlexSyntaxError"):
        named |= set(re.findall(r"\b9\d{3}\b", exprs[alert]))
    assert named == plex_failures
    assert "9009" in exprs["MailPlexLoginFailed"]
    assert "increase(" in exprs["MailPlexLoginFailed"] and "[15m]" in exprs["MailPlexLoginFailed"]


def _names_in(text: str) -> set[str]:
    return set(re.findall(r"\b[a-z_]*:?mail_[a-z0-9_]*(?::[a-z0-9_]+)*", text))


def test_metric_names_used_by_rules_dashboard_and_runbook_exist() -> None:
    families = set(CONTRACT) | {"mail_exporter_lines"}  # a recording rule's metric part
    recorded = _recorded_names()
    record_parts = {name.split(":")[1] for name in recorded}
    for path in (PROM / "recording_rules.yml", PROM / "alerts.yml", DASHBOARD, RUNBOOK):
        for name in _names_in(path.read_text(encoding="utf-8")):
            if ":" in name:
                assert name in recorded, f"{path.name}: {name} is not a recording rule"
            else:
                assert name in families or name in record_parts, f"{path.name}: unknown metric {name}"


# ---------------------------------------------------------------------------------------------------
# the sample exposition


def _parse_exposition(text: str) -> tuple[dict[str, str], list[tuple[str, dict[str, str], float]]]:
    """(family -> type, [(name, labels, value)]) of a small, well-formed text exposition."""
    types: dict[str, str] = {}
    samples = []
    sample = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
    label = re.compile(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            match = sample.match(line)
            assert match, line
            labels = {
                k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in label.findall(match.group(2) or "")
            }
            samples.append((match.group(1), labels, float(match.group(3))))
    return types, samples


def test_fixture_exposition_passes_promtool_and_follows_the_contract() -> None:
    promtool = need_binary("promtool")
    text = EXPOSITION.read_text(encoding="utf-8")
    result = _run([promtool, "check", "metrics"], input=text)
    assert result.returncode == 0, result.stdout + result.stderr
    types, samples = _parse_exposition(text)
    assert set(types) == set(CONTRACT)
    for name, labels, _ in samples:
        assert set(labels) == CONTRACT[name], name
        assert name.endswith("_total") == (types[name] == "counter"), name


def test_fixture_code_info_is_the_builtin_catalogue() -> None:
    _, samples = _parse_exposition(EXPOSITION.read_text(encoding="utf-8"))
    info = {
        (s[1]["code"], s[1]["type"], s[1]["outcome"], s[1]["description"])
        for s in samples
        if s[0] == "mail_response_code_info"
    }
    assert info == {(e.code, e.type, e.outcome, e.description) for e in builtin_entries()}


# A Postfix delivery result in the form its smtp client logs a permanent failure.
_POSTFIX_BOUNCE = (
    "Dec  4 15:36:10 mail1 postfix/smtp[4242]: 3F2A81C0: to=<nobody@example.org>, "
    "relay=mx.example.org[192.0.2.10]:25, delay=0.4, delays=0.1/0/0.2/0.1, dsn=5.1.1, status=bounced "
    "(host mx.example.org[192.0.2.10] said: 550 5.1.1 <nobody@example.org>: Recipient address rejected: "
    "User unknown (in reply to RCPT TO command))\n"
)


def test_fixture_and_contract_match_what_the_exporter_serves(tmp_path: Path) -> None:
    """The rules and the dashboard are written against the fixture; the fixture against the exporter."""
    log = tmp_path / "mail.log"
    log.write_text(_POSTFIX_BOUNCE, encoding="utf-8")
    result = _run([sys.executable, "-m", "exporter", "replay", "--format", "postfix", str(log)], cwd=REPO)
    assert result.returncode == 0, result.stderr
    real_types, real_samples = _parse_exposition(result.stdout)
    fixture_types, fixture_samples = _parse_exposition(EXPOSITION.read_text(encoding="utf-8"))
    assert {name: real_types.get(name) for name in CONTRACT} == fixture_types
    for name, labels, _ in real_samples:
        if name in CONTRACT:
            assert set(labels) == CONTRACT[name], name
    counted = {
        (s[1]["code"], s[1]["direction"]) for s in real_samples if s[0] == "mail_responses_total" and s[2]
    }
    assert counted == {("550", "outbound")}

    def info(samples: list, name: str) -> set[tuple]:
        return {tuple(sorted(labels.items())) for n, labels, _ in samples if n == name}

    assert info(fixture_samples, "mail_response_code_info") == info(real_samples, "mail_response_code_info")
    enhanced = info(fixture_samples, "mail_enhanced_status_code_info")
    assert enhanced and enhanced <= info(real_samples, "mail_enhanced_status_code_info")


class _ExpositionServer:
    """Serves the fixture on 127.0.0.1; counters are multiplied by the scrape's number so they grow."""

    def __init__(self, text: str):
        self._types, _ = _parse_exposition(text)
        self._lines = text.splitlines()
        self._lock = threading.Lock()
        self.scrapes = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                if self.path != "/metrics":
                    self.send_error(404)
                    return
                body = owner.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="exposition", daemon=True)

    def render(self) -> str:
        with self._lock:
            self.scrapes += 1
            n = self.scrapes
        out = []
        for line in self._lines:
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if not line.startswith("#") and self._types.get(name) == "counter":
                head, value = line.rsplit(" ", 1)
                line = f"{head} {float(value) * n:g}"
            out.append(line)
        return "\n".join(out) + "\n"

    def __enter__(self) -> _ExpositionServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@contextmanager
def _process(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process whose output goes to `log`; stopped (then killed) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


def _prometheus_config(tmp_path: Path, target: str) -> Path:
    """deploy/prometheus/prometheus.yml with the test's target, 1 s intervals and absolute rule paths."""
    config = _load_yaml(PROM / "prometheus.yml")
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config.pop("alerting", None)
    config.pop("remote_write", None)
    config["rule_files"] = [str(PROM / name) for name in config["rule_files"]]
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "mailcode"]
    job.update(scrape_interval="1s", scrape_timeout="1s")
    job["static_configs"] = [{"targets": [target], "labels": {"site": "test"}}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _query(base: str, expr: str) -> dict:
    try:
        return _get_json(f"{base}/api/v1/query", {"query": expr})
    except urllib.error.HTTPError as exc:  # 400/422 carry the error as JSON
        return json.load(exc)


@pytest.mark.slow
def test_dashboard_queries_run_on_a_real_prometheus(tmp_path: Path) -> None:
    prometheus = need_binary("prometheus")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with _ExpositionServer(EXPOSITION.read_text(encoding="utf-8")) as exporter:
        target = f"127.0.0.1:{exporter.port}"
        cmd = [
            prometheus,
            f"--config.file={_prometheus_config(tmp_path, target)}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        with _process(cmd, tmp_path / "prometheus.log") as proc:

            def ready() -> bool:
                if proc.poll() is not None:
                    pytest.fail("prometheus exited:\n" + (tmp_path / "prometheus.log").read_text())
                with urllib.request.urlopen(f"{base}/-/ready", timeout=5) as response:
                    return response.status == 200

            _wait_for("Prometheus to be ready", ready)

            # Two scrapes and then an evaluation of each rule group give every recording rule data.
            def recorded_without_data() -> list[str]:
                return [n for n in sorted(_recorded_names()) if not _query(base, n)["data"]["result"]]

            _wait_for("every recording rule to have data", lambda: not recorded_without_data())

            def rules_evaluated() -> list[dict]:
                groups = _get_json(f"{base}/api/v1/rules")["data"]["groups"]
                rules = [rule for group in groups for rule in group["rules"]]
                return rules if all(r["lastEvaluation"] > "0001-01-01T00:00:00Z" for r in rules) else []

            rules = _wait_for("every rule to be evaluated", rules_evaluated)
            assert {r["name"] for r in rules} >= _recorded_names() | {r["alert"] for r in _alert_rules()}
            broken = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
            assert broken == {}

            queries = dashboard_queries(DASHBOARD, {"instance": target, "source": "postfix|plex"})
            assert len(queries) >= 20
            empty = []
            for title, expr in queries:
                answer = _query(base, expr)
                assert answer["status"] == "success", f"{title}: {answer.get('error')}\n{expr}"
                if not answer["data"]["result"]:
                    empty.append(title)
            assert empty == [], "panels without data"

            # The table of top codes carries the catalogue's descriptions, and keeps codes outside it.
            top = dict(dashboard_queries(DASHBOARD, {"instance": target}))
            rows = _query(base, top["Top reply codes over the time range, with their descriptions"])["data"][
                "result"
            ]
            described = {r["metric"]["code"]: r["metric"].get("description") for r in rows}
            assert described["9009"] == "Failed to log into the specified SMTP server."
            assert described["550"] == "The user does not have permission to send."
            assert described["521"] is None and "other" in described

            # A 9009 is logged (the counter grows every scrape): the login alert fires with its meaning.
            def plex_alert() -> list[dict]:
                alerts = _get_json(f"{base}/api/v1/alerts")["data"]["alerts"]
                return [
                    a
                    for a in alerts
                    if a["labels"]["alertname"] == "MailPlexLoginFailed" and a["state"] == "firing"
                ]

            (alert,) = _wait_for("MailPlexLoginFailed to fire", plex_alert)
            assert alert["labels"]["source"] == "plex" and alert["labels"]["instance"] == target
            assert "(Failed to log into the specified SMTP server.)" in alert["annotations"]["description"]
            assert exporter.scrapes >= 2


# ---------------------------------------------------------------------------------------------------
# the Grafana dashboard


def test_dashboard_json_is_what_the_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("build_dashboard", GRAFANA / "build_dashboard.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert DASHBOARD.read_text(encoding="utf-8") == module.render(), "run deploy/grafana/build_dashboard.py"


def test_dashboard_structure() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["schemaVersion"] == 39
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    for name in ("instance", "source"):
        assert variables[name]["type"] == "query" and variables[name]["datasource"]["uid"] == "${datasource}"
        assert variables[name]["multi"] and variables[name]["includeAll"]
    panels = [p for p in _panels(dashboard["panels"]) if p["type"] != "row"]
    ids = [p["id"] for p in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    assert "* on(code) group_left(description)" in exprs and "mail_response_code_info" in exprs
    assert "* on(enhanced) group_left(description)" in exprs
    for wanted in (
        'direction="outbound", code=~"5[0-9][0-9]"',
        'type="plex", outcome="failure"',
        "mail_delivery_status",
        "mail_exporter_lines",
        "mail_exporter_behind_bytes",
        "mail_exporter_file_events_total",
        "mail_exporter_lost_bytes_total",
        "mail_exporter_read_errors_total",
    ):
        assert wanted in exprs, wanted


# ---------------------------------------------------------------------------------------------------
# Alertmanager


def test_alertmanager_config_passes_amtool() -> None:
    amtool = need_binary("amtool")
    result = _run([amtool, "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 inhibit rules" in result.stdout


def _post_alerts(base: str, alerts: list[dict[str, str]]) -> None:
    body = json.dumps([{"labels": labels, "annotations": {"summary": "test"}} for labels in alerts]).encode()
    request = urllib.request.Request(
        f"{base}/api/v2/alerts", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


@pytest.mark.slow
def test_alertmanager_inhibits_other_alerts_while_the_exporter_is_down(tmp_path: Path) -> None:
    alertmanager = need_binary("prometheus-alertmanager", "alertmanager")
    config = _load_yaml(DEPLOY / "alertmanager" / "alertmanager.yml")
    # Receivers without integrations: nothing is sent anywhere while the routing and inhibition are real.
    config["receivers"] = [{"name": receiver["name"]} for receiver in config["receivers"]]
    config.pop("global", None)
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [
        alertmanager,
        f"--config.file={path}",
        f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    host = {"job": "mailcode", "instance": "mail1:9841"}
    with _process(cmd, tmp_path / "alertmanager.log") as proc:

        def ready() -> bool:
            if proc.poll() is not None:
                pytest.fail("alertmanager exited:\n" + (tmp_path / "alertmanager.log").read_text())
            with urllib.request.urlopen(f"{base}/-/ready", timeout=5) as response:
                return response.status == 200

        _wait_for("Alertmanager to be ready", ready)
        _post_alerts(
            base,
            [
                {"alertname": "MailExporterDown", "severity": "critical", **host},
                {"alertname": "MailDeliveriesDeferred", "severity": "warning", "source": "postfix", **host},
                {
                    "alertname": "MailPlexLoginFailed",
                    "severity": "critical",
                    "source": "plex",
                    "code": "9009",
                    **host,
                },
                # Another host's alert is not held back.
                {
                    "alertname": "MailDeliveriesDeferred",
                    "severity": "warning",
                    "source": "postfix",
                    "job": "mailcode",
                    "instance": "mail2:9841",
                },
            ],
        )

        def states() -> dict[tuple[str, str], str] | None:
            alerts = _get_json(f"{base}/api/v2/alerts")
            found = {
                (a["labels"]["alertname"], a["labels"]["instance"]): a["status"]["state"] for a in alerts
            }
            return found if len(found) == 4 and "suppressed" in found.values() else None

        found = _wait_for("the alerts and their inhibition", states)
        assert found == {
            ("MailExporterDown", "mail1:9841"): "active",
            ("MailDeliveriesDeferred", "mail1:9841"): "suppressed",
            ("MailPlexLoginFailed", "mail1:9841"): "suppressed",
            ("MailDeliveriesDeferred", "mail2:9841"): "active",
        }


# ---------------------------------------------------------------------------------------------------
# systemd

SYSTEMD = DEPLOY / "systemd"
UNIT = SYSTEMD / "mailcode-exporter.service"
EXEC_ARGS = [
    "run",
    "--config",
    "/etc/mailcode-exporter/config.yml",
    "--state-file",
    "/var/lib/mailcode-exporter/state.json",
]


def _unit_settings(path: Path) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> values (a key may repeat) of a systemd unit file."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"setting outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_systemd_unit_runs_hardened_as_its_own_user() -> None:
    service = {key: values[-1] for key, values in _unit_settings(UNIT)["Service"].items()}
    assert service["ExecStart"].split() == ["/usr/local/bin/mailcode-exporter", *EXEC_ARGS]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["DynamicUser"] == "no" and service["User"] == "mailcode-exporter"
    assert set(service["SupplementaryGroups"].split()) == {"adm", "systemd-journal"}
    assert service["EnvironmentFile"] == "-/etc/default/mailcode-exporter"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "ReadOnlyPaths": "/var/log",
        "StateDirectory": "mailcode-exporter",
    }.items():
        assert service[key] == value, key
    # The state file lies in the one directory ProtectSystem=strict leaves writable.
    state_file = EXEC_ARGS[EXEC_ARGS.index("--state-file") + 1]
    assert Path(state_file).parent == Path("/var/lib") / service["StateDirectory"]
    assert "PrivateUsers" not in service  # it would hide the adm and systemd-journal groups
    sysusers = (SYSTEMD / "mailcode-exporter.sysusers").read_text(encoding="utf-8")
    assert re.search(r"^u mailcode-exporter - .* /var/lib/mailcode-exporter \S+$", sysusers, re.M)


def test_systemd_analyze_verifies_the_unit_and_rates_it_hardened(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (package systemd); optional, not required in CI")
    # verify checks that ExecStart's program exists: point it at one that does, change nothing else.
    copy = tmp_path / UNIT.name
    copy.write_text(
        UNIT.read_text(encoding="utf-8").replace("/usr/local/bin/mailcode-exporter", sys.executable)
    )
    result = _run([analyze, "verify", "--man=no", str(copy)])
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )
    # systemd-analyze verify only warns about a bad value: check that it would have said so.
    broken = tmp_path / "broken" / UNIT.name
    broken.parent.mkdir()
    broken.write_text(
        copy.read_text(encoding="utf-8").replace("ProtectSystem=strict", "ProtectSystem=strickt")
    )
    assert "strickt" in _run([analyze, "verify", "--man=no", str(broken)]).stderr
    security = _run([analyze, "security", "--offline=yes", "--threshold=25", str(copy)])
    if "--offline" in security.stderr and "unrecognized" in security.stderr:
        pytest.skip("this systemd-analyze has no offline security report (systemd < 250)")
    assert security.returncode == 0, security.stdout + security.stderr


@pytest.mark.slow
def test_the_exporter_survives_the_units_reload_signal(tmp_path: Path) -> None:
    """`systemctl reload` sends SIGHUP (ExecReload): the exporter must go on serving, not exit."""
    log = tmp_path / "mail.log"
    log.write_text(_POSTFIX_BOUNCE, encoding="utf-8")
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "exporter",
        "run",
        "--source",
        f"postfix:{log}",
        "--web.listen-address",
        f"127.0.0.1:{port}",
        "--state-file",
        str(tmp_path / "state.json"),
    ]
    health = f"http://127.0.0.1:{port}/healthz"

    def healthy() -> bool:
        with urllib.request.urlopen(health, timeout=5) as response:
            return response.status == 200

    with _process(cmd, tmp_path / "exporter.log") as proc:
        _wait_for("the exporter to serve /healthz", healthy)
        proc.send_signal(signal.SIGHUP)

        def still_serving() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"the exporter exited on SIGHUP (return code {proc.returncode})")
            return healthy()

        _wait_for("the exporter to serve /healthz after SIGHUP", still_serving, 10)
        assert proc.poll() is None


def _env_example() -> dict[str, str]:
    """The example's MAILCODE_* variables, commented out or not."""
    out = {}
    for line in (SYSTEMD / "mailcode-exporter.env").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^#?(MAILCODE_[A-Z0-9_]+)=(.*)$", line)
        if match:
            out[match.group(1)] = match.group(2)
    return out


def test_env_example_sets_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from exporter import config

    variables = _env_example()
    assert "MAILCODE_WEB__LISTEN_ADDRESS" in variables
    for name in list(os.environ):
        if name.startswith("MAILCODE_") and name != REQUIRE_ENV:
            monkeypatch.delenv(name)
    for name, value in variables.items():
        model: Any = config.Settings
        for part in name.removeprefix("MAILCODE_").lower().split("__"):
            assert part in model.model_fields, f"{name}: no setting {part!r}"
            model = model.model_fields[part].annotation
        monkeypatch.setenv(name, value)
    settings = config.load(None, {})
    assert settings.web.listen_address == variables["MAILCODE_WEB__LISTEN_ADDRESS"]
    assert settings.log_level == variables["MAILCODE_LOG_LEVEL"]


# ---------------------------------------------------------------------------------------------------
# the container image

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _dockerignore_keeps(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    keep = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        candidates = [pattern, pattern.removeprefix("**/")] if pattern.startswith("**/") else [pattern]
        for prefix in prefixes:
            names = [prefix, *(prefix.split("/")[-1:] if pattern.startswith("**/") else [])]
            if any(fnmatch.fnmatchcase(n, c) for n in names for c in candidates):
                keep = negate
                break
    return keep


def test_dockerfile_is_small_non_root_and_matches_the_unit() -> None:
    instructions = _dockerfile_instructions()
    froms = [args.split()[0] for word, args in instructions if word == "FROM"]
    assert froms and set(froms) == {"python:3.11-slim"}
    final = instructions[max(i for i, (word, _) in enumerate(instructions) if word == "FROM") :]
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ("EXPOSE", "9841") in final
    assert json.loads(dict(final)["ENTRYPOINT"]) == ["mailcode-exporter"]
    assert json.loads(dict(final)["CMD"]) == EXEC_ARGS
    assert any(word == "RUN" and "pip install ." in args for word, args in instructions)


def test_docker_build_context_holds_what_pip_install_needs() -> None:
    patterns = [
        line.strip()
        for line in (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [
        args.split()[:-1]
        for word, args in _dockerfile_instructions()
        if word == "COPY" and "--from" not in args
    ]
    sources = [source.rstrip("/") for group in copied for source in group]
    for source in sources:
        assert (REPO / source).exists(), f"COPY source {source} is missing"
        assert _dockerignore_keeps(source, patterns), f"{source} is excluded from the build context"
    package = [p.relative_to(REPO).as_posix() for p in (REPO / "exporter").rglob("*") if p.is_file()]
    kept = [p for p in package if _dockerignore_keeps(p, patterns)]
    assert "exporter/data/catalogue.yaml" in kept and "exporter/cli.py" in kept
    assert all("__pycache__" not in p and not p.endswith(".so") for p in kept)  # built here, not shipped
    assert "exporter/parsers/_postfix_scan.c" in kept  # the image builds the scanner from its source
    assert {p for p in package if "__pycache__" not in p and not p.endswith(".so")} == set(kept)
    for outside in ("tests/test_deploy.py", ".venv/bin/python", "deploy/docker/Dockerfile", ".git/HEAD"):
        assert not _dockerignore_keeps(outside, patterns), outside
    readme = re.search(r'^readme\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    assert readme is None or readme.group(1) in sources, "pip install . needs the readme pyproject names"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = _venv_binary("hadolint")
    result = _run([hadolint, "--no-color", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------------
# Kubernetes

K8S_FILES = ("sidecar.yaml", "daemonset.yaml", "servicemonitor.yaml")
SERVICEMONITOR_CHECK = FIXTURES / "servicemonitor"


def _k8s_objects() -> list[dict]:
    return [doc for name in K8S_FILES for doc in _yaml_documents(K8S / name)]


def test_kubernetes_core_objects_pass_strict_schema_validation() -> None:
    kv = _need_module("kubernetes_validate")
    core = [doc for doc in _k8s_objects() if "monitoring.coreos.com" not in doc["apiVersion"]]
    assert {doc["kind"] for doc in core} == {
        "ConfigMap",
        "PersistentVolumeClaim",
        "Deployment",
        "DaemonSet",
        "Service",
    }
    for doc in core:
        kv.validate(doc, "1.30", strict=True)
    # The validator is strict: a misspelt field is an error, not silently dropped.
    deployment = json.loads(json.dumps(next(doc for doc in core if doc["kind"] == "Deployment")))
    container = deployment["spec"]["template"]["spec"]["containers"][-1]
    container["securityContext"]["readOnlyRootFileSystem"] = container["securityContext"].pop(
        "readOnlyRootFilesystem"
    )
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, "1.30", strict=True)


def _exporter_container(pod: dict) -> dict:
    (container,) = [c for c in pod["containers"] if c["name"] == "mailcode-exporter"]
    return container


def test_kubernetes_workloads_are_wired_and_locked_down(tmp_path: Path) -> None:
    from exporter import config

    objects = _k8s_objects()
    by_kind: dict[str, list[dict]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    names = {(obj["kind"], obj["metadata"]["name"]) for obj in objects}
    workloads = by_kind["Deployment"] + by_kind["DaemonSet"]
    assert {w["kind"] for w in workloads} == {"Deployment", "DaemonSet"}
    for workload in workloads:
        kind, pod_labels = workload["kind"], workload["spec"]["template"]["metadata"]["labels"]
        assert workload["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(), kind
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, kind
        container = _exporter_container(pod)
        assert container["args"] == EXEC_ARGS, kind
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] != 0, kind
        assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False, (
            kind
        )
        assert security["capabilities"]["drop"] == ["ALL"] and "add" not in security["capabilities"], kind
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"metrics": 9841}, kind
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}, kind
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}, kind
        for other in pod.get("initContainers", []):  # may run as root only to hand over a directory
            assert other["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}, kind
            assert other["securityContext"]["allowPrivilegeEscalation"] is False, kind
        volumes = {v["name"]: v for v in pod["volumes"]}
        for c in pod["containers"] + pod.get("initContainers", []):
            for mount in c.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{kind}: volume {mount['name']} is not defined"
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        state = volumes[mounts["/var/lib/mailcode-exporter"]["name"]]
        assert "emptyDir" not in state, f"{kind}: the state must outlive the pod"
        if kind == "Deployment":
            claim = state["persistentVolumeClaim"]["claimName"]
            assert ("PersistentVolumeClaim", claim) in names
            assert workload["spec"]["strategy"]["type"] == "Recreate"  # a ReadWriteOnce claim
            assert pod["securityContext"]["fsGroup"] == security["runAsGroup"]
        else:
            assert state["hostPath"]["path"] == "/var/lib/mailcode-exporter"
            log_volume = volumes[mounts["/var/log"]["name"]]
            assert log_volume["hostPath"]["path"] == "/var/log" and mounts["/var/log"]["readOnly"] is True
        # The configuration is accepted by the exporter, and each source lies on a read-only mount.
        config_map_name = volumes[mounts["/etc/mailcode-exporter"]["name"]]["configMap"]["name"]
        (config_map,) = [c for c in by_kind["ConfigMap"] if c["metadata"]["name"] == config_map_name]
        path = tmp_path / f"{kind}.yml"
        path.write_text(config_map["data"]["config.yml"], encoding="utf-8")
        settings = config.load(path, {})
        assert settings.web.listen_address.endswith(":9841")
        read_only = [p for p, m in mounts.items() if m.get("readOnly")]
        for source in settings.sources:
            assert any(source.path.startswith(p.rstrip("/") + "/") for p in read_only), source.path
        # A Service selects these pods and exposes the metrics port by name.
        services = [s for s in by_kind["Service"] if s["spec"]["selector"].items() <= pod_labels.items()]
        assert len(services) == 1, kind
        assert [(p["name"], p["port"], p["targetPort"]) for p in services[0]["spec"]["ports"]] == [
            ("metrics", 9841, "metrics")
        ]
    # The ServiceMonitor selects both Services, scrapes their metrics port, as job "mailcode".
    (monitor,) = by_kind["ServiceMonitor"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert all(selector.items() <= s["metadata"]["labels"].items() for s in by_kind["Service"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint.get("path", "/metrics") == "/metrics"
    assert {"action": "replace", "targetLabel": "job", "replacement": "mailcode"} in endpoint["relabelings"]


def test_servicemonitor_matches_the_prometheus_operator_crd_schema() -> None:
    node = need_binary("node", "nodejs")
    if not (SERVICEMONITOR_CHECK / "node_modules" / "@kubernetes-models" / "prometheus-operator").is_dir():
        reason = f"npm packages missing: run `npm ci --prefix {SERVICEMONITOR_CHECK.relative_to(REPO)}`"
        if requires_system():
            pytest.fail(f"{reason}; {REQUIRE_ENV} is set")
        pytest.skip(reason)
    monitors = [doc for doc in _k8s_objects() if doc["kind"] == "ServiceMonitor"]
    broken = json.loads(json.dumps(monitors[0]))
    broken["metadata"]["name"] = "broken"
    broken["spec"]["endpoints"][0]["interval"] = "30 seconds"
    result = _run([node, str(SERVICEMONITOR_CHECK / "validate.mjs")], input=json.dumps([*monitors, broken]))
    lines = result.stdout.splitlines()
    assert lines[: len(monitors)] == [f"ok {m['metadata']['name']}" for m in monitors], (
        result.stdout + result.stderr
    )
    # The schema is really applied: the broken copy is refused for its interval.
    assert lines[-1].startswith("invalid broken:") and "interval" in lines[-1]
    assert result.returncode == 1


# ---------------------------------------------------------------------------------------------------
# logrotate

LOGROTATE = DEPLOY / "logrotate" / "mailcode-exporter"


def _logrotate_directives() -> list[str]:
    return [
        line.strip().split()[0]
        for line in LOGROTATE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def test_logrotate_example_renames_and_delays_compression() -> None:
    directives = _logrotate_directives()
    assert "copytruncate" not in directives
    for wanted in ("create", "compress", "delaycompress", "postrotate"):
        assert wanted in directives, wanted


def test_logrotate_example_rotates_by_rename_and_keeps_the_newest_uncompressed(tmp_path: Path) -> None:
    logrotate = need_binary("logrotate", "/usr/sbin/logrotate")
    log = tmp_path / "mail.log"
    reopened = tmp_path / "reopened"
    text = LOGROTATE.read_text(encoding="utf-8")
    paths = re.findall(r"^(/\S+)$", text, re.M)
    assert "/var/log/mail.log" in paths
    # The same stanza on a log of our own: one path, and a postrotate that leaves a mark.
    text = text.replace(paths[0], str(log))
    for other in paths[1:]:
        text = text.replace(other + "\n", "")
    text = re.sub(r"(postrotate\n)(.*?)(\n\s*endscript)", rf"\1\t\ttouch {reopened}\3", text, flags=re.S)
    if os.geteuid() != 0:
        text = re.sub(r"create (\d+) \S+ \S+", r"create \1", text)
    conf = tmp_path / "logrotate.conf"
    conf.write_text(text, encoding="utf-8")
    state = tmp_path / "state"

    log.write_text("first\n")
    first_inode = log.stat().st_ino
    result = _run([logrotate, "--force", "--state", str(state), str(conf)])
    assert result.returncode == 0, result.stdout + result.stderr
    rotated = tmp_path / "mail.log.1"
    assert rotated.stat().st_ino == first_inode and rotated.read_text() == "first\n"  # renamed, not copied
    assert log.exists() and log.stat().st_ino != first_inode and log.stat().st_size == 0
    assert oct(log.stat().st_mode & 0o777) == "0o640"
    assert reopened.exists()

    log.write_text("second\n")
    result = _run([logrotate, "--force", "--state", str(state), str(conf)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert rotated.read_text() == "second\n"  # the newest rotated file stays readable
    assert (tmp_path / "mail.log.2.gz").exists() and not (tmp_path / "mail.log.2").exists()
