"""Sendmail's syslog lines.

Shapes as sendmail's operations guide and the sendmail book describe its logging: one line per
delivery attempt with to= (a comma-separated list), ctladdr=, delay=, mailer=, relay=, dsn= and
stat= (Sent (...), Deferred: ..., or the reason of a permanent failure), and ruleset/milter lines
with reject=. Program names sendmail, sm-mta and sm-msp-queue; Solaris' "[ID n facility]" tag.
"""

from __future__ import annotations

import pytest
from helpers import check
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.events import BOUNCED, DEFERRED, INBOUND, OUTBOUND, REJECTED, SENT, Event
from exporter.parsers import get, sendmail

H = "Mar  5 09:12:44 mail sm-mta[3344]: "
TO = "425ACkRq012345: to=<ann@example.net>, delay=00:00:02, xdelay=00:00:02, mailer=esmtp, pri=120452, "


def out(code, status, enhanced=None, times=1):
    return (Event(code, status, OUTBOUND, enhanced),) * times


def inbound(code, enhanced):
    return (Event(code, REJECTED, INBOUND, enhanced),)


TABLE = [
    pytest.param(
        H + TO + "relay=mx.example.net. [192.0.2.30], dsn=2.0.0, stat=Sent (425AClx9004411 Message "
        "accepted for delivery)",
        out(None, SENT, "2.0.0"),
        id="sent, reply text without its code",
    ),
    pytest.param(
        H + TO + "relay=mx.example.net. [192.0.2.30], dsn=2.0.0, stat=Sent (250 2.0.0 Ok: queued as 4TqLmN)",
        out("250", SENT, "2.0.0"),
        id="sent, reply text with its code",
    ),
    pytest.param(
        H + TO + "relay=mx.example.net. [192.0.2.30], dsn=2.0.0, stat=Sent (<5e1f@example.com> 250 2.0.0 Ok)",
        out("250", SENT, "2.0.0"),
        id="sent, code after a message id",
    ),
    pytest.param(
        "Mar  5 09:12:45 mail sendmail[3350]: 425ACkRr012346: to=<bob@example.com>, "
        "ctladdr=<root@example.com> (0/0), delay=00:00:00, xdelay=00:00:00, mailer=local, pri=31123, "
        "dsn=2.0.0, stat=Sent",
        out(None, SENT, "2.0.0"),
        id="local delivery",
    ),
    pytest.param(
        H + "425ACkRs012347: to=<cy@example.net>,<dee@example.net>, delay=00:00:03, xdelay=00:00:03, "
        "mailer=esmtp, pri=150990, relay=mx.example.net. [192.0.2.30], dsn=2.0.0, stat=Sent (Ok)",
        out(None, SENT, "2.0.0", times=2),
        id="two recipients on one line",
    ),
    pytest.param(
        "Mar  5 09:12:46 mail sendmail[3351]: 425ACkRt012348: to=eve,fay,gus, ctladdr=root (0/0), "
        "delay=00:00:01, xdelay=00:00:00, mailer=relay, pri=90525, relay=[127.0.0.1] [127.0.0.1], "
        "dsn=2.0.0, stat=Sent (425ACkRu012349 Message accepted for delivery)",
        out(None, SENT, "2.0.0", times=3),
        id="three local names",
    ),
    pytest.param(
        H
        + TO
        + "relay=mx.example.org. [198.51.100.7], dsn=4.3.0, stat=Deferred: 421 4.3.0 Service not available",
        out("421", DEFERRED, "4.3.0"),
        id="deferred with the reply",
    ),
    pytest.param(
        H + TO + "relay=mx.example.org., dsn=4.0.0, stat=Deferred: Connection refused by mx.example.org.",
        out(None, DEFERRED, "4.0.0"),
        id="deferred, connection refused",
    ),
    pytest.param(
        H + TO + "relay=mx.example.org., dsn=4.0.0, stat=Deferred",
        out(None, DEFERRED, "4.0.0"),
        id="deferred without a reason",
    ),
    pytest.param(
        H + TO + "relay=mx.example.org. [198.51.100.7], dsn=5.1.1, stat=User unknown",
        out(None, BOUNCED, "5.1.1"),
        id="permanent failure",
    ),
    pytest.param(
        H + TO + "relay=mx.example.invalid., dsn=5.1.2, stat=Host unknown (Name server: "
        "mx.example.invalid.: host not found)",
        out(None, BOUNCED, "5.1.2"),
        id="host unknown",
    ),
    pytest.param(
        H + TO + "relay=mx.example.org. [198.51.100.7], dsn=5.1.1, stat=User unknown, "
        "reply=550 5.1.1 <ann@example.net>... User unknown",
        out("550", BOUNCED, "5.1.1"),
        id="reply field",
    ),
    pytest.param(
        "Mar  5 09:12:47 mail sendmail[3352]: 425ACkRv012350: to=hq@example.com, delay=00:00:00, "
        "mailer=relay, pri=32651, stat=queued",
        (),
        id="queued for a later run",
    ),
    pytest.param(
        H + "425ACkRq012345: from=<sender@example.com>, size=2651, class=0, nrcpts=1, "
        "msgid=<20240305091244.425ACkRq012345@example.com>, proto=ESMTP, daemon=MTA, "
        "relay=client.example.com [203.0.113.5]",
        (),
        id="sender line",
    ),
    pytest.param(
        H + "ruleset=check_rcpt, arg1=<victim@example.org>, relay=spam.example [203.0.113.9], "
        "reject=550 5.7.1 <victim@example.org>... Relaying denied",
        inbound("550", "5.7.1"),
        id="relaying denied",
    ),
    pytest.param(
        H + "425ACkRw012351: ruleset=check_mail, arg1=<nobody@nowhere.example>, relay=[203.0.113.10], "
        "reject=553 5.1.8 <nobody@nowhere.example>... Domain of sender address nobody@nowhere.example "
        "does not exist",
        inbound("553", "5.1.8"),
        id="sender domain rejected",
    ),
    pytest.param(
        H + "425ACkRx012352: Milter: from=<g@example.net>, reject=451 4.7.1 Greylisting in action, "
        "please come back later",
        inbound("451", "4.7.1"),
        id="milter temporary reject",
    ),
    pytest.param(
        H + "425ACkRy012353: Milter: data, reject=554 5.7.1 Rejected by content filter",
        inbound("554", "5.7.1"),
        id="milter reject after data",
    ),
    pytest.param(
        "Mar  5 09:12:48 mail sendmail[3353]: [ID 801593 mail.info] 425ACkRz012354: to=<hy@example.net>, "
        "delay=00:00:01, xdelay=00:00:01, mailer=esmtp, pri=120377, relay=mx.example.net. [192.0.2.31], "
        "dsn=2.0.0, stat=Sent (ok 1709626368 qp 26344)",
        out(None, SENT, "2.0.0"),
        id="Solaris syslog tag",
    ),
    pytest.param(
        "2024-03-05T09:12:49.123456+01:00 mail sendmail[3354]: 425ACkS0012355: to=<io@example.net>, "
        "delay=00:00:01, mailer=esmtp, pri=120377, relay=mx.example.net. [192.0.2.31], dsn=2.0.0, stat=Sent",
        out(None, SENT, "2.0.0"),
        id="RFC 3339 syslog timestamp",
    ),
    pytest.param(
        H + "STARTTLS=client, relay=mx.example.net., version=TLSv1.3, verify=OK, "
        "cipher=TLS_AES_256_GCM_SHA384, bits=256/256",
        (),
        id="TLS line",
    ),
    pytest.param(
        H + "425ACkS1012356: client.example.com [203.0.113.5] did not issue MAIL/EXPN/VRFY/ETRN during "
        "connection to MTA",
        (),
        id="idle connection",
    ),
    pytest.param(
        "Mar  5 09:12:50 mail sm-msp-queue[3360]: starting daemon (8.17.1): queueing@00:30:00",
        (),
        id="daemon start",
    ),
    pytest.param(
        "Dec  4 15:36:10 host postfix/smtp[123]: 4BC2D3E4F5: to=<a@example.com>, "
        "relay=mx.example.com[192.0.2.1]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, "
        "status=sent (250 2.0.0 Ok: queued as 1A2B3C)",
        None,
        id="Postfix delivery line",
    ),
    pytest.param("to=<a@example.com>, dsn=5.1.1, stat=User unknown", None, id="no syslog header"),
]


