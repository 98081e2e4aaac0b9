"""Courier's syslog lines.

Courier's delivery modules log each recipient as "id=Q,from=<s>,addr=<r>" followed by the remote
reply (": 550 5.1.1 ..."), by ",size=N,success: <text>" or by the outcome ",status:
success|failure|deferred" (older releases log both the success text and "status: success").
courieresmtpd logs what it refused as "error,relay=<ip>,from=<s>,to=<r>: 550 ..." or
"error,relay=<ip>,msg="535 ...",cmd: ...". courierd's own lines carry no result. The log below
is one parser's input, in order, because an outcome needs the reply logged before it.
"""

from __future__ import annotations

import pytest
from helpers import check
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.events import BOUNCED, DEFERRED, INBOUND, OUTBOUND, REJECTED, SENT, Event
from exporter.parsers import courier, get

H = "Mar  5 09:12:44 mail "
Q1, Q2, Q3, Q4, Q5 = (f"0038C081.65E6E4BC.0000{n}1A4" for n in range(1, 6))


def rcpt(queue_id, addr, module="courieresmtp"):
    return f"{H}{module}: id={queue_id},from=<ann@example.com>,addr=<{addr}>"


def out(code, status, enhanced=None):
    return (Event(code, status, OUTBOUND, enhanced),)


def inbound(code, enhanced=None):
    return (Event(code, REJECTED, INBOUND, enhanced),)


LOG = [
    (H + f"courierd: newmsg,id={Q1}: dns; client.example.com (client.example.com [203.0.113.5])", ()),
    (
        H + f"courierd: started,id={Q1},from=<ann@example.com>,module=esmtp,host=example.net,"
        "addr=<bob@example.net>",
        (),
    ),
    # An older release: the reply, the success text, then "status: success" for the same recipient.
    (rcpt(Q1, "bob@example.net") + ": 250 2.0.0 Ok: queued as 4TqLmN0Zx1z9", ()),
    (
        rcpt(Q1, "bob@example.net") + ",size=2210,success: delivered: mx.example.net [192.0.2.25]",
        out("250", SENT, "2.0.0"),
    ),
    (rcpt(Q1, "bob@example.net") + ",size=2210,status: success", ()),
    (
        rcpt(Q1, "ann@example.com", module="courierlocal") + ",size=2210,success: Message delivered.",
        out(None, SENT),
    ),
    (H + f"courierd: completed,id={Q1}", ()),
    # A permanent failure: the reply line, then the outcome.
    (rcpt(Q2, "cy@example.org") + ": 550 5.1.1 <cy@example.org>: Recipient address rejected", ()),
    (rcpt(Q2, "cy@example.org") + ",status: failure", out("550", BOUNCED, "5.1.1")),
    # A deferral with a multi-line reply: the last line logged is the one that counts.
    (rcpt(Q3, "dee@example.org") + ": 451-4.7.1 Greylisted", ()),
    (rcpt(Q3, "dee@example.org") + ": 451 4.7.1 Please try again later", ()),
    (rcpt(Q3, "dee@example.org") + ",status: deferred", out("451", DEFERRED, "4.7.1")),
    # A deferral without any reply (no connection).
    (rcpt(Q4, "eve@example.org") + ": Connection refused", ()),
    (rcpt(Q4, "eve@example.org") + ",status: deferred", out(None, DEFERRED)),
    # A success logged only as its outcome line.
    (rcpt(Q5, "fay@example.net") + ",size=980,status: success", out(None, SENT)),
    (
        "Apr 10 03:47:57 web courieresmtpd: error,relay=::ffff:203.0.113.77,ident=tmf,from=<t@example.com>,"
        "to=<nobody@example.com>: 550 User unknown.",
        inbound("550"),
    ),
    (
        'Jul  3 23:07:20 mx courieresmtpd: error,relay=::ffff:203.0.113.78,msg="535 Authentication failed.",'
        "cmd: AUTH LOGIN",
        inbound("535"),
    ),
    (
        H + "courieresmtpd: error,relay=::ffff:203.0.113.79,from=<g@example.net>,to=<hy@example.com>: "
        "451 4.7.1 Please try again later",
        inbound("451", "4.7.1"),
    ),
    (
        H + 'courieresmtpd: error,relay=::ffff:203.0.113.80,msg="writev: Connection reset by peer",cmd: DATA',
        (),
    ),
    (H + "courieresmtpd: started,ip=[::ffff:203.0.113.81],port=[25]", ()),
    (
        H + "courierd: Waiting.  shutdown time=none, wakeup time=Tue Mar  5 09:17:44 2024, "
        "queuedelivering=0, inprogress=0",
        (),
    ),
    (H + "courierfilter: zdkimfilter[4411]: verified: dkim=pass (id=@example.com, stat=0)", ()),
    (
        H + "imapd-ssl: LOGIN, user=ann@example.com, ip=[::ffff:203.0.113.5], port=[51234], protocol=IMAP",
        None,
    ),
    (
        "Dec  4 15:36:10 host postfix/smtp[123]: 4BC2D3E4F5: to=<a@example.com>, relay=none, delay=0.1, "
        "delays=0/0/0.1/0, dsn=4.4.1, status=deferred (connect to mx.example.com: Connection refused)",
        None,
    ),
]


