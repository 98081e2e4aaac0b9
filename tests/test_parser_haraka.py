"""Haraka's log in its default text format: "[LEVEL] [uuid] [origin] message".

The messages are those Haraka's connection and outbound code write: the per-recipient outbound
results ("recipient <a> rejected: 550 ...", "... deferred: 451 ..."), the "delivered file=...
response=... rcpts=ok/temp/perm" summary, "Temp failing <file> for N seconds: <why>", "bouncing
mail: <why>", and the inbound dispositions "recipient|sender <a> code=DENY msg=...", "message
mid=... code=..." and "queue code=...". Lines are shown bare, under syslog and under multilog.
"""

from __future__ import annotations

import pytest
from helpers import check
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.events import BOUNCED, DEFERRED, INBOUND, OUTBOUND, REJECTED, SENT, Event
from exporter.parsers import get, haraka

OUT = "[NOTICE] [6A1F0C2E-9B3D-4F1A-8E2B-5C7D9A0B1C2D.1.1] [outbound] "
INFO_OUT = "[INFO] [6A1F0C2E-9B3D-4F1A-8E2B-5C7D9A0B1C2D.1.1] [outbound] "
CORE = "[NOTICE] [6A1F0C2E-9B3D-4F1A-8E2B-5C7D9A0B1C2D.1] [core] "
FILE = "1709626364231_1709626364231_0_4411_Gfg8rO_3_mx.example.com"


def out(code, status, enhanced=None, times=1):
    return (Event(code, status, OUTBOUND, enhanced),) * times


def inbound(code, status, enhanced=None):
    return (Event(code, status, INBOUND, enhanced),)


