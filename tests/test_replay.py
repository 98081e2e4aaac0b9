"""`replay`: the per-code counts of a sample log, as a person reading it line by line counts them."""

from __future__ import annotations

import subprocess
import sys

from helpers import ROOT, samples, value

SAMPLE = ROOT / "tests" / "data" / "postfix-sample.log"

# Counted by reading tests/data/postfix-sample.log line by line (see the comments beside each).
EXPECTED_RESPONSES = {
    ("250", "smtp", "success", "outbound"): 2,  # lines 6 and 25
    ("550", "smtp", "failure", "outbound"): 1,  # line 7, said: 550
    ("452", "smtp", "failure", "outbound"): 1,  # line 8
    ("554", "smtp", "failure", "inbound"): 1,  # line 11, relay access denied
    ("550", "smtp", "failure", "inbound"): 2,  # line 12 (smtpd) and line 15 (postscreen)
    ("none", "smtp", "failure", "inbound"): 1,  # line 16, cleanup header reject
    ("none", "smtp", "success", "outbound"): 1,  # line 17, local delivery
    ("none", "smtp", "failure", "outbound"): 2,  # line 18 (connect timed out), line 20 (expired)
    ("421", "smtp", "failure", "outbound"): 1,  # line 19, refused to talk to me
    ("554", "smtp", "failure", "outbound"): 1,  # line 21
    ("552", "smtp", "failure", "inbound"): 1,  # line 24, SIZE over the limit
}
EXPECTED_STATUSES = {"sent": 3, "bounced": 2, "deferred": 3, "expired": 1, "rejected": 5}
EXPECTED_LINES = {"outcome": 14, "ignored": 10, "unparsed": 1, "oversize": 0}


def run_replay(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "replay", *args], capture_output=True, text=True, cwd=ROOT
    )


def test_replay_counts_the_sample_log_line_by_line():
    r = run_replay("--format", "postfix", str(SAMPLE))
    assert r.returncode == 0, r.stderr
    smp = samples(r.stdout)
    got = {
        (labels["code"], labels["type"], labels["outcome"], labels["direction"]): v
        for (name, lbl), v in smp.items()
        if name == "mail_responses_total" and v
        for labels in [dict(lbl)]
    }
    assert got == EXPECTED_RESPONSES
    for status, n in EXPECTED_STATUSES.items():
        assert value(smp, "mail_delivery_status_total", source="postfix", status=status) == n
    for result, n in EXPECTED_LINES.items():
        assert value(smp, "mail_exporter_lines_total", source="postfix", result=result) == n
    assert value(smp, "mail_exporter_read_bytes_total", source="postfix") == SAMPLE.stat().st_size
    assert (
        value(smp, "mail_enhanced_status_codes_total", source="postfix", enhanced="5.7.1", outcome="failure")
        == 3
    )
    assert (
        value(smp, "mail_enhanced_status_codes_total", source="postfix", enhanced="2.0.0", outcome="success")
        == 3
    )
    # every catalogue code exists from the start, at 0 when the log never shows it
    assert (
        value(
            smp,
            "mail_responses_total",
            source="postfix",
            code="9009",
            type="plex",
            outcome="failure",
            direction="outbound",
        )
        == 0
    )
    assert (
        value(
            smp,
            "mail_response_code_info",
            code="9009",
            type="plex",
            outcome="failure",
            description="Failed to log into the specified SMTP server.",
        )
        == 1
    )


def test_replay_summary_table():
    r = run_replay("--format", "postfix", "--summary", str(SAMPLE))
    assert r.returncode == 0, r.stderr
    rows = {
        line.split()[0]: line.split()[1] for line in r.stdout.splitlines()[1:] if line.strip()[:1].isdigit()
    }
    assert rows["250"] == "2"
    assert rows["550"] == "3"  # both directions together
    assert rows["554"] == "2"
    assert "The user does not have permission to send." in r.stdout
    assert "lines: 25 read" in r.stdout


def test_replay_last_line_without_newline_counts(tmp_path):
    log = tmp_path / "partial.log"
    lines = SAMPLE.read_text().splitlines()
    log.write_text("\n".join(lines))  # no newline after the last line
    smp = samples(run_replay("--format", "postfix", str(log)).stdout)
    assert value(smp, "mail_exporter_lines_total", source="postfix", result="outcome") == 14


def test_replay_jsonl_with_config_options(tmp_path):
    log = tmp_path / "plex.jsonl"
    log.write_text('{"result":9009}\n{"result":9009}\n{"result":1}\n{"other":1}\nnot json\n')
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        "sources:\n  - name: plex\n    format: jsonl\n    path: plex.jsonl\n    options: {field: result}\n"
    )
    r = run_replay("--format", "jsonl", "--config", str(cfg), "--name", "plex", str(log))
    assert r.returncode == 0, r.stderr
    smp = samples(r.stdout)
    assert (
        value(
            smp,
            "mail_responses_total",
            source="plex",
            code="9009",
            type="plex",
            outcome="failure",
            direction="outbound",
        )
        == 2
    )
    assert (
        value(
            smp,
            "mail_responses_total",
            source="plex",
            code="1",
            type="plex",
            outcome="success",
            direction="outbound",
        )
        == 1
    )
    assert value(smp, "mail_exporter_lines_total", source="plex", result="unparsed") == 1
    assert value(smp, "mail_exporter_lines_total", source="plex", result="ignored") == 1


def test_replay_errors_are_one_line(tmp_path):
    r = run_replay("--format", "nope", str(SAMPLE))
    assert r.returncode == 2 and "unknown format 'nope'" in r.stderr and "Traceback" not in r.stderr
    r = run_replay("--format", "postfix", str(tmp_path / "missing.log"))
    assert r.returncode == 1 and "not a readable file" in r.stderr and "Traceback" not in r.stderr


def test_replay_shows_a_progress_bar_on_a_terminal(tmp_path, monkeypatch, capsys):
    import io

    from exporter import cli

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    big = tmp_path / "big.log"
    big.write_text(SAMPLE.read_text() * 200)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli.main(["replay", "--summary", str(big)]) == 0
    shown = terminal.getvalue()
    assert "replay:" in shown and "%|" in shown  # tqdm's bar, e.g. "replay:   0%|   | 0.00/891k"
    assert "lines: 5000 read" in capsys.readouterr().out


def test_replay_prints_no_progress_bar_into_a_pipe():
    r = run_replay("--format", "postfix", "--summary", str(SAMPLE))
    assert r.stderr == ""
