"""Exim main log.

Lines follow the shapes the Exim specification's "Log files" chapter documents (flags <= => -> >>
*> ** ==, the C= confirmation, the pid and millisec selectors, syslog with and without Exim's own
timestamp and its [n/m] split markers) and the rejection lines Exim's ACLs write. Names and
addresses are documentation ones.
"""

from __future__ import annotations

import pytest
from helpers import check
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.events import BOUNCED, DEFERRED, INBOUND, OUTBOUND, REJECTED, SENT, Event
from exporter.parsers import exim, get


def out(code, status, enhanced=None):
    return (Event(code, status, OUTBOUND, enhanced),)


def inbound(status):
    return (Event(None, status, INBOUND, None),)


TABLE = [
    pytest.param(
        "2024-03-05 09:12:44 1rhXyz-000Abc-4Q => ann@example.net R=dnslookup T=remote_smtp "
        "H=mx1.example.net [192.0.2.25] X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=yes "
        'C="250 2.0.0 Ok: queued as 4TqLmN0Zx1z9"',
        out("250", SENT, "2.0.0"),
        id="remote delivery with C=",
    ),
    pytest.param(
        "2024-03-05 09:12:44 1rhXyz-000Abc-4Q -> bea@example.net R=dnslookup T=remote_smtp "
        'H=mx1.example.net [192.0.2.25]* C="250 OK id=1rhXz0-0003Qm-2b"',
        out("250", SENT),
        id="additional address in the same delivery",
    ),
    pytest.param(
        "2024-03-05 09:13:02 1rhY01-000Bcd-7T => carol <carol@example.com> R=local_user T=local_delivery",
        out(None, SENT),
        id="local delivery has no C=",
    ),
    pytest.param(
        "2024-03-05 09:14:10 1rhY1a-000Cde-2K >> dave@example.net R=dnslookup T=remote_smtp "
        'H=mx.example.net [192.0.2.26] C="250 2.0.0 Ok: queued as 9QwErTy"',
        out("250", SENT, "2.0.0"),
        id="cutthrough delivery",
    ),
    pytest.param(
        "2024-03-05 09:14:30 1rhY1b-000Cdf-3L *> erin@example.net R=dnslookup T=remote_smtp "
        "H=mx.example.net [192.0.2.26]",
        (),
        id="delivery suppressed by -N",
    ),
    pytest.param(
        "2024-03-05 09:15:00 1rhY2c-000Def-5M == frank@example.org R=dnslookup T=remote_smtp defer (-44) "
        "H=mx.example.org [198.51.100.7]: SMTP error from remote mail server after RCPT "
        "TO:<frank@example.org>: 451 4.7.1 Greylisted, please try again later",
        out("451", DEFERRED, "4.7.1"),
        id="deferral with the remote reply",
    ),
    pytest.param(
        "2024-03-05 09:15:05 1rhY2d-000Deg-6N == grace@example.org R=dnslookup T=remote_smtp "
        "defer (111): Connection refused",
        out(None, DEFERRED),
        id="deferral without a reply",
    ),
    pytest.param(
        "2024-03-05 09:15:10 1rhY2e-000Deh-7P ** hal@example.org R=dnslookup T=remote_smtp: "
        "SMTP error from remote mailer after pipelined RCPT TO:<hal@example.org>: host "
        "mx3.example.org [198.51.100.63]: 553 5.3.0 <hal@example.org>...Addressee unknown",
        out("553", BOUNCED, "5.3.0"),
        id="failure, older form with host before the reply",
    ),
    pytest.param(
        "2024-03-05 09:15:20 [7702] 1rhY2f-000Dei-8Q ** ivy@example.com R=dnslookup T=remote_smtp "
        "H=mx.example.com [203.0.113.30]: SMTP error from remote mail server after RCPT "
        "TO:<ivy@example.com>: 550-5.1.1 The email account that you tried to reach does not "
        "exist.\\n550 5.1.1 Please double-check the recipient's address",
        out("550", BOUNCED, "5.1.1"),
        id="failure with a multi-line reply and the pid selector",
    ),
    pytest.param(
        "2024-03-05 09:15:30 1rhY2g-000Dej-9R ** jay@nowhere.example.invalid: Unrouteable address",
        out(None, BOUNCED),
        id="failure without a reply",
    ),
    pytest.param(
        "2024-03-05 09:15:40 1rhY2h-000Dek-0S ** kai@example.org R=lookuphost T=remote_smtp "
        "H=mail1.example.org [198.51.100.12]: SMTP error from remote mail server after RCPT "
        "TO:<kai@example.org>: 550 #5.1.0 Address rejected.",
        out("550", BOUNCED, "5.1.0"),
        id="enhanced code written with a hash",
    ),
    pytest.param(
        "2024-03-05 09:16:00 1rhY3a-000Efa-1T <= lee@example.com H=client.example.com [203.0.113.5] "
        "P=esmtpsa X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no A=plain:lee S=2210 id=abc@example.com",
        (),
        id="arrival",
    ),
    pytest.param("2024-03-05 09:16:01 1rhY3a-000Efa-1T Completed", (), id="completion"),
    pytest.param("2024-03-05 09:16:02 Start queue run: pid=3152", (), id="queue runner"),
    pytest.param(
        "2024-03-05 09:20:00 H=mx.spam.example [203.0.113.9] F=<x@spam.example> rejected RCPT "
        "<ivan@example.com>: relay not permitted",
        inbound(REJECTED),
        id="recipient rejected",
    ),
    pytest.param(
        "2024-03-05 09:20:05 H=(helo.example) [203.0.113.10] F=<y@example.net> temporarily rejected "
        "RCPT <judy@example.com>: greylisted.",
        inbound(DEFERRED),
        id="recipient temporarily rejected",
    ),
    pytest.param(
        "2024-03-05 09:21:10 [8811] 1rhZ2b-000Def-9L H=(laptop) [203.0.113.44]:51234 I=[192.0.2.1]:25 "
        "F=<kim@example.org> rejected after DATA: This message contains a virus (Eicar-Signature)",
        inbound(REJECTED),
        id="message rejected after DATA",
    ),
    pytest.param(
        "2024-03-05 09:21:20 H=(bad.example) [203.0.113.12] rejected MAIL <spam@bad.example>: Access denied",
        inbound(REJECTED),
        id="sender rejected",
    ),
    pytest.param(
        '2024-03-05 09:21:30 H=[203.0.113.66] rejected connection in "connect" ACL: listed at dnsbl.example',
        inbound(REJECTED),
        id="connection rejected",
    ),
    pytest.param(
        "2024-03-05 09:21:40 1rhZ2c-000Deg-1A F=<lou@example.net> H=relay.example.net [198.51.100.20] "
        "P=esmtp temporarily rejected by local_scan(): Temporary local problem",
        inbound(DEFERRED),
        id="temporarily rejected by local_scan",
    ),
    pytest.param(
        "Mar  5 09:22:00 mail exim[4411]: 2024-03-05 09:22:00 1rhZ3c-000Efg-1M => max@example.net "
        'R=dnslookup T=remote_smtp H=mx.example.net [192.0.2.27] C="250 OK"',
        out("250", SENT),
        id="through syslog",
    ),
    pytest.param(
        "Mar  5 09:22:01 mail exim[4411]: 1rhZ3d-000Efg-2N == nia@example.net R=dnslookup "
        "T=remote_smtp defer (-53): retry time not reached for any host",
        out(None, DEFERRED),
        id="through syslog without Exim's timestamp",
    ),
    pytest.param(
        "Mar  5 09:22:02 mail exim[4411]: [2/3]  [198.51.100.40] (ph10): syntax error in 'From' header",
        (),
        id="second part of a line syslog split",
    ),
    pytest.param(
        "2026-09-25 14:22:27.118 +0200 1xA6ol-000000037ku-33mU => olga <olga@example.com> "
        'R=mailbox T=lmtp C="250 2.0.0 <olga@example.com> yP3fLKODtmpFXQsA Saved"',
        out("250", SENT, "2.0.0"),
        id="Exim 4.97 message id with millisec and log_timezone",
    ),
    pytest.param(
        "2024-03-05 09:23:00 1rhZ4d-000Fgh-3N H=mx.example.org [198.51.100.7]: SMTP error from remote "
        "mail server after RCPT TO:<pat@example.org>: 550 5.7.1 Sender rejected by policy",
        (),
        id="remote error line that precedes the ** line",
    ),
    pytest.param(
        "2024-03-05 09:23:10 1rhZ4e-000Fgi-4P => :blackhole: <hole@example.com> R=blackhole_router",
        (),
        id="blackholed, nothing delivered",
    ),
    pytest.param(
        "2024-03-05 09:23:20 H=[203.0.113.70] rejected EHLO or HELO localhost: Invalid HELO name",
        inbound(REJECTED),
        id="HELO rejected",
    ),
    pytest.param(
        "Dec  4 15:36:10 host postfix/smtp[123]: 4BC2D3E4F5: to=<a@example.com>, relay=none, "
        "delay=0.1, delays=0/0/0.1/0, dsn=4.4.1, status=deferred (connect to mx.example.com: "
        "Connection refused)",
        None,
        id="Postfix line",
    ),
    pytest.param("H=[203.0.113.70] rejected RCPT <a@example.com>: no timestamp", None, id="no header"),
    pytest.param("", None, id="empty"),
]


