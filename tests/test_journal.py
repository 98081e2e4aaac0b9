"""The systemd journal as a source, on real journal files written by systemd-journal-remote.

Entries are written in the journal export format (https://systemd.io/JOURNAL_EXPORT_FORMATS/) with the
fields journald records for a syslog(3) message (SYSLOG_IDENTIFIER, SYSLOG_PID, _SYSTEMD_UNIT, ...); their
MESSAGE texts have the shape of Postfix's documented log lines. journalctl reads them back as it would read
the host's journal, so the reader runs exactly as in production.
"""

from __future__ import annotations

import struct
import subprocess
import time
from pathlib import Path

import pytest
from conftest import need_binary

from exporter import parsers, state
from exporter.app import Pipeline
from exporter.catalogue import Catalogue
from exporter.config import ConfigError, SourceConfig, load, parse_source_flag
from exporter.counting import SourceSink
from exporter.journal import EntryFilter, JournalReader, LineBuilder
from exporter.metrics import Counts
from exporter.tail import Waker

REMOTE = (
    "systemd-journal-remote",
    "/lib/systemd/systemd-journal-remote",
    "/usr/lib/systemd/systemd-journal-remote",
)

# Message texts as Postfix logs them (queue id, then the result), one per kind of result.
SENT = (
    "{qid}: to=<ann@example.com>, relay=mail.example.com[216.150.150.131]:25, delay=1.1, "
    "delays=0.04/0/0.6/0.46, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 8BDCA22DA71)"
)
BOUNCED = (
    "{qid}: to=<cat@example.org>, relay=mx.example.org[192.0.2.10]:25, delay=1.1, delays=0.1/0.01/0.5/0.49, "
    "dsn=5.1.1, status=bounced (host mx.example.org[192.0.2.10] said: 550 5.1.1 <cat@example.org>: "
    "Recipient address rejected: User unknown (in reply to RCPT TO command))"
)
DEFERRED = (
    "{qid}: to=<gus@example.com>, relay=mx.example.com[203.0.113.51]:25, delay=0.5, delays=0/0/0.5/0, "
    "dsn=4.3.2, status=deferred (host mx.example.com[203.0.113.51] refused to talk to me: 421 4.3.2 "
    "Service shutting down)"
)
REJECT = (
    "NOQUEUE: reject: RCPT from unknown[203.0.113.9]: 554 5.7.1 <x@example.com>: Relay access denied; "
    "from=<spam@example.biz> to=<x@example.com> proto=ESMTP helo=<bad.example.biz>"
)
CLIENT = "{qid}: client=relay.other.com[203.0.113.7]"

T0 = 1_764_800_000_000_000  # microseconds since the epoch, as __REALTIME_TIMESTAMP holds them


def entry(n: int, ident: str, message: str, unit: str = "postfix@-.service", pid: int = 2538) -> dict:
    """One journal entry as journald stores a syslog(3) message of the daemon `ident`."""
    return {
        "__REALTIME_TIMESTAMP": str(T0 + n * 1000),
        "_HOSTNAME": "mx1",
        "SYSLOG_FACILITY": "2",
        "PRIORITY": "6",
        "SYSLOG_IDENTIFIER": ident,
        "SYSLOG_PID": str(pid),
        "_PID": str(pid),
        "_SYSTEMD_UNIT": unit,
        "MESSAGE": message,
    }


def export_format(entries: list[dict]) -> bytes:
    """Entries in the journal export format; a value holding a newline takes the binary form."""
    out = bytearray()
    for fields in entries:
        for key, value in fields.items():
            data = value.encode() if isinstance(value, str) else value
            if b"\n" in data:
                out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
            else:
                out += key.encode() + b"=" + data + b"\n"
        out += b"\n"
    return bytes(out)


def write_journal(path: Path, entries: list[dict]) -> None:
    """Append entries to a real journal file (created if missing) with systemd's own tool."""
    remote = need_binary(*REMOTE)
    r = subprocess.run([remote, "-o", str(path), "-"], input=export_format(entries), capture_output=True)
    assert r.returncode == 0, r.stderr.decode()


