"""The Postfix parser on real log line shapes (Postfix's documentation and logs of a real Postfix 3.7)."""

from __future__ import annotations

import pytest
from helpers import check
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.events import Event
from exporter.parsers import postfix

H = "Dec  4 15:36:10 mx1 "  # classic syslog header, space-padded day
H0 = "Dec 04 15:36:10 mx1 "  # zero-padded day, as Postfix's own maillog_file writes it
H3339 = "2026-12-04T15:36:10.123456+01:00 mx1 "

OUT, IN = "outbound", "inbound"

CASES = [
    # --- delivery agents: one line per recipient ---
    (
        H + "postfix/smtp[4123]: 7A1B82C3D4: to=<ann@example.net>, relay=mx.example.net[192.0.2.10]:25, "
        "delay=1.2, delays=0.1/0.02/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4F2C1D)",
        [Event("250", "sent", OUT, "2.0.0")],
    ),
    (
        H0 + "postfix/smtp[4123]: 7A1B82C3D4: to=<bob@example.net>, orig_to=<b@example.org>, "
        "relay=mx.example.net[192.0.2.10]:25, delay=0.9, delays=0.1/0/0.3/0.5, dsn=5.1.1, status=bounced "
        "(host mx.example.net[192.0.2.10] said: 550 5.1.1 <bob@example.net>: Recipient address rejected: "
        "User unknown in virtual mailbox table (in reply to RCPT TO command))",
        [Event("550", "bounced", OUT, "5.1.1")],
    ),
    (
        H + "postfix/smtp[77]: 3C2D1E: to=<c@example.com>, relay=mx.example.com[203.0.113.5]:25, delay=5, "
        "delays=0/0/5/0, dsn=4.3.2, status=deferred (host mx.example.com[203.0.113.5] refused to talk to "
        "me: 421 4.3.2 Service shutting down)",
        [Event("421", "deferred", OUT, "4.3.2")],
    ),
    (  # multi-line reply: Postfix keeps the dash of the first line
        H + "postfix/smtp[77]: 3C2D1F: to=<d@example.com>, relay=mx.example.com[203.0.113.5]:25, delay=1, "
        "delays=0/0/0.5/0.5, dsn=5.7.1, status=bounced (host mx.example.com[203.0.113.5] said: "
        "550-5.7.1 Message rejected as spam 550 5.7.1 see policy (in reply to end of DATA command))",
        [Event("550", "bounced", OUT, "5.7.1")],
    ),
    (  # deferral without a reply code: still a deferral, code none
        H + "postfix/smtp[77]: 3C2D20: to=<e@example.com>, relay=none, delay=30, delays=0/0/30/0, dsn=4.4.1, "
        "status=deferred (connect to mx.example.com[203.0.113.5]:25: Connection timed out)",
        [Event(None, "deferred", OUT, "4.4.1")],
    ),
    (
        H + "postfix/local[901]: 5D6E7F: to=<alice@example.test>, relay=local, delay=0.05, "
        "delays=0.02/0.01/0/0.02, dsn=2.0.0, status=sent (delivered to mailbox)",
        [Event(None, "sent", OUT, "2.0.0")],
    ),
    (
        H + "postfix/local[901]: 5D6E80: to=<nobody@example.test>, relay=local, delay=0.1, delays=0/0/0/0.1, "
        'dsn=5.1.1, status=bounced (unknown user: "nobody")',
        [Event(None, "bounced", OUT, "5.1.1")],
    ),
    (
        H + "postfix/lmtp[55]: 9A8B7C: to=<f@example.test>, relay=mail.example.test[private/dovecot-lmtp], "
        "delay=0.2, delays=0.1/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 <f@example.test> abc Saved)",
        [Event("250", "sent", OUT, "2.0.0")],
    ),
    (
        H + "postfix/virtual[61]: 9A8B7D: to=<g@example.test>, relay=virtual, delay=0.01, delays=0/0/0/0.01, "
        "dsn=2.0.0, status=sent (delivered to maildir)",
        [Event(None, "sent", OUT, "2.0.0")],
    ),
    (
        H + "postfix/pipe[62]: 9A8B7E: to=<h@example.test>, relay=spamfilter, delay=0.4, delays=0.1/0/0/0.3, "
        "dsn=2.0.0, status=sent (delivered via spamfilter service)",
        [Event(None, "sent", OUT, "2.0.0")],
    ),
    (
        H + "postfix/error[63]: 9A8B7F: to=<i@example.test>, relay=none, delay=0.01, delays=0/0/0/0, "
        "dsn=4.3.0, status=deferred (mail transport unavailable)",
        [Event(None, "deferred", OUT, "4.3.0")],
    ),
    (  # soft_bounce=yes turns a bounce into SOFTBOUNCE: a deferral
        H + "postfix/smtp[64]: 1A2B3C: to=<j@example.net>, relay=mx.example.net[192.0.2.10]:25, delay=1, "
        "delays=0/0/0.5/0.5, dsn=5.1.1, status=SOFTBOUNCE (host mx.example.net[192.0.2.10] said: 550 5.1.1 "
        "No such user (in reply to RCPT TO command))",
        [Event("550", "deferred", OUT, "5.1.1")],
    ),
    (  # RFC 3339 timestamps (Postfix 3.x with rsyslog's high-precision format)
        H3339 + "postfix/smtp[65]: 1A2B3D: to=<k@example.net>, relay=mx.example.net[192.0.2.10]:25, delay=1, "
        "delays=0/0/0.5/0.5, dsn=4.2.2, status=deferred (host mx.example.net[192.0.2.10] said: 452 4.2.2 "
        "Mailbox full (in reply to RCPT TO command))",
        [Event("452", "deferred", OUT, "4.2.2")],
    ),
    (  # multi-instance and multi-part program names
        H + "postfix-out/smtp[66]: 1A2B3E: to=<l@example.net>, relay=mx.example.net[192.0.2.10]:25, delay=1, "
        "delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 ok)",
        [Event("250", "sent", OUT, "2.0.0")],
    ),
    # --- qmgr ---
    (
        H + "postfix/qmgr[300]: 2B3C4D: from=<sender@example.test>, status=expired, returned to sender",
        [Event(None, "expired", OUT, None)],
    ),
    (
        H + "postfix/qmgr[300]: 2B3C4E: from=<sender@example.test>, status=force-expired, returned to sender",
        [Event(None, "expired", OUT, None)],
    ),
    (H + "postfix/qmgr[300]: 2B3C4F: from=<sender@example.test>, size=1234, nrcpt=1 (queue active)", []),
    (H + "postfix/qmgr[300]: 2B3C4F: removed", []),
    # --- smtpd, postscreen and cleanup rejects: inbound ---
    (
        H + "postfix/smtpd[400]: NOQUEUE: reject: RCPT from unknown[198.51.100.7]: 554 5.7.1 "
        "<x@example.org>: Relay access denied; from=<s@example.net> to=<x@example.org> proto=ESMTP "
        "helo=<client.example.net>",
        [Event("554", "rejected", IN, "5.7.1")],
    ),
    (
        H0 + "postfix/submission/smtpd[401]: NOQUEUE: reject: RCPT from client.example.net[198.51.100.8]: "
        "550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown in local recipient table; "
        "from=<s@example.net> to=<nobody@example.test> proto=ESMTP helo=<client.example.net>",
        [Event("550", "rejected", IN, "5.1.1")],
    ),
    (
        H + "postfix/smtpd[402]: NOQUEUE: reject: MAIL from client.example.net[198.51.100.8]: 552 5.3.4 "
        "Message size exceeds fixed limit; proto=ESMTP helo=<client.example.net>",
        [Event("552", "rejected", IN, "5.3.4")],
    ),
    (  # a reject after queueing carries the queue id instead of NOQUEUE
        H + "postfix/smtpd[403]: 3D4E5F6A: reject: DATA from client.example.net[198.51.100.8]: 450 4.7.1 "
        "Try again later; from=<s@example.net> to=<t@example.test> proto=ESMTP helo=<client.example.net>",
        [Event("450", "rejected", IN, "4.7.1")],
    ),
    (
        H + "postfix/postscreen[404]: NOQUEUE: reject: RCPT from [203.0.113.9]:51234: 550 5.5.1 Protocol "
        "error; from=<s@example.net>, to=<t@example.test>, proto=SMTP, helo=<x>",
        [Event("550", "rejected", IN, "5.5.1")],
    ),
    (
        H + "postfix/postscreen[404]: NOQUEUE: reject: RCPT from [203.0.113.9]:51235: 450 4.3.2 Service "
        "currently unavailable; from=<s@example.net>, to=<t@example.test>, proto=ESMTP, helo=<x>",
        [Event("450", "rejected", IN, "4.3.2")],
    ),
    (  # cleanup header_checks carry only an enhanced code: code none
        H + "postfix/cleanup[405]: 4E5F6A7B: reject: header Subject: cheap pills from "
        "client.example.net[198.51.100.8]; from=<s@example.net> to=<t@example.test> proto=ESMTP "
        "helo=<client.example.net>: 5.7.1 message content rejected",
        [Event(None, "rejected", IN, "5.7.1")],
    ),
    (  # a Subject that pretends to carry a reply code must not be taken for one
        H + "postfix/cleanup[405]: 4E5F6A7C: reject: header Subject: note: 250 2.0.0 fine from "
        "client.example.net[198.51.100.8]; from=<s@example.net> to=<t@example.test> proto=ESMTP "
        "helo=<client.example.net>: 5.7.1 spam",
        [Event(None, "rejected", IN, "5.7.1")],
    ),
    (
        H
        + "postfix/smtpd[406]: 4E5F6A7D: milter-reject: END-OF-MESSAGE from client.example.net[198.51.100.8]:"
        " 5.7.1 Command rejected; from=<s@example.net> to=<t@example.test> proto=ESMTP helo=<c>",
        [Event(None, "rejected", IN, "5.7.1")],
    ),
    # --- lines of the format that are not results ---
    (
        H + "postfix/smtpd[407]: NOQUEUE: reject_warning: RCPT from unknown[198.51.100.7]: 554 5.7.1 "
        "<x@example.org>: Relay access denied; from=<s@example.net> to=<x@example.org> proto=ESMTP helo=<c>",
        [],
    ),
    (
        H + "postfix/smtp[408]: 6F7A8B: to=<u@example.test>, relay=mx.example.test[192.0.2.1]:25, delay=1, "
        "delays=0/0/0/1, dsn=2.1.5, status=deliverable (250 2.1.5 Ok)",
        [],
    ),
    (
        H + "postfix/smtp[408]: 6F7A8C: to=<u@example.test>, relay=mx.example.test[192.0.2.1]:25, delay=1, "
        "delays=0/0/0/1, dsn=5.1.1, status=undeliverable (host said: 550 5.1.1 no)",
        [],
    ),
    (
        H
        + "postfix/smtpd[409]: 6F7A8D: hold: RCPT from c[198.51.100.8]: <t@example.test>: Recipient address "
        "triggers HOLD action; from=<s@example.net> to=<t@example.test> proto=ESMTP helo=<c>",
        [],
    ),
    (H + "postfix/smtpd[410]: connect from client.example.net[198.51.100.8]", []),
    (
        H
        + "postfix/smtpd[410]: disconnect from client.example.net[198.51.100.8] ehlo=1 mail=1 rcpt=1 quit=1 "
        "commands=4",
        [],
    ),
    (
        H + "postfix/smtp[411]: Trusted TLS connection established to mx.example.net[192.0.2.10]:25: TLSv1.3",
        [],
    ),
    (H + "postfix/cleanup[412]: 7A8B9C: message-id=<abc@example.test>", []),
    (H + "postfix/master[1]: daemon started -- version 3.7.11, configuration /etc/postfix", []),
    (  # the recipient address is attacker-chosen: ", status=sent" inside it must not fool the parser
        H + 'postfix/smtp[413]: 8B9CAD: to=<"x, dsn=2.0.0, status=sent (250 ok)"@example.net>, '
        "relay=mx.example.net[192.0.2.10]:25, delay=1, delays=0/0/0/1, dsn=5.1.1, status=bounced "
        "(host mx.example.net[192.0.2.10] said: 550 5.1.1 no (in reply to RCPT TO command))",
        [Event("550", "bounced", OUT, "5.1.1")],
    ),
    (  # the same trick in orig_to
        H + 'postfix/smtp[413]: 8B9CAE: to=<v@example.net>, orig_to=<"y>, dsn=2.0.0, status=sent (250 ok)'
        '"@example.org>, relay=mx.example.net[192.0.2.10]:25, delay=1, delays=0/0/0/1, dsn=4.2.1, '
        "status=deferred (host mx.example.net[192.0.2.10] said: 450 4.2.1 later "
        "(in reply to RCPT TO command))",
        [Event("450", "deferred", OUT, "4.2.1")],
    ),
    (  # and in the remote server's reply text, which comes after the fields Postfix writes
        H + "postfix/smtp[414]: 8B9CAF: to=<w@example.net>, relay=mx.example.net[192.0.2.10]:25, delay=1, "
        "delays=0/0/0/1, dsn=5.7.1, status=bounced (host mx.example.net[192.0.2.10] said: 554 5.7.1 "
        "dsn=2.0.0, status=sent (250 fine) (in reply to end of DATA command))",
        [Event("554", "bounced", OUT, "5.7.1")],
    ),
]


