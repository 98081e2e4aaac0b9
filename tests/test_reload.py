"""SIGHUP reloads the configuration and the catalogue without losing a count; a bad one is refused."""

from __future__ import annotations

import signal
import time

from helpers import Daemon, value

LINE = (
    "Dec  4 10:00:01 mx1 postfix/smtpd[11]: NOQUEUE: reject: RCPT from unknown[203.0.113.9]: {code} 5.7.8 "
    "<x@example.com>: authentication failed; from=<s@example.biz> to=<x@example.com> proto=ESMTP helo=<h>\n"
)


def resp(smp, code, source="mx"):
    return value(
        smp,
        "mail_responses_total",
        source=source,
        code=code,
        type="smtp",
        outcome="failure",
        direction="inbound",
    )


def info_535(smp):
    return [lbl for (name, lbl) in smp if name == "mail_response_code_info" and dict(lbl)["code"] == "535"]


def test_sighup_reloads_catalogue_and_sources_without_losing_counts(tmp_path):
    log, other = tmp_path / "mail.log", tmp_path / "other.log"
    log.write_text("")
    other.write_text("")
    catalogue = tmp_path / "catalogue.yml"
    catalogue.write_text("codes: []\n")
    config = tmp_path / "config.yml"
    config.write_text(
        f"catalogue_file: catalogue.yml\nsources:\n  - name: mx\n    format: postfix\n    path: {log}\n"
    )
    with Daemon("--config", str(config), "--state-file", str(tmp_path / "state.json")) as d:
        with log.open("a") as f:
            f.write(LINE.format(code=535) * 3)
        smp = d.wait_for(lambda s: resp(s, "535") == 3)
        assert resp(smp, "535") == 3 and not info_535(smp)

        catalogue.write_text("codes:\n  - code: 535\n    description: Authentication credentials invalid.\n")
        config.write_text(config.read_text() + f"  - name: edge\n    format: postfix\n    path: {other}\n")
        d.proc.send_signal(signal.SIGHUP)
        smp = d.wait_for(
            lambda s: bool(info_535(s)) and value(s, "mail_exporter_source_up", source="edge") == 1
        )
        assert dict(info_535(smp)[0])["description"] == "Authentication credentials invalid."
        assert resp(smp, "535") == 3  # nothing lost or counted again by the reload
        assert value(smp, "mail_exporter_config_reloads_total", result="ok") == 1
        with log.open("a") as f, other.open("a") as g:
            f.write(LINE.format(code=535))
            g.write(LINE.format(code=550))
        smp = d.wait_for(lambda s: resp(s, "535") == 4 and resp(s, "550", source="edge") == 1)
        assert resp(smp, "535") == 4 and resp(smp, "550", source="edge") == 1

        config.write_text("sources: [\n")  # broken: the running configuration must stay
        d.proc.send_signal(signal.SIGHUP)
        smp = d.wait_for(lambda s: value(s, "mail_exporter_config_last_reload_successful") == 0)
        assert value(smp, "mail_exporter_config_reloads_total", result="error") == 1
        with log.open("a") as f:
            f.write(LINE.format(code=535))
        smp = d.wait_for(lambda s: resp(s, "535") == 5)
        assert resp(smp, "535") == 5
        assert d.proc.poll() is None
    code, err = d.stop()
    assert "configuration not reloaded" in err and "Traceback" not in err


def test_sighup_without_a_config_file_keeps_running(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("")
    with Daemon("--source", f"mx=postfix:{log}", "--state-file", str(tmp_path / "s.json")) as d:
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert d.proc.poll() is None
        with log.open("a") as f:
            f.write(LINE.format(code=535))
        assert resp(d.wait_for(lambda s: resp(s, "535") == 1), "535") == 1