def batch(start: int, qid: str) -> list[dict]:
    """A sent, a bounced, a deferred delivery and a reject, with lines carrying no result between."""
    return [
        entry(start, "postfix/smtpd", CLIENT.format(qid=qid), pid=2534),
        entry(start + 1, "postfix/smtp", SENT.format(qid=qid)),
        entry(start + 2, "postfix/smtp", BOUNCED.format(qid=qid)),
        entry(start + 3, "postfix/smtp", DEFERRED.format(qid=qid)),
        entry(start + 4, "postfix/smtpd", REJECT, pid=2534),
    ]


def resp(counts: Counts, code: str, outcome: str, direction: str, source: str = "mx") -> int:
    return counts.values["responses"].get((source, code, "smtp", outcome, direction), 0)


def lines(counts: Counts, result: str, source: str = "mx") -> int:
    return counts.values["lines"].get((source, result), 0)


def make_pipeline(tmp_path: Path, journal: dict, from_beginning: bool = True) -> Pipeline:
    settings = load(
        None,
        {
            "sources": [{"name": "mx", "format": "postfix", "path": "journal", "journal": journal}],
            "from_beginning": from_beginning,
        },
    )
    pipeline = Pipeline(settings, Catalogue.load(None), Counts(), tmp_path / "state.json")
    pipeline.setup()
    for src in pipeline.sources:  # as serve() does
        src.follower.start(pipeline.waker)
    return pipeline


def run_until(pipeline: Pipeline, predicate, what: str, timeout: float = 30.0) -> None:
    """Step the pipeline at each wake-up until predicate() holds (the timeout only guards a hang)."""
    deadline = time.monotonic() + timeout
    while True:
        pipeline.step()
        if predicate():
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        pipeline.waker.wait(0.5)


def sentinel(n: int) -> dict:
    """A last entry whose code appears nowhere else: once it is counted, everything before it was."""
    return entry(n, "postfix/smtp", SENT.replace("250 2.0.0", "251 2.1.5").format(qid="FFFFFFFFFF"))


def test_restart_resumes_after_the_cursor_nothing_lost_nothing_twice(tmp_path):
    need_binary("journalctl")
    jfile = tmp_path / "host" / "system.journal"
    jfile.parent.mkdir()
    write_journal(jfile, batch(0, "1A2B3C4D5E"))
    pipeline = make_pipeline(tmp_path, {"files": [str(jfile)]})
    try:
        run_until(
            pipeline, lambda: resp(pipeline.counts, "554", "failure", "inbound") == 1, "the first batch"
        )
        # Followed while running: entries appended now are read as they arrive.
        write_journal(jfile, [*batch(10, "2B3C4D5E6F"), sentinel(19)])
        run_until(pipeline, lambda: resp(pipeline.counts, "251", "success", "outbound") == 1, "the second")
    finally:
        pipeline.close()
    saved = state.load(tmp_path / "state.json")
    [position] = saved["sources"]["mx"]["files"]
    assert position["cursor"].startswith("s=")  # journalctl's cursor of the last entry counted

    # Written while the exporter is down (more than the 10 entries journalctl --follow shows by default):
    # read after the restart, from the saved cursor.
    write_journal(jfile, [*batch(20, "3C4D5E6F7A"), *batch(25, "4D5E6F7A8B")])
    write_journal(jfile, [entry(30, "postfix/qmgr", "3C4D5E6F7A: removed"), sentinel(31)])
    pipeline = make_pipeline(tmp_path, {"files": [str(jfile)]})
    try:
        counts = pipeline.counts
        run_until(
            pipeline,
            lambda: resp(counts, "251", "success", "outbound") == 2,
            "the entries written while down",
        )
        # Four batches and two sentinels, each counted exactly once (the counters came back from the state).
        assert resp(counts, "250", "success", "outbound") == 4
        assert resp(counts, "550", "failure", "outbound") == 4
        assert resp(counts, "421", "failure", "outbound") == 4
        assert resp(counts, "554", "failure", "inbound") == 4
        assert counts.values["statuses"][("mx", "rejected")] == 4
        assert lines(counts, "outcome") == 18
        assert lines(counts, "ignored") == 5  # four client= lines and one removed
        assert lines(counts, "unparsed") == 0
        assert pipeline.sources[0].follower.up
    finally:
        pipeline.close()


