"""The syslog listener: RFC 3164 and RFC 5424 over UDP and TCP, both TCP framings of RFC 6587.

Messages come from util-linux's `logger` (as a host's syslog client sends them) and from a plain Python
socket for what no well-behaved client sends: oversized, malformed and cut frames. Example messages are
the RFCs' own examples (RFC 3164 section 5.4, RFC 5424 section 6.5).
"""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
from conftest import need_binary
from helpers import Daemon, free_port, value

from exporter import parsers
from exporter.catalogue import Catalogue
from exporter.config import ConfigError, SourceConfig, load, parse_source_flag, split_syslog
from exporter.counting import SourceSink
from exporter.syslog import Framer, SyslogReader, to_line
from exporter.tail import Waker

NOW = b"2026-12-04T10:00:00.000000+00:00"
BOM = "\ufeff".encode()

# The text of a Postfix delivery result, as Postfix passes it to syslog(3) after its "postfix/smtp[pid]: ".
SENT = (
    "4F9D195432C: to=<ann@example.com>, relay=mail.example.com[216.150.150.131]:25, delay=1.1, "
    "delays=0.04/0/0.6/0.46, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 8BDCA22DA71)"
)
REJECT = (
    "NOQUEUE: reject: RCPT from unknown[203.0.113.9]: 554 5.7.1 <x@example.com>: Relay access denied; "
    "from=<spam@example.biz> to=<x@example.com> proto=ESMTP helo=<bad.example.biz>"
)


@pytest.mark.parametrize(
    "message,line",
    [
        # RFC 3164 5.4, examples 1 and 2 (the second has an IP address for a hostname and no tag).
        (
            b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
            b"Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        ),
        (b"<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!", b"Feb  5 17:32:18 10.0.0.99 Use the BFG!"),
        # A local sender leaves the hostname out; a sender without a clock leaves the timestamp out.
        (b"<22>Dec  4 16:26:52 postfix/smtp[2538]: x", b"Dec  4 16:26:52 - postfix/smtp[2538]: x"),
        (b"<22>postfix/smtp[2538]: x\n", NOW + b" - postfix/smtp[2538]: x"),
        # RFC 5424 6.5, examples 1 to 4: BOM before the text, nil values, structured data, no text at all.
        (
            b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
            + BOM
            + b"'su root' failed for lonvick on /dev/pts/8",
            b"2003-10-11T22:14:15.003Z mymachine.example.com su: 'su root' failed for lonvick on /dev/pts/8",
        ),
        (
            b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - "
            b"%% It's time to make the do-nuts.",
            b"2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc[8710]: %% It's time to make the do-nuts.",
        ),
        (
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
            b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] '
            + BOM
            + b"An application event log entry...",
            b"2003-10-11T22:14:15.003Z mymachine.example.com evntslog: An application event log entry...",
        ),
        (
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
            b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
            b'[examplePriority@32473 class="high"]',
            b"2003-10-11T22:14:15.003Z mymachine.example.com evntslog: ",
        ),
        # Escaped '"' and ']' inside a parameter value do not end the element; a nil timestamp is stamped.
        (
            b'<22>1 - mx1 postfix/smtp 2538 - [x@32473 a="q\\"]" b="\\]"] done',
            NOW + b" mx1 postfix/smtp[2538]: done",
        ),
        # A message of several lines stays one line.
        (b"<22>1 2003-10-11T22:14:15Z mx1 app - - - one\ntwo\n", b"2003-10-11T22:14:15Z mx1 app: one two"),
    ],
)
def test_messages_become_classic_lines(message, line):
    assert to_line(message, now=lambda: NOW) == line


@pytest.mark.parametrize(
    "message",
    [
        b"Oct 11 22:14:15 mymachine su: no priority",
        b"<192>Oct 11 22:14:15 mymachine su: priority out of range",
        b"<13>",
        b"<13>1 2003-10-11 mymachine su - - - not an RFC 3339 timestamp",
        b'<13>1 2003-10-11T22:14:15.003Z mymachine su - - [unterminated a="b" c',
        b'<13>1 2003-10-11T22:14:15.003Z mymachine su - - [quote a="b] c',
        b"<13>1 2003-10-11T22:14:15.003Z mymachine su - -",
        b"<13>1 2003-10-11T22:14:15.003Z mymachine su - - -no-space",
    ],
)
def test_malformed_messages(message):
    assert to_line(message, now=lambda: NOW) is None


def test_framing_octet_counting_and_newlines_in_any_pieces():
    frames = [b"<13>1 - h a - - - first", b"<13>Oct 11 22:14:15 h a: second", b"<13>1 - h a - - - third"]
    stream = (
        b"%d %s" % (len(frames[0]), frames[0]) + frames[1] + b"\n" + b"%d %s" % (len(frames[2]), frames[2])
    )
    for size in (1, 3, len(stream)):
        framer = Framer(max_bytes=100)
        got = []
        for i in range(0, len(stream), size):
            got += framer.feed(stream[i : i + size])
        assert got == frames
        assert framer.finish() == []


