"""OpenSMTPD's smtpd log.

Shapes of the log lines smtpd writes since 6.4 (a 16-hex-digit session id, then "smtp", "mta" or
"mda" and an event with key=value fields): "mta delivery ... result="Ok" stat="250 ..."" (quoted),
"mda delivery ... result=Ok stat=Delivered" (not quoted), "smtp failed-command command="..."
result="550 ..."", plus the 5.x form "delivery: TempFail for <evpid>: ..., stat=...".
"""

from __future__ import annotations

import pytest
from helpers import check
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.events import BOUNCED, DEFERRED, INBOUND, OUTBOUND, REJECTED, SENT, Event
from exporter.parsers import get, opensmtpd

H = "Mar  5 09:12:44 mail smtpd[771]: "
S = "8f3a1c2b4d5e6f70 "
MTA = (
    S + "mta delivery evpid=8f3a1c2b4d5e6f71 from=<ann@example.com> to=<bob@example.net> rcpt=<-> "
    'source="192.0.2.1" relay="198.51.100.9 (mx.example.net)" delay=3s '
)
MDA = (
    S + "mda delivery evpid=8f3a1c2b4d5e6f72 from=<ann@example.com> to=<cy@example.com> rcpt=<-> "
    "user=cy delay=0s "
)


def out(code, status, enhanced=None):
    return (Event(code, status, OUTBOUND, enhanced),)


def inbound(code, enhanced=None):
    return (Event(code, REJECTED, INBOUND, enhanced),)


TABLE = [
    pytest.param(
        H + MTA + 'result="Ok" stat="250 2.0.0 Ok: queued as 4TqLmN0Zx1z9"',
        out("250", SENT, "2.0.0"),
        id="relayed",
    ),
    pytest.param(
        H + MTA + 'result="TempFail" stat="421 4.7.0 Try again later"',
        out("421", DEFERRED, "4.7.0"),
        id="temporary failure with the reply",
    ),
    pytest.param(
        H + MTA + 'result="TempFail" stat="Connection refused"',
        out(None, DEFERRED),
        id="temporary failure without a reply",
    ),
    pytest.param(
        H + MTA + 'result="PermFail" stat="550 5.1.1 <bob@example.net>: Recipient address rejected"',
        out("550", BOUNCED, "5.1.1"),
        id="permanent failure",
    ),
    pytest.param(
        H + MTA + 'result="PermFail" stat="Loop detected"',
        out(None, BOUNCED),
        id="loop",
    ),
    pytest.param(H + MDA + "result=Ok stat=Delivered", out(None, SENT), id="local delivery"),
    pytest.param(
        H + MDA + "result=TempFail stat=Error (mail.maildir: No space left on device)",
        out(None, DEFERRED),
        id="local temporary failure",
    ),
    pytest.param(
        H + MDA + "result=PermFail stat=Error (exited with status 67)",
        out(None, BOUNCED),
        id="local permanent failure",
    ),
    pytest.param(
        H + S + 'smtp failed-command command="RCPT TO:<nobody@example.com>" result="550 Invalid recipient: '
        '<nobody@example.com>"',
        inbound("550"),
        id="recipient rejected",
    ),
    pytest.param(
        H + S + 'smtp failed-command command="DATA" result="421 4.7.0 Temporary failure, please retry"',
        inbound("421", "4.7.0"),
        id="temporary reject",
    ),
    pytest.param(
        H + S + 'smtp failed-command command="MAIL FROM:<a@example.net>" result="530 5.5.1 Invalid command: '
        'Must issue an AUTH command first"',
        inbound("530", "5.5.1"),
        id="authentication required",
    ),
    pytest.param(
        H + S + "smtp connected address=203.0.113.5 host=client.example.com",
        (),
        id="connection",
    ),
    pytest.param(
        H + S + "smtp message msgid=5e1f2a3b size=2210 nrcpt=1 proto=ESMTP",
        (),
        id="message accepted",
    ),
    pytest.param(H + S + "smtp disconnected reason=quit", (), id="disconnection"),
    pytest.param(
        H + S + "mta connecting address=smtp://198.51.100.9:25 host=mx.example.net",
        (),
        id="outbound connection",
    ),
    pytest.param(
        H + S + "smtp authentication user=ann result=permfail",
        (),
        id="authentication failure carries no reply code",
    ),
    pytest.param(
        H + "delivery: Ok for 8f3a1c2b4d5e6f73: from=<ann@example.com>, to=<dee@example.com>, user=dee, "
        "method=maildir, delay=1s, stat=Delivered",
        out(None, SENT),
        id="5.x local delivery",
    ),
    pytest.param(
        H + "relay: TempFail for 8f3a1c2b4d5e6f74: from=<ann@example.com>, to=<eve@example.org>, "
        "relay=mx.example.org [198.51.100.7], delay=5s, stat=451 4.7.1 Greylisted",
        out("451", DEFERRED, "4.7.1"),
        id="5.x relay deferral",
    ),
    pytest.param(
        MTA + 'result="Ok" stat="250 2.0.0 Ok: queued as 9QwErTy"',
        out("250", SENT, "2.0.0"),
        id="session line without syslog header",
    ),
    pytest.param(H + "info: OpenSMTPD 7.4.0-portable starting", (), id="start-up"),
    pytest.param(
        "Dec  4 15:36:10 host postfix/smtpd[123]: connect from client.example.com[203.0.113.5]",
        None,
        id="Postfix smtpd line",
    ),
    pytest.param("delivery: Ok for 8f3a1c2b4d5e6f73: stat=Delivered", None, id="no syslog header"),
]