TABLE = [
    pytest.param(
        "2024-03-05 09:12:44.029305500  " + OUT + f" delivered file={FILE} domain=example.org "
        'host=mx.example.org ip=192.0.2.8 port=25 mode=SMTP tls=Y auth=N response="Ok: queued as 4TqLmN" '
        "delay=0.81 fails=0 rcpts=1/0/0",
        out(None, SENT),
        id="delivered, one recipient, under multilog",
    ),
    pytest.param(
        OUT + f" delivered file={FILE} domain=example.org host=mx.example.org ip=192.0.2.8 port=25 "
        'mode=SMTP tls=Y auth=N response="Message accepted" delay=1.2 fails=1 rcpts=3/0/1',
        out(None, SENT, times=3),
        id="delivered, three recipients accepted",
    ),
    pytest.param(
        OUT + f'delivered file={FILE} domain="example.net" host="mx.example.net" ip=192.0.2.9 '
        'response="250 2.0.0 OK 1709626364" delay=0.5 fails=0',
        out("250", SENT, "2.0.0"),
        id="delivered, older form with the code in the response",
    ),
    pytest.param(
        "Mar  5 09:12:44 mx haraka[411]: " + OUT + "recipient <ann@example.org> rejected: 550 5.1.1 The "
        "email account that you tried to reach does not exist",
        out("550", BOUNCED, "5.1.1"),
        id="recipient rejected by the remote, under syslog",
    ),
    pytest.param(
        OUT + "recipient <bob@example.org> deferred: 451 4.7.1 Greylisted, try again later",
        out("451", DEFERRED, "4.7.1"),
        id="recipient deferred by the remote",
    ),
    pytest.param(
        INFO_OUT + f"Temp failing {FILE} for 64 seconds: Upstream error: 421 4.7.0 Too many connections",
        out("421", DEFERRED, "4.7.0"),
        id="message deferred with the remote reply",
    ),
    pytest.param(
        INFO_OUT + f"Temp failing {FILE} for 4096 seconds: Tried all MXs",
        out(None, DEFERRED),
        id="message deferred, no host answered",
    ),
    pytest.param(
        INFO_OUT + f"Temp failing {FILE} for 64 seconds: Some recipients temp failed: <bob@example.org>",
        (),
        id="sum of recipient deferrals already counted",
    ),
    pytest.param(
        INFO_OUT + "bouncing mail: Some recipients failed: <ann@example.org>",
        (),
        id="sum of recipient failures already counted",
    ),
    pytest.param(
        INFO_OUT + "bouncing mail: 554 5.7.1 Message rejected as spam",
        out("554", BOUNCED, "5.7.1"),
        id="message bounced with the remote reply",
    ),
    pytest.param(
        INFO_OUT + "bouncing mail: Too many failures (Upstream error: 421 4.7.0 Try later)",
        out(None, BOUNCED),
        id="message given up after retries",
    ),
    pytest.param(
        "[NOTICE] [46095497-C02F.1.1] [outbound] [FAEFC4FA-E8EF] recipient domain <example.net> rejected: "
        "521 Service not available",
        (),
        id="domain-level line followed by its bounce line",
    ),
    pytest.param(
        CORE
        + 'recipient <nobody@example.com> code=DENY msg="I cannot deliver mail for <nobody@example.com>" '
        'sender="c@example.net"',
        inbound(None, REJECTED),
        id="recipient refused",
    ),
    pytest.param(
        CORE + 'recipient <dee@example.com> code=DENYSOFT msg="Greylisted" sender="c@example.net"',
        inbound(None, DEFERRED),
        id="recipient refused for now",
    ),
    pytest.param(
        CORE + 'recipient <eve@example.com> code=DENY msg="550 5.1.1 No such user" sender="c@example.net"',
        inbound("550", REJECTED, "5.1.1"),
        id="recipient refused with a reply in the message",
    ),
    pytest.param(
        CORE + 'recipient <fay@example.com> code=OK msg="" sender="c@example.net"',
        (),
        id="recipient accepted",
    ),
    pytest.param(
        CORE + 'sender <spam@bad.example> code=DENYDISCONNECT msg="Sender on a blocklist"',
        inbound(None, REJECTED),
        id="sender refused",
    ),
    pytest.param(
        CORE + 'message mid="<5e1f@client.example>" size=2210 rcpts=1/0/0 delay=0.2 code=DENY '
        'msg="Message rejected as spam"',
        inbound(None, REJECTED),
        id="message refused after data",
    ),
    pytest.param(
        CORE + 'queue code=DENYSOFT msg="Queue temporarily unavailable (6A1F0C2E.1)"',
        inbound(None, DEFERRED),
        id="queueing refused for now",
    ),
    pytest.param(CORE + 'queue code=OK msg="Message Queued (6A1F0C2E.1)"', (), id="message queued"),
    pytest.param(
        "[NOTICE] [6A1F0C2E-9B3D-4F1A-8E2B-5C7D9A0B1C2D] [core] disconnect ip=203.0.113.5 "
        "rdns=client.example helo=client.example relay=N early=N esmtp=Y tls=N pipe=N errors=0 txns=1 "
        "rcpts=0/0/1 msgs=0/0/0 "
        'bytes=0 lr="550 I cannot deliver mail for <nobody@example.com>" time=1.2',
        (),
        id="connection summary",
    ),
    pytest.param(
        "[PROTOCOL] [6A1F0C2E-9B3D-4F1A-8E2B-5C7D9A0B1C2D.1] [core] S: 550 I cannot deliver mail for "
        "<nobody@example.com>",
        (),
        id="protocol trace",
    ),
    pytest.param(
        "2024-03-05T09:12:44.123Z [INFO] [-] [core] [outbound] Failed to get pool entry: Outbound connection "
        "timed out to 198.51.100.27:25",
        (),
        id="pool error with log timestamps",
    ),
    pytest.param(
        "Dec  4 15:36:10 host postfix/smtp[123]: 4BC2D3E4F5: to=<a@example.com>, relay=none, delay=0.1, "
        "delays=0/0/0.1/0, dsn=4.4.1, status=deferred (connect to mx.example.com: Connection refused)",
        None,
        id="Postfix line",
    ),
    pytest.param("recipient <a@example.org> rejected: 550 5.1.1 no header", None, id="no header"),
]