def test_journalctl_that_dies_is_restarted_after_the_last_entry_read(tmp_path):
    need_binary("journalctl")
    jfile = tmp_path / "j" / "system.journal"
    jfile.parent.mkdir()
    write_journal(jfile, batch(0, "1A2B3C4D5E"))
    cfg = SourceConfig(name="mx", format="postfix", path="journal", journal={"files": [str(jfile)]})
    sink = SourceSink(cfg, parsers.get("postfix"), Catalogue.load(None))
    reader = JournalReader(
        units=cfg.journal.units, identifiers=cfg.journal.identifiers, files=[str(jfile)], backoff=(0.05, 0.2)
    )
    reader.restore([{"cursor": "not a cursor"}])  # a damaged state entry is ignored, not passed on
    reader.from_beginning = True
    waker = Waker()
    reader.start(waker)

    def count(code: str, outcome: str = "failure", direction: str = "outbound") -> int:
        return sink.delta.responses.get(("mx", code, "smtp", outcome, direction), 0)

    def wait_for(predicate, what: str) -> None:
        deadline = time.monotonic() + 30
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            waker.wait(0.5)
            reader.poll(sink)

    try:
        wait_for(lambda: count("554", "failure", "inbound") == 1, "the first batch")
        first = reader._proc
        first.kill()
        wait_for(lambda: reader._proc is not first and reader.up, "journalctl to be started again")
        write_journal(jfile, [*batch(10, "2B3C4D5E6F"), sentinel(20)])
        wait_for(lambda: count("251", "success") == 1, "the entries after the restart")
        assert count("250", "success") == 2 and count("550") == 2 and count("421") == 2
        assert count("554", "failure", "inbound") == 2
        assert sink.delta.read_errors[("mx",)] == 1  # the run that ended is counted
    finally:
        reader.close()


def test_the_default_filter_takes_every_postfix_unit_and_identifier_and_nothing_else(tmp_path):
    journalctl = need_binary("journalctl")
    jdir = tmp_path / "journal"
    jdir.mkdir()
    wanted = [
        entry(0, "postfix/smtp", SENT.format(qid="1111111111")),  # Debian's instance unit
        entry(
            1,
            "postfix/postdrop",
            "warning: unable to look up public/pickup: No such file or directory",
            unit="cron.service",
        ),
        entry(2, "postfix-out/smtp", SENT.format(qid="2222222222"), unit="postfix@postfix-out.service"),
        entry(3, "postfix/submission/smtpd", REJECT),
        entry(
            4,
            "postfix/master",
            "daemon started -- version 3.7.11, configuration /etc/postfix",
            unit="postfix.service",
        ),
    ]
    others = [
        entry(5, "sshd", "Accepted publickey for root from 192.0.2.4 port 50022 ssh2", unit="ssh.service"),
        entry(
            6,
            "dovecot",
            "imap-login: Login: user=<eve>, method=PLAIN, rip=198.51.100.20",
            unit="dovecot.service",
        ),
    ]
    write_journal(jdir / "system.journal", wanted + others)
    # journalctl -t matches an identifier exactly: "postfix" alone finds none of Postfix's entries.
    r = subprocess.run(
        [journalctl, "-D", str(jdir), "-t", "postfix", "-o", "cat", "--no-pager"], capture_output=True
    )
    assert r.stdout.strip() == b""

    pipeline = make_pipeline(tmp_path, {"directory": str(jdir)})
    try:
        counts = pipeline.counts
        run_until(
            pipeline, lambda: lines(counts, "outcome") + lines(counts, "ignored") >= 5, "the Postfix entries"
        )
        assert resp(counts, "250", "success", "outbound") == 2  # the main and the postfix-out instance
        assert resp(counts, "554", "failure", "inbound") == 1
        assert lines(counts, "ignored") == 2  # postdrop's warning and master's start
        assert lines(counts, "unparsed") == 0  # sshd and dovecot were never handed on
        cursor = pipeline.sources[0].follower.positions()
        assert cursor  # the cursor moved past the entries that are not the source's too
    finally:
        pipeline.close()


