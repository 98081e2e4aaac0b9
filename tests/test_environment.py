"""A hostile environment: each problem gives one clear message; the exporter runs where it can and says
what is wrong as a metric, and needs no privilege beyond reading the logs and writing its state file."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import need_binary
from helpers import ROOT, Daemon, free_port, value

LINE = (
    "Dec  4 10:00:01 mx1 postfix/smtpd[11]: NOQUEUE: reject: RCPT from unknown[203.0.113.9]: 554 5.7.1 "
    "<x@example.com>: Relay access denied; from=<s@example.biz> to=<x@example.com> proto=ESMTP helo=<h>\n"
)


def relay_rejects(smp: dict) -> float | None:
    """mail_responses_total of source mx for the 554 reject that LINE records."""
    return value(
        smp,
        "mail_responses_total",
        source="mx",
        code="554",
        type="smtp",
        outcome="failure",
        direction="inbound",
    )


def test_a_directory_instead_of_a_log_runs_and_reports_it(tmp_path):
    (tmp_path / "mail.log").mkdir()
    with Daemon(
        "--source", f"mx=postfix:{tmp_path / 'mail.log'}", "--state-file", str(tmp_path / "s.json")
    ) as d:
        smp = d.wait_for(lambda s: (value(s, "mail_exporter_read_errors_total", source="mx") or 0) >= 1)
        assert value(smp, "mail_exporter_source_up", source="mx") == 0
        assert value(smp, "mail_exporter_read_errors_total", source="mx") >= 1
    _, err = d.stop()
    assert "is not a regular file" in err and "Traceback" not in err


def test_a_read_only_state_directory_runs_without_the_guarantee(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("")
    state_dir = tmp_path / "ro"
    state_dir.mkdir()
    state_dir.chmod(0o500)
    try:
        if os.access(state_dir, os.W_OK):  # root ignores permission bits: use a path that cannot exist
            state = Path("/proc/mailcode-state.json")
        else:
            state = state_dir / "state.json"
        with Daemon("--source", f"mx=postfix:{log}", "--state-file", str(state)) as d:
            with log.open("a") as f:
                f.write(LINE)
            smp = d.wait_for(lambda s: value(s, "mail_exporter_state_durable") == 0 and relay_rejects(s) == 1)
            assert value(smp, "mail_exporter_state_durable") == 0
            assert relay_rejects(smp) == 1
        _, err = d.stop()
        assert "without the no-loss guarantee" in err and "Traceback" not in err
    finally:
        state_dir.chmod(0o700)


@pytest.fixture
def unprivileged():
    """A command prefix that runs as nobody:nogroup (needs root and setpriv from util-linux)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    setpriv = need_binary("setpriv")
    return [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--reset-env"]


# What `run` imports, copied for an interpreter outside the virtualenv (which may sit under /root).
RUNTIME_PACKAGES = (
    "prometheus_client",
    "watchdog",
    "pydantic",
    "pydantic_core",
    "pydantic_settings",
    "yaml",
    "typing_extensions",
    "annotated_types",
    "typing_inspection",
    "dotenv",
    "bcrypt",
)


def test_runs_as_an_unprivileged_user_with_only_read_and_state_access(unprivileged):
    # the system's interpreter of the same version: a pyenv or virtualenv one may sit where nobody cannot go
    python = need_binary(
        f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}",
    )
    # A directory outside /root that nobody may enter, holding: a readable log, an unreadable one,
    # and a state directory writable by nobody alone.
    base = Path(tempfile.mkdtemp(prefix="mailcode-unpriv-"))
    try:
        base.chmod(0o755)
        logs = base / "logs"
        logs.mkdir(mode=0o755)
        readable = logs / "mail.log"
        readable.write_text("")
        readable.chmod(0o644)
        secret = logs / "secret.log"
        secret.write_text(LINE)
        secret.chmod(0o600)  # root's: nobody cannot read it
        state = base / "state"
        state.mkdir()
        os.chown(state, 65534, 65534)
        code = base / "code"
        shutil.copytree(ROOT / "exporter", code / "exporter")  # the program and its libraries, readable
        for name in RUNTIME_PACKAGES:  # by nobody (the virtualenv may sit under /root)
            origin = Path(importlib.util.find_spec(name).origin)
            if origin.name == "__init__.py":
                shutil.copytree(origin.parent, code / name)
            else:
                shutil.copy2(origin, code / origin.name)
        for p in [code, *code.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        port = free_port()
        cmd = [
            *unprivileged,
            "env",
            f"PYTHONPATH={code}",
            f"PATH={os.environ['PATH']}",
            python,
            "-m",
            "exporter",
            "run",
            "--source",
            f"mx=postfix:{readable}",
            "--source",
            f"hidden=postfix:{secret}",
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--state-file",
            str(state / "state.json"),
        ]
        d = Daemon(port=port)
        d.args = cmd
        d.cwd = code
        with d:
            with readable.open("a") as f:
                f.write(LINE)
            smp = d.wait_for(lambda s: relay_rejects(s) == 1)
            assert relay_rejects(smp) == 1
            assert value(smp, "mail_exporter_source_up", source="hidden") == 0
            assert value(smp, "mail_exporter_read_errors_total", source="hidden") >= 1
            assert value(smp, "mail_exporter_state_durable") == 1
            assert (state / "state.json").stat().st_uid == 65534
        _, err = d.stop()
        assert "cannot open" in err and "Permission denied" in err and "Traceback" not in err, err
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_check_config_names_each_problem(tmp_path):
    cfg = tmp_path / "c.yml"
    (tmp_path / "adir").mkdir()
    cfg.write_text(f"sources:\n  - name: a\n    format: postfix\n    path: {tmp_path / 'adir'}\n")
    r = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", str(cfg)], capture_output=True, text=True, cwd=ROOT
    )
    assert r.returncode == 0 and "is a directory, not a log file" in r.stderr
