"""The daemon as a subprocess: follow a log, serve increments over HTTP, health, shutdown."""

from __future__ import annotations

import signal
import time

from helpers import Daemon, free_port, http_get, value

L250 = (
    "Dec  4 10:00:0{i} mx1 postfix/smtp[10]: 1A2B3C{i}: to=<a{i}@example.net>, "
    "relay=mx.example.net[192.0.2.1]:25, delay=0.2, delays=0/0/0.1/0.1, dsn=2.0.0, "
    "status=sent (250 2.0.0 Ok: queued as X{i})\n"
)
L554 = (
    "Dec  4 10:00:05 mx1 postfix/smtpd[11]: NOQUEUE: reject: RCPT from unknown[203.0.113.9]: 554 5.7.1 "
    "<x@example.com>: Relay access denied; from=<s@example.biz> to=<x@example.com> proto=ESMTP helo=<h>\n"
)
PLEX = '{"event":"email.send","code":9009}\n'


def resp(smp, code, outcome, direction, source="postfix", typ="smtp"):
    return value(
        smp, "mail_responses_total", source=source, code=code, type=typ, outcome=outcome, direction=direction
    )


def test_daemon_counts_appended_lines(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text(L250.format(i=0))  # present at start, no state: read from the end, not counted
    plex = tmp_path / "plex.jsonl"
    with Daemon(
        "--source",
        f"postfix:{log}",
        "--source",
        f"plex=jsonl:{plex}",
        "--state-file",
        str(tmp_path / "state.json"),
    ) as d:
        smp = d.metrics()
        assert resp(smp, "250", "success", "outbound") == 0
        assert (
            resp(smp, "9009", "failure", "outbound", source="plex", typ="plex") == 0
        )  # exists from the start
        assert value(smp, "mail_exporter_source_up", source="postfix") == 1
        assert value(smp, "mail_exporter_source_up", source="plex") == 0  # not there yet: waited for
        with log.open("a") as f:
            f.write(L250.format(i=1) + L250.format(i=2))
            f.write(L554[:40])  # half a line: must not be counted yet
            f.flush()
            smp = d.wait_for(lambda s: resp(s, "250", "success", "outbound") == 2)
            assert resp(smp, "250", "success", "outbound") == 2
            assert resp(smp, "554", "failure", "inbound") == 0
            f.write(L554[40:])
        smp = d.wait_for(lambda s: resp(s, "554", "failure", "inbound") == 1)
        assert resp(smp, "554", "failure", "inbound") == 1
        assert value(smp, "mail_delivery_status_total", source="postfix", status="rejected") == 1
        plex.write_text(PLEX * 3)  # a file that appears later is read from byte 0
        smp = d.wait_for(lambda s: resp(s, "9009", "failure", "outbound", source="plex", typ="plex") == 3)
        assert resp(smp, "9009", "failure", "outbound", source="plex", typ="plex") == 3
        assert value(smp, "mail_exporter_source_up", source="plex") == 1
        assert value(smp, "mail_exporter_lines_total", source="postfix", result="outcome") == 3
        assert value(smp, "mail_exporter_behind_bytes", source="postfix") == 0
        assert value(smp, "mail_exporter_last_line_timestamp_seconds", source="postfix") > time.time() - 60
        assert any(name.startswith("process_") for (name, _) in smp)


def test_http_endpoints(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("")
    with Daemon("--source", f"mx=postfix:{log}", "--state-file", str(tmp_path / "s.json")) as d:
        status, body, _ = http_get(d.url + "/")
        assert status == 200 and "mailcode-exporter" in body and "href='metrics'" in body and "mx" in body
        assert http_get(d.url + "/healthz")[0] == 200
        deadline = time.monotonic() + 10
        while http_get(d.url + "/readyz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert http_get(d.url + "/readyz")[0] == 200
        assert http_get(d.url + "/nope")[0] == 404
        status, body, headers = http_get(
            d.url + "/metrics", headers={"Accept": "application/openmetrics-text"}
        )
        assert status == 200 and headers["Content-Type"].startswith("application/openmetrics-text")
        assert "mail_responses_created{" in body and body.rstrip().endswith("# EOF")
        status, body, headers = http_get(d.url + "/metrics")
        assert headers["Content-Type"].startswith("text/plain") and "_created{" not in body


def test_readyz_is_503_while_a_source_is_missing(tmp_path):
    with Daemon(
        "--source", f"postfix:{tmp_path / 'later.log'}", "--state-file", str(tmp_path / "s.json")
    ) as d:
        status, body, _ = http_get(d.url + "/readyz")
        assert status == 503 and "does not exist" in body


def test_sigterm_exits_0_quickly_and_state_resumes(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("")
    state = tmp_path / "state.json"
    d = Daemon("--source", f"postfix:{log}", "--state-file", str(state)).start()
    with log.open("a") as f:
        f.write(L250.format(i=1))
    d.wait_for(lambda s: resp(s, "250", "success", "outbound") == 1)
    t0 = time.monotonic()
    code, err = d.stop(signal.SIGTERM)
    assert code == 0, err
    assert time.monotonic() - t0 < 5
    assert "Traceback" not in err
    with log.open("a") as f:  # written while the exporter is down
        f.write(L250.format(i=2) + L554)
    with Daemon("--source", f"postfix:{log}", "--state-file", str(state)) as d2:
        smp = d2.wait_for(lambda s: resp(s, "554", "failure", "inbound") == 1)
        assert resp(smp, "250", "success", "outbound") == 2  # continues from the saved value, nothing twice
        assert resp(smp, "554", "failure", "inbound") == 1


def test_port_in_use_is_a_clear_error(tmp_path):
    port = free_port()
    log = tmp_path / "m.log"
    log.write_text("")
    with Daemon("--source", str(log), "--state-file", str(tmp_path / "a.json"), port=port):
        d2 = Daemon("--source", str(log), "--state-file", str(tmp_path / "b.json"), port=port)
        import subprocess

        r = subprocess.run(d2.args, capture_output=True, text=True, timeout=20)
        assert r.returncode == 1
        assert "cannot listen on" in r.stderr and "Traceback" not in r.stderr