def test_framing_drops_oversized_and_malformed_frames_and_carries_on():
    framer = Framer(max_bytes=20)
    ok = b"<13>1 - h a - - - ok"
    assert framer.feed(b"30 " + b"x" * 30 + b"%d %s" % (len(ok), ok)) == ["oversize", ok]
    assert framer.feed(b"<13>" + b"y" * 30) == ["oversize"]
    assert framer.feed(b"yyy\n" + ok + b"\n") == [ok]  # the rest of the long frame is skipped
    assert framer.feed(b"garbage\n12x <13>1\n" + ok + b"\n") == ["malformed", "malformed", ok]
    assert framer.feed(b"18 <13>1 - h a - -") == []
    assert framer.finish() == ["truncated"]  # the connection closed inside a counted frame
    assert framer.feed(ok) == [] and framer.finish() == [ok]  # a last newline-framed message needs no LF


def make_reader(transport: str, **kw) -> tuple[SyslogReader, SourceSink, Waker]:
    cfg = SourceConfig(name="mx", format="postfix", path=f"syslog+{transport}://127.0.0.1:0")
    sink = SourceSink(cfg, parsers.get("postfix"), Catalogue.load(None))
    reader = SyslogReader(transport, "127.0.0.1", 0, **kw)
    waker = Waker()
    reader.start(waker)
    assert reader.up and reader.address is not None
    return reader, sink, waker


def poll_until(reader, sink, waker, predicate, what: str) -> None:
    deadline = time.monotonic() + 30  # guards a hang only
    while True:
        reader.poll(sink)
        if predicate():
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        waker.wait(0.5)


def outcomes(sink: SourceSink) -> int:
    return sink.delta.lines.get(("mx", "outcome"), 0)


def dropped(sink: SourceSink, reason: str) -> int:
    return sink.delta.dropped.get(("mx", reason), 0)


def logger(port: int, *args: str, message: str = SENT, ident: str = "postfix/smtp") -> None:
    binary = need_binary("logger")
    cmd = [
        binary,
        "--server",
        "127.0.0.1",
        "--port",
        str(port),
        *args,
        "-t",
        ident,
        "--id=2538",
        "-p",
        "mail.info",
    ]
    subprocess.run([*cmd, message], check=True, timeout=10)


@pytest.mark.parametrize(
    "transport,variants",
    [
        ("udp", [["--rfc3164"], ["--rfc5424"], ["--rfc5424=notq,nohost"]]),
        (
            "tcp",
            [["--rfc3164"], ["--rfc5424"], ["--rfc5424", "--octet-count"], ["--rfc3164", "--octet-count"]],
        ),
    ],
)
def test_logger_messages_are_counted(transport, variants):
    need_binary("logger")
    reader, sink, waker = make_reader(transport)
    try:
        port = reader.address[1]
        for variant in variants:
            logger(port, f"--{transport}", *variant)
        logger(port, f"--{transport}", variants[-1][0], message=REJECT, ident="postfix/smtpd")
        n = len(variants)
        poll_until(reader, sink, waker, lambda: outcomes(sink) == n + 1, "the messages")
        assert sink.delta.responses[("mx", "250", "smtp", "success", "outbound")] == n
        assert sink.delta.responses[("mx", "554", "smtp", "failure", "inbound")] == 1
        assert sum(sink.delta.dropped.values()) == 0  # the series exist, at 0
        assert ("mx", "queue_full") in sink.delta.dropped
    finally:
        reader.close()


def test_tcp_bad_frames_are_dropped_and_counted_and_the_connection_goes_on():
    reader, sink, waker = make_reader("tcp", max_message=600)
    good = b"<22>1 2026-12-04T10:00:00Z mx1 postfix/smtp 2538 - - " + SENT.encode()
    try:
        with socket.create_connection(reader.address) as s:
            s.sendall(b"%d %s" % (len(good), good))  # octet counted
            s.sendall(b"5000 " + b"x" * 5000)  # declared longer than max_message: skipped whole
            s.sendall(good + b"\n")  # newline framed
            s.sendall(b"<22>" + b"y" * 2000 + b"\n")  # too long without a newline in reach
            s.sendall(b"hello world\n")  # neither framing
            s.sendall(b"<22>1 2026-12-04 mx1 app - - - bad timestamp\n")  # framed, but not syslog
            s.sendall(b"%d %s" % (len(good), good))
            s.sendall(b"400 <22>1 cut short")  # the connection closes inside the frame
        poll_until(reader, sink, waker, lambda: dropped(sink, "truncated") == 1, "the end of the connection")
        assert outcomes(sink) == 3
        assert dropped(sink, "oversize") == 2
        assert dropped(sink, "malformed") == 2
    finally:
        reader.close()


