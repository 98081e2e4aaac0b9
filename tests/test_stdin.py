"""Standard input as a source (`--source postfix:-`): `kubectl logs -f ... | mailcode-exporter ...`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

from helpers import ROOT, Daemon, http_get, value

from exporter import parsers
from exporter.catalogue import Catalogue
from exporter.config import SourceConfig, load, parse_source_flag
from exporter.counting import SourceSink
from exporter.streams import LineSplitter, StdinReader
from exporter.tail import Waker

SAMPLE = (ROOT / "tests" / "data" / "postfix-sample.log").read_text().splitlines(keepends=True)
SENT = SAMPLE[5]  # postfix/smtp ... status=sent (250 2.0.0 Ok: queued as 9F8E7D)
BOUNCED = SAMPLE[6]  # ... said: 550 5.1.1 ...
REJECT = SAMPLE[10]  # NOQUEUE: reject: RCPT from ...: 554 5.7.1 ...


class PipedDaemon(Daemon):
    """The daemon with a pipe for its standard input."""

    def start(self, timeout: float = 15.0) -> PipedDaemon:
        self.proc = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + timeout
        while http_get_ok(self.url + "/healthz") is False:
            assert self.proc.poll() is None, self.proc.stderr.read()
            assert time.monotonic() < deadline, "the daemon did not answer /healthz"
            time.sleep(0.05)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, str]:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            self.proc.stdin = None  # communicate() would write to it
        return super().stop(sig, timeout)


def http_get_ok(url: str) -> bool:
    with contextlib.suppress(OSError):
        return http_get(url, timeout=1)[0] == 200
    return False


def resp(smp, code, outcome, direction):
    return value(
        smp, "mail_responses_total", source="mx", code=code, type="smtp", outcome=outcome, direction=direction
    )


def test_a_pipe_is_counted_and_its_end_leaves_the_daemon_serving(tmp_path):
    with PipedDaemon("--source", "mx=postfix:-", "--state-file", str(tmp_path / "state.json")) as d:
        pipe = d.proc.stdin
        smp = d.metrics()
        assert value(smp, "mail_exporter_source_up", source="mx") == 1
        pipe.write(SENT + BOUNCED[:50])  # a line and the start of the next one
        pipe.flush()
        smp = d.wait_for(lambda s: resp(s, "250", "success", "outbound") == 1)
        assert resp(smp, "250", "success", "outbound") == 1
        assert resp(smp, "550", "failure", "outbound") == 0  # not a whole line yet
        pipe.write(BOUNCED[50:] + REJECT.rstrip("\n"))  # the last line never gets its newline
        pipe.close()  # the writer is done: the source ends, the last line counts
        smp = d.wait_for(lambda s: value(s, "mail_exporter_source_up", source="mx") == 0)
        assert value(smp, "mail_exporter_source_up", source="mx") == 0
        assert resp(smp, "550", "failure", "outbound") == 1
        assert resp(smp, "554", "failure", "inbound") == 1
        assert value(smp, "mail_exporter_lines_total", source="mx", result="outcome") == 3
        assert d.proc.poll() is None  # still running and serving what it counted
        assert http_get(d.url + "/healthz")[0] == 200
        status, body, _ = http_get(d.url + "/readyz")
        assert status == 503 and "standard input was closed" in body
        code, _ = d.stop()
    assert code == 0


def test_lines_in_pieces_oversize_lines_and_the_end_of_the_pipe():
    r, w = os.pipe()
    cfg = SourceConfig(**parse_source_flag("mx=postfix:-"))
    sink = SourceSink(cfg, parsers.get("postfix"), Catalogue.load(None))
    reader = StdinReader(max_line=300, fd=r)
    waker = Waker()
    reader.start(waker)
    try:
        assert reader.up
        os.write(w, SENT[:20].encode())
        os.write(w, SENT[20:].encode() + b"x" * 1000 + b"\n" + REJECT.encode())
        os.close(w)
        deadline = time.monotonic() + 30
        while reader.up:
            assert time.monotonic() < deadline, "the end of the pipe was not seen"
            waker.wait(0.5)
            reader.poll(sink)
        reader.poll(sink)
        assert sink.delta.lines == {("mx", "outcome"): 2, ("mx", "oversize"): 1}
        assert "closed" in reader.problem
        assert reader.positions() == []  # no replay: nothing to resume from
    finally:
        reader.close()
        os.close(r)
    assert not reader._thread.is_alive()


def test_a_regular_file_as_standard_input(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("".join(SAMPLE))
    cfg = SourceConfig(name="mx", format="postfix", path="-")
    sink = SourceSink(cfg, parsers.get("postfix"), Catalogue.load(None))
    with log.open("rb") as f:
        reader = StdinReader(max_line=65536, fd=f.fileno())
        waker = Waker()
        reader.start(waker)
        try:
            deadline = time.monotonic() + 30
            while reader.up or reader.behind():
                assert time.monotonic() < deadline
                waker.wait(0.5)
                reader.poll(sink)
        finally:
            reader.close()
    assert sum(sink.delta.lines.values()) == len(SAMPLE)


def test_a_closed_reader_stops_its_thread_while_the_pipe_stays_open():
    r, w = os.pipe()
    reader = StdinReader(max_line=1024, fd=r)
    reader.start(Waker())
    reader.close()
    assert not reader._thread.is_alive()
    os.close(r)
    os.close(w)


def test_line_splitter():
    s = LineSplitter(max_line=5)
    assert s.feed(b"ab") == (b"", 0)
    assert s.feed(b"c\nde\nf") == (b"abc\nde\n", 0)
    assert s.feed(b"ghijk") == (b"", 1)  # "fghijk" is already too long: dropped up to its newline
    assert s.feed(b"lm\nno\n") == (b"no\n", 0)
    assert s.feed(b"1234567\n89\n") == (b"89\n", 1)
    assert s.feed(b"tail") == (b"", 0)
    assert s.finish() == b"tail\n"


def test_stdin_configuration(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text("sources:\n  - path: '-'\n    format: postfix\n")
    assert load(config, {}).sources[0].path == "-"  # not a file beside the config
    assert parse_source_flag("postfix:-") == {"path": "-", "format": "postfix"}