def test_log_in_order():
    parse = courier.make_parser()
    for number, (line, expected) in enumerate(LOG):
        assert (number, parse(line)) == (number, expected)


def test_parsers_do_not_share_pending_replies():
    first, second = courier.make_parser(), courier.make_parser()
    first(rcpt(Q2, "cy@example.org") + ": 550 5.1.1 no such user")
    assert second(rcpt(Q2, "cy@example.org") + ",status: failure") == out(None, BOUNCED)
    assert first(rcpt(Q2, "cy@example.org") + ",status: failure") == out("550", BOUNCED, "5.1.1")


def test_pending_replies_are_bounded():
    parse = courier.make_parser()
    for n in range(5000):
        assert parse(rcpt(f"Q{n}", "x@example.org") + ": 452 4.2.2 Mailbox full") == ()
    assert parse(rcpt("Q0", "x@example.org") + ",status: deferred") == out(None, DEFERRED)
    assert parse(rcpt("Q4999", "x@example.org") + ",status: deferred") == out("452", DEFERRED, "4.2.2")


def test_trailing_carriage_return_is_tolerated():
    parse = courier.make_parser()
    assert parse(rcpt(Q2, "cy@example.org") + ": 550 5.1.1 no such user\r") == ()
    assert parse(rcpt(Q2, "cy@example.org") + ",status: failure\r") == out("550", BOUNCED, "5.1.1")


def test_registry_and_options():
    assert get("courier") is courier
    assert (courier.NAME, courier.APP_LOG) == ("courier", False)
    with pytest.raises(TypeError, match="no options"):
        courier.make_parser(module="esmtp")


OWN = [line for line, expected in LOG if expected is not None]
FOREIGN = [
    "Dec  4 15:36:10 host postfix/smtp[123]: 4BC2D3E4F5: to=<a@example.com>, "
    "relay=mx.example.com[192.0.2.1]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, "
    "status=sent (250 2.0.0 Ok: queued as 1A2B3C)",
    "Dec 04 15:36:11 host postfix/smtpd[456]: NOQUEUE: reject: RCPT from unknown[192.0.2.9]: 554 5.7.1 "
    "<x@example.org>: Relay access denied; from=<a@example.net> to=<x@example.org> proto=ESMTP helo=<h>",
    '2024-03-05 09:12:44 1rhXyz-000Abc-4Q => ann@example.net R=dnslookup T=remote_smtp C="250 OK"',
    "Mar  5 09:12:44 mail sm-mta[3344]: 425ACkRq012345: to=<a@example.net>, delay=00:00:02, "
    "mailer=esmtp, pri=120452, relay=mx.example.net. [192.0.2.30], dsn=2.0.0, stat=Sent (Ok)",
    "@400000006543aa0b2c3d4e5f delivery 31: success: did_1+0+0/",
    "[NOTICE] [6A1F-22.1.1] [outbound] recipient <c@example.org> rejected: 550 5.7.1 Service unavailable",
    H + "imapd-ssl: LOGIN FAILED, method=PLAIN, ip=[::ffff:203.0.113.5]",
]


@pytest.mark.parametrize("line", OWN)
def test_sniff_recognises_courier_lines(line):
    assert courier.sniff(line)


@pytest.mark.parametrize("line", FOREIGN)
def test_sniff_rejects_other_formats(line):
    assert not courier.sniff(line)
    assert courier.make_parser()(line) is None


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.text(), max_size=5))
def test_any_text_gives_none_or_events(lines):
    parse = courier.make_parser()
    for line in lines:
        check(parse(line))


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["courieresmtp: id=", "courierlocal: id=", "courieresmtpd: error,relay="]),
            st.text(max_size=150),
        ),
        max_size=6,
    )
)
def test_any_fields_after_a_courier_tag_are_of_the_format(lines):
    parse = courier.make_parser()
    for tag, rest in lines:
        result = parse(H + tag + rest)
        assert result is not None
        check(result)


@settings(max_examples=200, deadline=None, database=None)
@given(st.sampled_from(OWN), st.integers(min_value=0, max_value=300), st.text(max_size=120))
def test_damaged_lines_never_raise(line, cut, tail):
    parse = courier.make_parser()
    check(parse(line[:cut] + tail))
    check(parse(line[:cut] + "\x00" + tail + line[cut:]))