@pytest.mark.parametrize(("line", "expected"), TABLE)
def test_parse(line, expected):
    assert exim.parse(line) == expected


def test_trailing_carriage_return_is_tolerated():
    line = '2024-03-05 09:12:44 1rhXyz-000Abc-4Q => ann@example.net R=r T=t C="250 OK"\r'
    assert exim.parse(line) == out("250", SENT)


def test_registry_and_options():
    assert get("exim") is exim
    assert (exim.NAME, exim.APP_LOG) == ("exim", False)
    assert exim.make_parser() is exim.parse
    with pytest.raises(TypeError, match="no options"):
        exim.make_parser(direction="inbound")


OWN = [param.values[0] for param in TABLE if param.values[1] is not None]
FOREIGN = [
    "Dec  4 15:36:10 host postfix/smtp[123]: 4BC2D3E4F5: to=<a@example.com>, "
    "relay=mx.example.com[192.0.2.1]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, "
    "status=sent (250 2.0.0 Ok: queued as 1A2B3C)",
    "Dec 04 15:36:11 host postfix/smtpd[456]: NOQUEUE: reject: RCPT from unknown[192.0.2.9]: "
    "554 5.7.1 <x@example.org>: Relay access denied; from=<a@example.net> to=<x@example.org> "
    "proto=ESMTP helo=<h>",
    "Mar  5 09:12:44 mail sm-mta[3344]: 425ACkRq012345: to=<a@example.net>, delay=00:00:02, "
    "mailer=esmtp, pri=120452, relay=mx.example.net. [192.0.2.30], dsn=2.0.0, stat=Sent (Ok)",
    "@400000006543aa0b2c3d4e5f delivery 31: success: did_1+0+0/",
    "2024-03-05 09:12:44.029305500 delivery 31: success: did_1+0+0/",
    "[NOTICE] [6A1F-22.1.1] [outbound] recipient <c@example.org> rejected: 550 5.7.1 Service unavailable",
]