@pytest.mark.parametrize(("line", "expected"), TABLE)
def test_parse(line, expected):
    assert haraka.parse(line) == expected


def test_trailing_carriage_return_is_tolerated():
    line = OUT + "recipient <bob@example.org> deferred: 451 4.7.1 Greylisted\r"
    assert haraka.parse(line) == out("451", DEFERRED, "4.7.1")


def test_unbelievable_recipient_count_is_not_multiplied():
    line = OUT + f'delivered file={FILE} domain=example.org response="Ok" rcpts=999999/0/0'
    assert haraka.parse(line) == ()


def test_registry_and_options():
    assert get("haraka") is haraka
    assert (haraka.NAME, haraka.APP_LOG) == ("haraka", False)
    assert haraka.make_parser() is haraka.parse
    with pytest.raises(TypeError, match="no options"):
        haraka.make_parser(level="NOTICE")


OWN = [param.values[0] for param in TABLE if param.values[1] is not None]
FOREIGN = [
    "Dec  4 15:36:10 host postfix/smtp[123]: 4BC2D3E4F5: to=<a@example.com>, "
    "relay=mx.example.com[192.0.2.1]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, "
    "status=sent (250 2.0.0 Ok: queued as 1A2B3C)",
    "Dec 04 15:36:11 host postfix/smtpd[456]: NOQUEUE: reject: RCPT from unknown[192.0.2.9]: 554 5.7.1 "
    "<x@example.org>: Relay access denied; from=<a@example.net> to=<x@example.org> proto=ESMTP helo=<h>",
    '2024-03-05 09:12:44 1rhXyz-000Abc-4Q => ann@example.net R=dnslookup T=remote_smtp C="250 OK"',
    "Mar  5 09:22:02 mail exim[4411]: [2/3]  [198.51.100.40] (ph10): syntax error in 'From' header",
    "@400000006543aa0b2c3d4e5f delivery 31: success: did_1+0+0/",
    'Mar  5 09:12:44 mail smtpd[771]: 8f3a1c2b4d5e6f70 smtp failed-command command="RCPT TO:<a@b>" '
    'result="550 Invalid recipient: <a@b>"',
    "Apr 10 03:47:57 web courieresmtpd: error,relay=::ffff:192.0.2.77,from=<t@example.com>,"
    "to=<m@example.org>: 550 User unknown.",
]


@pytest.mark.parametrize("line", OWN)
def test_sniff_recognises_haraka_lines(line):
    assert haraka.sniff(line)


@pytest.mark.parametrize("line", FOREIGN)
def test_sniff_rejects_other_formats(line):
    assert not haraka.sniff(line)
    assert haraka.parse(line) is None


@settings(max_examples=200, deadline=None, database=None)
@given(st.text())
def test_any_text_gives_none_or_events(text):
    check(haraka.parse(text))


MESSAGE_STARTS = st.sampled_from(
    [
        "delivered file=x ",
        "recipient <a@b> rejected: ",
        "recipient <a@b> deferred: ",
        "recipient <a@b> code=DENY",
        "Temp failing x for 64 seconds: ",
        "bouncing mail: ",
        "queue code=DENYSOFT msg=",
        "",
    ]
)


@settings(max_examples=200, deadline=None, database=None)
@given(st.sampled_from([OUT, CORE]), MESSAGE_STARTS, st.text(max_size=200))
def test_any_message_behind_a_header_is_of_the_format(header, start, rest):
    result = haraka.parse(header + start + rest)
    assert result is not None
    check(result)


@settings(max_examples=200, deadline=None, database=None)
@given(st.sampled_from(OWN), st.integers(min_value=0, max_value=300), st.text(max_size=120))
def test_damaged_lines_never_raise(line, cut, tail):
    check(haraka.parse(line[:cut] + tail))
    check(haraka.parse(line[:cut] + "\x00" + tail + line[cut:]))