@pytest.mark.parametrize(("line", "expected"), TABLE)
def test_parse(line, expected):
    assert opensmtpd.parse(line) == expected


def test_trailing_carriage_return_is_tolerated():
    assert opensmtpd.parse(H + MDA + "result=Ok stat=Delivered\r") == out(None, SENT)


def test_registry_and_options():
    assert get("opensmtpd") is opensmtpd
    assert (opensmtpd.NAME, opensmtpd.APP_LOG) == ("opensmtpd", False)
    assert opensmtpd.make_parser() is opensmtpd.parse
    with pytest.raises(TypeError, match="no options"):
        opensmtpd.make_parser(tag="x")


OWN = [param.values[0] for param in TABLE if param.values[1] is not None]
FOREIGN = [
    "Dec  4 15:36:10 host postfix/smtp[123]: 4BC2D3E4F5: to=<a@example.com>, "
    "relay=mx.example.com[192.0.2.1]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, "
    "status=sent (250 2.0.0 Ok: queued as 1A2B3C)",
    "Dec 04 15:36:11 host postfix/smtpd[456]: NOQUEUE: reject: RCPT from unknown[192.0.2.9]: 554 5.7.1 "
    "<x@example.org>: Relay access denied; from=<a@example.net> to=<x@example.org> proto=ESMTP helo=<h>",
    "Mar  5 09:12:44 mail sm-mta[3344]: 425ACkRq012345: to=<a@example.net>, delay=00:00:02, "
    "mailer=esmtp, pri=120452, relay=mx.example.net. [192.0.2.30], dsn=2.0.0, stat=Sent (Ok)",
    "@400000006543aa0b2c3d4e5f delivery 31: success: did_1+0+0/",
    "[NOTICE] [6A1F-22.1.1] [outbound] recipient <c@example.org> rejected: 550 5.7.1 Service unavailable",
    "Mar  5 09:12:44 mail courieresmtp: id=0038C081.4D026173.000051A4,from=<a@example.com>,"
    "addr=<b@example.net>,status: failure",
]


@pytest.mark.parametrize("line", OWN)
def test_sniff_recognises_opensmtpd_lines(line):
    assert opensmtpd.sniff(line)


@pytest.mark.parametrize("line", FOREIGN)
def test_sniff_rejects_other_formats(line):
    assert not opensmtpd.sniff(line)
    assert opensmtpd.parse(line) is None


@settings(max_examples=200, deadline=None, database=None)
@given(st.text())
def test_any_text_gives_none_or_events(text):
    check(opensmtpd.parse(text))


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.sampled_from(["", H]),
    st.sampled_from(["mta delivery ", "mda delivery ", "smtp failed-command "]),
    st.text(max_size=200),
)
def test_any_fields_after_a_session_never_raise(header, event, fields):
    result = opensmtpd.parse(header + S + event + fields)
    assert result is not None
    check(result)


@settings(max_examples=200, deadline=None, database=None)
@given(st.sampled_from(OWN), st.integers(min_value=0, max_value=300), st.text(max_size=120))
def test_damaged_lines_never_raise(line, cut, tail):
    check(opensmtpd.parse(line[:cut] + tail))
    check(opensmtpd.parse(line[:cut] + "\x00" + tail + line[cut:]))