def test_a_unit_location_filters_on_that_unit_only(tmp_path):
    need_binary("journalctl")
    jfile = tmp_path / "j" / "system.journal"
    jfile.parent.mkdir()
    write_journal(
        jfile,
        [
            entry(0, "postfix/smtp", SENT.format(qid="1111111111")),
            entry(1, "postfix-out/smtp", SENT.format(qid="2222222222"), unit="postfix@postfix-out.service"),
            entry(2, "postfix/smtp", BOUNCED.format(qid="3333333333")),
        ],
    )
    cfg = SourceConfig(
        **parse_source_flag("mx=postfix:journal:postfix@-.service"), journal={"files": [str(jfile)]}
    )
    assert cfg.journal.units == ["postfix@-.service"] and cfg.journal.identifiers == []
    sink = SourceSink(cfg, parsers.get("postfix"), Catalogue.load(None))
    reader = JournalReader(
        units=cfg.journal.units,
        identifiers=cfg.journal.identifiers,
        files=cfg.journal.files,
        from_beginning=True,
    )
    assert "_SYSTEMD_UNIT=postfix@-.service" in reader.command()  # an exact unit: journalctl filters
    waker = Waker()
    reader.start(waker)
    try:
        deadline = time.monotonic() + 30
        while sink.delta.responses.get(("mx", "550", "smtp", "failure", "outbound"), 0) < 1:
            assert time.monotonic() < deadline, "timed out"
            waker.wait(0.5)
            reader.poll(sink)
        assert sink.delta.responses[("mx", "250", "smtp", "success", "outbound")] == 1  # not postfix-out's
    finally:
        reader.close()


def test_a_missing_journal_is_reported_and_retried_until_it_appears(tmp_path):
    need_binary("journalctl")
    jdir = tmp_path / "not-yet"
    cfg = SourceConfig(name="mx", format="postfix", path="journal", journal={"directory": str(jdir)})
    sink = SourceSink(cfg, parsers.get("postfix"), Catalogue.load(None))
    reader = JournalReader(
        units=cfg.journal.units,
        identifiers=cfg.journal.identifiers,
        directory=str(jdir),
        from_beginning=True,
        backoff=(0.05, 0.2),
    )
    waker = Waker()
    reader.start(waker)
    try:
        deadline = time.monotonic() + 30
        while reader.problem is None or reader.up:
            assert time.monotonic() < deadline, "the missing journal was not reported"
            waker.wait(0.5)
            reader.poll(sink)
        assert "No such file or directory" in reader.problem
        reader.poll(sink)
        assert sink.delta.read_errors[("mx",)] >= 1  # each failed run of journalctl is counted
        jdir.mkdir()
        write_journal(jdir / "system.journal", [entry(0, "postfix/smtp", SENT.format(qid="1111111111"))])
        while not sink.delta.responses.get(("mx", "250", "smtp", "success", "outbound")):
            assert time.monotonic() < deadline + 30, "the journal that appeared was not read"
            waker.wait(0.5)
            reader.poll(sink)
        assert reader.up and reader.problem is None
    finally:
        reader.close()


def test_journalctl_that_cannot_run_is_a_problem_not_a_crash(tmp_path):
    reader = JournalReader(
        units=[], identifiers=[], journalctl=str(tmp_path / "no-journalctl"), backoff=(0.05, 0.1)
    )
    waker = Waker()
    reader.start(waker)
    try:
        deadline = time.monotonic() + 30
        while reader.problem is None:
            assert time.monotonic() < deadline
            waker.wait(0.5)
        assert "cannot run" in reader.problem and not reader.up
    finally:
        reader.close()
    assert not reader._thread.is_alive()