def test_udp_bad_datagrams_are_dropped_and_counted():
    reader, sink, waker = make_reader("udp", max_message=600)
    good = b"<22>Dec  4 10:00:00 mx1 postfix/smtp[2538]: " + SENT.encode()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"<22>" + b"z" * 5000, reader.address)
            s.sendto(b"no priority at all", reader.address)
            s.sendto(good, reader.address)
        poll_until(reader, sink, waker, lambda: outcomes(sink) == 1, "the good datagram")
        # UDP keeps the order on loopback: the bad datagrams were handled before the good one.
        assert dropped(sink, "oversize") == 1 and dropped(sink, "malformed") == 1
    finally:
        reader.close()


def test_connections_beyond_the_limit_are_refused_and_counted():
    reader, sink, waker = make_reader("tcp", max_connections=1)
    good = b"<22>Dec  4 10:00:00 mx1 postfix/smtp[2538]: " + SENT.encode() + b"\n"
    try:
        with socket.create_connection(reader.address) as first:
            first.sendall(good)
            poll_until(reader, sink, waker, lambda: outcomes(sink) == 1, "the first connection")
            with socket.create_connection(reader.address) as second:
                second.settimeout(30)
                assert second.recv(1) == b""  # closed by the listener at once
            poll_until(reader, sink, waker, lambda: dropped(sink, "connection_limit") == 1, "the refusal")
            first.sendall(good)  # the connection within the limit still works
            poll_until(reader, sink, waker, lambda: outcomes(sink) == 2, "the first connection again")
    finally:
        reader.close()


def test_a_full_queue_drops_and_counts_instead_of_blocking():
    reader = SyslogReader("udp", "127.0.0.1", 0, inbox_bytes=400)  # room for one message
    cfg = SourceConfig(name="mx", format="postfix", path="syslog+udp://127.0.0.1:0")
    sink = SourceSink(cfg, parsers.get("postfix"), Catalogue.load(None))
    for _ in range(5):
        reader.deliver(b"<22>Dec  4 10:00:00 mx1 postfix/smtp[2538]: " + SENT.encode())
    reader.poll(sink)
    assert outcomes(sink) == 1 and dropped(sink, "queue_full") == 4
    reader.deliver(b"<22>Dec  4 10:00:00 mx1 postfix/smtp[2538]: " + SENT.encode())  # room again
    reader.poll(sink)
    assert outcomes(sink) == 2
    reader.close()


def test_a_port_in_use_is_a_problem_not_a_crash():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        reader = SyslogReader("tcp", "127.0.0.1", port, retry=(0.05, 0.1))
        reader.start(Waker())
        try:
            assert not reader.up and "cannot listen" in reader.problem
        finally:
            reader.close()
    assert not reader._thread.is_alive()


def test_syslog_configuration():
    assert parse_source_flag("postfix:syslog+udp://127.0.0.1:5140") == {
        "path": "syslog+udp://127.0.0.1:5140",
        "format": "postfix",
    }
    assert split_syslog("syslog+tcp://:5140") == ("tcp", "127.0.0.1", 5140)  # loopback unless told
    assert split_syslog("syslog+tcp://[::1]:5140") == ("tcp", "::1", 5140)
    assert split_syslog("syslog+udp://0.0.0.0:514") == ("udp", "0.0.0.0", 514)
    cfg = SourceConfig(path="syslog+tcp://127.0.0.1:5140", syslog={"max_connections": 8})
    assert cfg.syslog.max_connections == 8 and cfg.syslog.max_message_bytes == 8192
    for source, message in [
        ({"path": "syslog://127.0.0.1:514"}, "unknown location scheme 'syslog'"),
        ({"path": "syslog+udp://127.0.0.1"}, "is not syslog\\+udp://HOST:PORT"),
        ({"path": "syslog+udp://h:1", "syslog": {"max_message_bytes": 10}}, "greater than or equal to 480"),
        ({"path": "/var/log/mail.log", "syslog": {}}, "options for a syslog location"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load(None, {"sources": [source]})


def test_the_daemon_serves_what_syslog_sent(tmp_path):
    need_binary("logger")
    port = free_port()
    state = str(tmp_path / "state.json")
    with Daemon("--source", f"mx=postfix:syslog+tcp://127.0.0.1:{port}", "--state-file", state) as d:
        smp = d.metrics()
        assert value(smp, "mail_exporter_dropped_total", source="mx", reason="malformed") == 0
        assert value(smp, "mail_exporter_source_up", source="mx") == 1
        logger(port, "--tcp", "--rfc5424", "--octet-count")

        def counted(s):
            return value(
                s,
                "mail_responses_total",
                source="mx",
                code="250",
                type="smtp",
                outcome="success",
                direction="outbound",
            )

        smp = d.wait_for(lambda s: counted(s) == 1)
        assert counted(smp) == 1
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"not syslog\n")
        smp = d.wait_for(
            lambda s: value(s, "mail_exporter_dropped_total", source="mx", reason="malformed") == 1
        )
        assert value(smp, "mail_exporter_dropped_total", source="mx", reason="malformed") == 1