@pytest.mark.parametrize("line", OWN)
def test_sniff_recognises_exim_lines(line):
    assert exim.sniff(line)


# An IIS W3C line starts with a date and time like Exim's own lines: parse cannot tell it from an
# Exim line it does not know (so it is "ignored"), but sniff must not claim it.
IIS = "2024-03-05 09:12:44 192.0.2.5 OutboundConnectionResponse SMTPSVC1 MX 192.0.2.2 0 - - 250+OK 0 0"


@pytest.mark.parametrize("line", [*FOREIGN, IIS])
def test_sniff_rejects_other_formats(line):
    assert not exim.sniff(line)


@pytest.mark.parametrize("line", FOREIGN)
def test_other_formats_are_not_parsed(line):
    assert exim.parse(line) is None


@settings(max_examples=200, deadline=None, database=None)
@given(st.text())
def test_any_text_gives_none_or_events(text):
    check(exim.parse(text))


@settings(max_examples=200, deadline=None, database=None)
@given(st.sampled_from(OWN), st.integers(min_value=0, max_value=300), st.text(max_size=120))
def test_damaged_lines_never_raise(line, cut, tail):
    check(exim.parse(line[:cut] + tail))
    check(exim.parse(line[:cut] + "\x00" + tail + line[cut:]))


def test_huge_line_is_parsed():
    line = "2024-03-05 09:12:44 1rhXyz-000Abc-4Q ** a@example.org: SMTP error from remote mail server after "
    assert exim.parse(line + "x: " * 200_000) == out(None, BOUNCED)
    assert exim.parse(line + "x: " * 200_000 + "y: 554 5.7.1 no") == out("554", BOUNCED, "5.7.1")