@pytest.mark.parametrize("line,expected", CASES, ids=range(len(CASES)))
def test_postfix_table(line, expected):
    assert postfix.parse(line) == tuple(expected)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "garbage",
        "Dec  4 15:36:10 mx1 dovecot: imap-login: Login: user=<a>",
        "Dec  4 15:36:10 mx1 sshd[22]: Accepted publickey for root",
        '{"code": 550}',
        "2026-12-04 15:36:10 1wXyZa-000123-AB => a@example.net R=dnslookup T=remote_smtp",
    ],
)
def test_not_postfix_lines_are_unparsed(line):
    assert postfix.parse(line) is None


def test_crlf_line_end_is_tolerated():
    line = CASES[0][0] + "\r"
    assert postfix.parse(line) == (Event("250", "sent", OUT, "2.0.0"),)


def test_sniff():
    assert postfix.sniff(CASES[0][0])
    assert postfix.sniff(CASES[18][0])
    assert not postfix.sniff("Dec  4 15:36:10 mx1 sshd[22]: Accepted publickey for root")
    assert not postfix.sniff('{"code": 550}')


def test_postfix_takes_no_options():
    with pytest.raises(TypeError):
        postfix.make_parser(field="x")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_gives_none_or_events(text):
    check(postfix.parse(text))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_message_behind_a_valid_header_never_raises(msg):
    result = postfix.parse(H + "postfix/smtpd[1]: " + msg)
    assert result is not None  # a Postfix header makes it a line of the format
    assert all(isinstance(e, Event) and e.direction in (OUT, IN) for e in result)