@pytest.mark.parametrize(("line", "expected"), TABLE)
def test_parse(line, expected):
    assert sendmail.parse(line) == expected


def test_trailing_carriage_return_is_tolerated():
    line = H + TO + "relay=mx.example.net., dsn=2.0.0, stat=Sent (250 2.0.0 Ok)\r"
    assert sendmail.parse(line) == out("250", SENT, "2.0.0")


def test_registry_and_options():
    assert get("sendmail") is sendmail
    assert (sendmail.NAME, sendmail.APP_LOG) == ("sendmail", False)
    assert sendmail.make_parser() is sendmail.parse
    with pytest.raises(TypeError, match="no options"):
        sendmail.make_parser(verbose=True)


OWN = [param.values[0] for param in TABLE if param.values[1] is not None]
FOREIGN = [
    "Dec  4 15:36:10 host postfix/smtp[123]: 4BC2D3E4F5: to=<a@example.com>, relay=none, delay=0.1, "
    "delays=0/0/0.1/0, dsn=4.4.1, status=deferred (connect to mx.example.com: Connection refused)",
    "Dec 04 15:36:11 host postfix/smtpd[456]: NOQUEUE: reject: RCPT from unknown[192.0.2.9]: 554 5.7.1 "
    "<x@example.org>: Relay access denied; from=<a@example.net> to=<x@example.org> proto=ESMTP helo=<h>",
    '2024-03-05 09:12:44 1rhXyz-000Abc-4Q => ann@example.net R=dnslookup T=remote_smtp C="250 OK"',
    "Mar  5 09:12:44 mail smtpd[771]: 8f3a1c2b4d5e6f70 mta delivery evpid=8f3a1c2b4d5e6f71 "
    'from=<a@example.com> to=<b@example.net> rcpt=<-> source="192.0.2.1" relay="198.51.100.9" delay=3s '
    'result="Ok" stat="250 Ok"',
    "Apr 10 03:47:57 web courieresmtpd: error,relay=::ffff:192.0.2.77,from=<t@example.com>,"
    "to=<m@example.org>: 550 User unknown.",
]


@pytest.mark.parametrize("line", OWN)
def test_sniff_recognises_sendmail_lines(line):
    assert sendmail.sniff(line)


@pytest.mark.parametrize("line", FOREIGN)
def test_sniff_rejects_other_formats(line):
    assert not sendmail.sniff(line)
    assert sendmail.parse(line) is None


@settings(max_examples=200, deadline=None, database=None)
@given(st.text())
def test_any_text_gives_none_or_events(text):
    check(sendmail.parse(text))


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(max_size=300))
def test_any_message_behind_a_sendmail_header_is_of_the_format(message):
    result = sendmail.parse(H + message)
    assert result is not None
    check(result)


@settings(max_examples=200, deadline=None, database=None)
@given(st.sampled_from(OWN), st.integers(min_value=0, max_value=300), st.text(max_size=120))
def test_damaged_lines_never_raise(line, cut, tail):
    check(sendmail.parse(line[:cut] + tail))
    check(sendmail.parse(line[:cut] + "\x00" + tail + line[cut:]))