def test_an_entry_becomes_the_classic_syslog_line():
    build = LineBuilder()
    e = entry(0, "postfix/smtp", SENT.format(qid="4F9D195432C"))
    line = build.line(e)
    assert line == "2025-12-03T22:13:20.000000+00:00 mx1 postfix/smtp[2538]: " + SENT.format(
        qid="4F9D195432C"
    )
    assert parsers.get("postfix").parse(line)  # the Postfix parser reads it as a logged result
    # Non-UTF-8 data comes as a byte array; several lines of one entry stay one line; no pid, no brackets.
    e = {"__REALTIME_TIMESTAMP": str(T0), "SYSLOG_IDENTIFIER": "postfix/qmgr", "MESSAGE": list(b"a\nb\xff")}
    assert build.line(e) == "2025-12-03T22:13:20.000000+00:00 - postfix/qmgr: a b\ufffd"
    assert build.line({"SYSLOG_IDENTIFIER": "x"}) is None  # no MESSAGE: nothing to count


@pytest.mark.parametrize(
    "ident,unit,taken",
    [
        ("postfix/smtpd", "postfix@-.service", True),
        ("postfix/postdrop", "cron.service", True),  # run by a user: another cgroup
        ("postfix-out/smtp", "postfix@postfix-out.service", True),
        ("configure-instance.sh", "postfix@-.service", True),  # the unit's own helper
        ("sshd", "ssh.service", False),
        ("dovecot", "dovecot.service", False),
        (None, None, False),
    ],
)
def test_default_filter(ident, unit, taken):
    cfg = SourceConfig(path="journal")
    flt = EntryFilter(cfg.journal.units, cfg.journal.identifiers)
    fields = {k: v for k, v in (("SYSLOG_IDENTIFIER", ident), ("_SYSTEMD_UNIT", unit)) if v is not None}
    assert flt.matches(fields) is taken
    assert flt.journalctl_matches() == []  # globs: matched by the reader, not by journalctl


def test_exact_filters_go_to_journalctl_as_one_disjunction():
    flt = EntryFilter(["postfix@-.service"], ["postfix/postdrop", "postfix/sendmail"])
    assert flt.journalctl_matches() == [
        "_SYSTEMD_UNIT=postfix@-.service",
        "+",
        "SYSLOG_IDENTIFIER=postfix/postdrop",
        "SYSLOG_IDENTIFIER=postfix/sendmail",
    ]
    assert EntryFilter([], []).matches({"SYSLOG_IDENTIFIER": "anything"})


def test_journal_configuration(tmp_path):
    assert parse_source_flag("journal") == {"path": "journal"}
    assert parse_source_flag("mx=journal:postfix@-.service") == {
        "path": "journal:postfix@-.service",
        "name": "mx",
    }
    cfg = SourceConfig(path="journal")
    assert cfg.journal.units == ["postfix*"] and cfg.journal.identifiers == ["postfix*"]
    assert SourceConfig(path="journal:postfix").journal.units == ["postfix.service"]
    assert SourceConfig(path="journal:postfix@*").journal.units == ["postfix@*"]
    config = tmp_path / "config.yml"
    config.write_text("sources:\n  - path: journal\n    journal: {directory: host-journal}\n")
    assert load(config, {}).sources[0].journal.directory == str(tmp_path / "host-journal")
    assert load(config, {}).sources[0].path == "journal"  # not a file beside the config
    for text, message in [
        ("sources:\n  - path: journal\n    journal: {directory: a, files: [b]}\n", "not both"),
        ("sources:\n  - path: journal\n    journal: {colour: red}\n", "journal.colour: unknown key"),
        (
            "sources:\n  - path: /var/log/mail.log\n    journal: {directory: a}\n",
            "options for a journal location",
        ),
        ("sources:\n  - path: journal\n    format: exim\n", "journal:UNIT"),
    ]:
        config.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load(config, {})
