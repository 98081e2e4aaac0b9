"""IIS SMTP W3C extended logs.

The lines follow the published examples of the format: the default "all fields" header of the IIS
5/6 SMTP service with inbound sessions, outbound dialogues (OutboundConnectionCommand/Response,
the remote reply in cs-uri-query with "+" for spaces) and a site logging fewer columns. Host names
and addresses are replaced with documentation ones.
"""

from __future__ import annotations

import pytest
from helpers import bare, check
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.events import INBOUND, OUTBOUND, REJECTED, Event
from exporter.parsers import iis

FULL = (
    "#Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-stem "
    "cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version cs-host "
    "cs(User-Agent) cs(Cookie) cs(Referer)"
)
SHORT = (
    "#Fields: c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-query "
    "sc-win32-status cs-bytes cs-version cs(User-Agent) cs(Referer)"
)


def fed(*headers: str):
    parse = iis.make_parser()
    for header in headers:
        assert parse(header) == ()
    return parse


def inbound(code: str) -> tuple[Event, ...]:
    return (Event(code, REJECTED if code[0] in "45" else None, INBOUND, None),)


def outbound(code: str, enhanced: str | None = None) -> tuple[Event, ...]:
    return (Event(code, None, OUTBOUND, enhanced),)


TABLE = [
    # An inbound session: only RCPT (one recipient) and DATA (the message) carry a result.
    (
        FULL,
        "2006-10-09 05:00:15 198.51.100.106 36A42160 SMTPSVC1 MX-PDC 192.0.2.2 0 HELO - +36A42160 "
        "250 0 48 13 0 SMTP - - - -",
        (),
    ),
    (
        FULL,
        "2006-10-09 05:00:16 198.51.100.106 36A42160 SMTPSVC1 MX-PDC 192.0.2.2 0 MAIL - "
        "+FROM:+<sender@example.net> 250 0 57 45 0 SMTP - - - -",
        (),
    ),
    (
        FULL,
        "2006-10-09 05:00:16 198.51.100.106 36A42160 SMTPSVC1 MX-PDC 192.0.2.2 0 RCPT - "
        "+TO:+<pat@example.com> 250 0 29 27 0 SMTP - - - -",
        inbound("250"),
    ),
    (
        FULL,
        "2006-10-09 05:00:19 198.51.100.106 36A42160 SMTPSVC1 MX-PDC 192.0.2.2 0 DATA - "
        "+<4F5002F2.860022@example.net> 250 0 108 1399 1922 SMTP - - - -",
        inbound("250"),
    ),
    (
        FULL,
        "2006-10-09 05:00:19 198.51.100.106 36A42160 SMTPSVC1 MX-PDC 192.0.2.2 0 QUIT - 36A42160 "
        "240 6219 68 4 0 SMTP - - - -",
        (),
    ),
    (
        FULL,
        "2006-10-09 05:00:50 192.0.2.22 REDBARRON SMTPSVC1 MX-PDC 192.0.2.2 0 EHLO - +REDBARRON "
        "250 0 275 14 93 SMTP - - - -",
        (),
    ),
    # An unknown command answered 500: not a recipient, not a message.
    (
        FULL,
        "2006-10-09 05:01:04 203.0.113.99 - SMTPSVC1 MX-PDC 192.0.2.2 0 xxxx - +rr.example 500 0 32 11 0 "
        "SMTP - - - -",
        (),
    ),
    # Recipients and messages this server refused.
    (
        FULL,
        "2019-11-01 00:01:01 10.32.12.4 relay.example.com SMTPSVC1 WEBSERVER 10.32.8.61 0 RCPT - "
        "+TO:<someone@example.net> 550 0 42 34 0 SMTP - - - -",
        inbound("550"),
    ),
    (
        FULL,
        "2019-11-01 00:01:02 10.32.12.4 relay.example.com SMTPSVC1 WEBSERVER 10.32.8.61 0 RCPT - "
        "+TO:<many@example.com> 452 0 40 30 0 SMTP - - - -",
        inbound("452"),
    ),
    (
        FULL,
        "2019-11-01 00:01:03 10.32.12.4 relay.example.com SMTPSVC1 WEBSERVER 10.32.8.61 0 DATA - "
        "+<01d59047$Blat.v3.2.4$71ce9260@smtp.example.com> 552 0 60 48000000 15 SMTP - - - -",
        inbound("552"),
    ),
    # Chunked transfer (BDAT): only the last chunk's reply is the message's.
    (
        FULL,
        "2006-10-09 05:02:11 192.0.2.30 ex2003.example.com SMTPSVC1 MX-PDC 192.0.2.2 0 BDAT - +65536 "
        "250 0 40 65560 0 SMTP - - - -",
        (),
    ),
    (
        FULL,
        "2006-10-09 05:02:11 192.0.2.30 ex2003.example.com SMTPSVC1 MX-PDC 192.0.2.2 0 BDAT - +1754+LAST "
        "250 0 122 1780 406 SMTP - - - -",
        inbound("250"),
    ),
    # The site's own outbound lines have sc-status 0: never a code 0 event.
    (
        FULL,
        "2017-02-09 05:28:28 198.51.100.34 OutboundConnectionCommand SMTPSVC1 VSERVER1 - 25 RCPT - "
        "TO:<someone@example.org> 0 0 4 0 0 SMTP - - - -",
        (),
    ),
    # A reply with no command waiting for it (the greeting) is not counted.
    (
        FULL,
        "2019-11-01 00:01:01 192.0.2.56 OutboundConnectionResponse SMTPSVC1 SQLDEVBOX - 25 - - "
        "220+mail.example.com+Microsoft+ESMTP+MAIL+Service+ready 0 0 80 0 0 SMTP - - - -",
        (),
    ),
    # A client that calls itself OutboundConnectionResponse is still a client: its sc-status is real.
    (
        FULL,
        "2019-11-01 00:02:00 203.0.113.5 OutboundConnectionResponse SMTPSVC1 WEBSERVER 10.32.8.61 0 RCPT - "
        "+TO:<x@example.com> 250 0 31 28 0 SMTP - - - -",
        inbound("250"),
    ),
    # A site logging fewer columns: no sc-status, so inbound replies are unknown.
    (
        SHORT,
        "127.0.0.1 MYHOST SMTPSVC1 MYHOST 127.0.0.1 0 RCPT +TO:<martin@example.com> 0 32 SMTP - -",
        (),
    ),
    (
        SHORT,
        "192.0.2.4 OutboundConnectionCommand SMTPSVC1 MYHOST - 25 EHLO MYHOST 0 0 SMTP - -",
        (),
    ),
    # Trailing carriage return of a Windows file.
    (
        FULL,
        "2006-10-09 05:01:33 80.64.22.8 sveta SMTPSVC1 MX-PDC 192.0.2.2 0 RCPT - "
        "+TO:<heyr@example.com> 250 0 40 37 0 SMTP - - - -\r",
        inbound("250"),
    ),
    # Not a line under this header.
    (FULL, "Dec  4 15:36:10 host postfix/smtp[123]: 4F5002F2: to=<a@example.com>, status=sent", None),
    (SHORT, "2006-10-09 05:00:16 198.51.100.106 36A42160 SMTPSVC1 MX-PDC 192.0.2.2 0 RCPT - x 250", None),
    (FULL, "", None),
]


@pytest.mark.parametrize(("header", "line", "expected"), TABLE)
def test_table(header, line, expected):
    assert fed(header)(line) == expected


def run(parse, transcript):
    for line, expected in transcript:
        assert parse(line) == expected, line


def test_outbound_recipient_rejected():
    """The remote server refuses the recipient: its reply to RCPT is counted, nothing else."""
    run(
        fed(FULL),
        [
            (
                "2019-11-01 00:01:01 192.0.2.7 OutboundConnectionResponse SMTPSVC1 SQLDEVBOX - 25 - - "
                "220+corp.example.com+ESMTP 0 0 30 0 0 SMTP - - - -",
                (),
            ),
            (
                "2019-11-01 00:01:01 192.0.2.7 OutboundConnectionCommand SMTPSVC1 SQLDEVBOX - 25 EHLO - "
                "example.local 0 0 4 0 0 SMTP - - - -",
                (),
            ),
            (
                "2019-11-01 00:01:01 192.0.2.7 OutboundConnectionResponse SMTPSVC1 SQLDEVBOX - 25 - - "
                "250-corp.example.com+Hello+[192.0.2.56] 0 0 50 0 0 SMTP - - - -",
                (),
            ),
            (
                "2019-11-01 00:01:01 192.0.2.7 OutboundConnectionCommand SMTPSVC1 SQLDEVBOX - 25 MAIL - "
                "FROM:<box@example.local> 0 0 4 0 0 SMTP - - - -",
                (),
            ),
            (
                "2019-11-01 00:01:01 192.0.2.7 OutboundConnectionResponse SMTPSVC1 SQLDEVBOX - 25 - - "
                "250+2.1.0+Sender+OK 0 0 20 0 0 SMTP - - - -",
                (),
            ),
            (
                "2019-11-01 00:01:01 192.0.2.7 OutboundConnectionCommand SMTPSVC1 SQLDEVBOX - 25 RCPT - "
                "TO:<joe@example.com> 0 0 4 0 0 SMTP - - - -",
                (),
            ),
            (
                "2019-11-01 00:01:03 192.0.2.7 OutboundConnectionResponse SMTPSVC1 SQLDEVBOX - 25 - - "
                "550+5.1.1+User+unknown 0 0 25 0 0 SMTP - - - -",
                outbound("550", "5.1.1"),
            ),
            (
                "2019-11-01 00:01:03 192.0.2.7 OutboundConnectionCommand SMTPSVC1 SQLDEVBOX - 25 RSET - - "
                "0 0 4 0 0 SMTP - - - -",
                (),
            ),
            (
                "2019-11-01 00:01:04 192.0.2.7 OutboundConnectionResponse SMTPSVC1 SQLDEVBOX - 25 - - "
                "250+2.0.0+Resetting 0 0 20 0 0 SMTP - - - -",
                (),
            ),
            (
                "2019-11-01 00:01:04 192.0.2.7 OutboundConnectionCommand SMTPSVC1 SQLDEVBOX - 25 QUIT - - "
                "0 0 4 0 0 SMTP - - - -",
                (),
            ),
            (
                "2019-11-01 00:01:04 192.0.2.7 OutboundConnectionResponse SMTPSVC1 SQLDEVBOX - 25 - - "
                "221+2.0.0+Service+closing+transmission+channel 0 0 45 0 0 SMTP - - - -",
                (),
            ),
        ],
    )


def test_outbound_delivery_counts_each_recipient_and_the_end_of_data_reply():
    """DATA's 354 is not a result; the reply after it (no log line stands for the data) is."""
    run(
        fed(FULL),
        [
            (
                "2006-10-11 13:17:02 198.51.100.121 OutboundConnectionCommand SMTPSVC1 MX-PDC - 25 MAIL - "
                "FROM:<pb@example.com> 0 0 4 0 0 SMTP - - - -",
                (),
            ),
            (
                "2006-10-11 13:17:02 198.51.100.121 OutboundConnectionResponse SMTPSVC1 MX-PDC - 25 - - "
                "250+OK 0 0 6 0 0 SMTP - - - -",
                (),
            ),
            (
                "2006-10-11 13:17:02 198.51.100.121 OutboundConnectionCommand SMTPSVC1 MX-PDC - 25 RCPT - "
                "TO:<kb@example.org> 0 0 4 0 0 SMTP - - - -",
                (),
            ),
            (
                "2006-10-11 13:17:02 198.51.100.121 OutboundConnectionResponse SMTPSVC1 MX-PDC - 25 - - "
                "250+OK 0 0 6 0 0 SMTP - - - -",
                outbound("250"),
            ),
            (
                "2006-10-11 13:17:02 198.51.100.121 OutboundConnectionCommand SMTPSVC1 MX-PDC - 25 RCPT - "
                "TO:<lb@example.org> 0 0 4 0 0 SMTP - - - -",
                (),
            ),
            (
                "2006-10-11 13:17:02 198.51.100.121 OutboundConnectionResponse SMTPSVC1 MX-PDC - 25 - - "
                "450+4.2.1+Mailbox+busy 0 0 6 0 0 SMTP - - - -",
                outbound("450", "4.2.1"),
            ),
            (
                "2006-10-11 13:17:02 198.51.100.121 OutboundConnectionCommand SMTPSVC1 MX-PDC - 25 DATA - - "
                "0 0 4 0 0 SMTP - - - -",
                (),
            ),
            (
                "2006-10-11 13:17:02 198.51.100.121 OutboundConnectionResponse SMTPSVC1 MX-PDC - 25 - - "
                '354+START+MAIL+INPUT,+END+WITH+"."+ON+A+LINE+BY+ITSELF 0 0 54 0 0 SMTP - - - -',
                (),
            ),
            (
                "2006-10-11 13:17:04 198.51.100.121 OutboundConnectionResponse SMTPSVC1 MX-PDC - 25 - - "
                "250+2.6.0+<id@example.org>+Queued+mail+for+delivery 0 0 6 0 0 SMTP - - - -",
                outbound("250", "2.6.0"),
            ),
            (
                "2006-10-11 13:17:04 198.51.100.121 OutboundConnectionCommand SMTPSVC1 MX-PDC - 25 QUIT - - "
                "0 0 4 0 0 SMTP - - - -",
                (),
            ),
            (
                "2006-10-11 13:17:04 198.51.100.121 OutboundConnectionResponse SMTPSVC1 MX-PDC - 25 - - "
                "221+SERVICE+CLOSING+CHANNEL 0 0 27 0 0 SMTP - - - -",
                (),
            ),
        ],
    )


def test_outbound_with_fewer_columns():
    """The columns come from the header: no date, no sc-status, and the reply still lands on RCPT."""
    run(
        fed(SHORT),
        [
            (
                "192.0.2.4 OutboundConnectionResponse SMTPSVC1 MYHOST - 25 - "
                "220+mx1.example.org+ESMTP+MailHop 0 0 SMTP - -",
                (),
            ),
            ("192.0.2.4 OutboundConnectionCommand SMTPSVC1 MYHOST - 25 EHLO MYHOST 0 0 SMTP - -", ()),
            (
                "192.0.2.4 OutboundConnectionResponse SMTPSVC1 MYHOST - 25 - 250-mx1.example.org "
                "0 0 SMTP - -",
                (),
            ),
            (
                "192.0.2.4 OutboundConnectionCommand SMTPSVC1 MYHOST - 25 MAIL "
                "FROM:<enquiries@example.com>+SIZE=2884 0 0 SMTP - -",
                (),
            ),
            ("192.0.2.4 OutboundConnectionResponse SMTPSVC1 MYHOST - 25 - 250+2.1.0+Ok 0 0 SMTP - -", ()),
            (
                "192.0.2.4 OutboundConnectionCommand SMTPSVC1 MYHOST - 25 RCPT TO:<martin@example.com> "
                "0 0 SMTP - -",
                (),
            ),
            (
                "192.0.2.4 OutboundConnectionResponse SMTPSVC1 MYHOST - 25 - "
                "504+5.5.2+<MYHOST>:+Helo+command+rejected:+need+fully-qualified+hostname 0 0 SMTP - -",
                outbound("504", "5.5.2"),
            ),
            ("192.0.2.4 OutboundConnectionCommand SMTPSVC1 MYHOST - 25 RSET - 0 0 SMTP - -", ()),
        ],
    )


def test_reply_to_mail_from_is_not_a_recipient_result():
    run(
        fed(FULL),
        [
            (
                "2017-02-09 05:28:28 198.51.100.34 OutboundConnectionCommand SMTPSVC1 VSERVER1 - 25 MAIL - "
                "FROM:<someone@example.com>+SIZE=1722 0 0 4 0 0 SMTP - - - -",
                (),
            ),
            (
                "2017-02-09 05:28:28 198.51.100.34 OutboundConnectionResponse SMTPSVC1 VSERVER1 - 25 - - "
                "421+4.7.0+[TSS04]+Messages+from+192.0.2.201+temporarily+deferred;+see+"
                "https://help.example.com/kb 0 0 157 0 16 SMTP - - - -",
                (),
            ),
        ],
    )


H = "2024-05-01 10:00:00 {ip} {user} SMTPSVC1 HOST - 25 {method} - {query} 0 0 4 0 0 SMTP - - - -"


def cmd(verb: str, query: str = "-", ip: str = "192.0.2.9") -> str:
    return H.format(ip=ip, user="OutboundConnectionCommand", method=verb, query=query)


def reply(text: str, ip: str = "192.0.2.9") -> str:
    return H.format(ip=ip, user="OutboundConnectionResponse", method="-", query=text)


def test_data_refused_outright_is_the_message_result():
    run(
        fed(FULL),
        [
            (cmd("DATA"), ()),
            (reply("554+5.5.1+Error:+no+valid+recipients"), outbound("554", "5.5.1")),
            (cmd("QUIT"), ()),
            (reply("221+Bye"), ()),
        ],
    )


def test_pipelined_commands_get_their_replies_in_order():
    run(
        fed(FULL),
        [
            (cmd("MAIL", "FROM:<a@example.com>"), ()),
            (cmd("RCPT", "TO:<b@example.org>"), ()),
            (cmd("RCPT", "TO:<c@example.org>"), ()),
            (cmd("DATA"), ()),
            (reply("250+2.1.0+Ok"), ()),
            (reply("250+2.1.5+Ok"), outbound("250", "2.1.5")),
            (reply("550+5.1.1+No+such+user"), outbound("550", "5.1.1")),
            (reply("354+End+data+with+<CR><LF>.<CR><LF>"), ()),
            (reply("250+2.0.0+Ok:+queued+as+4F5002F2"), outbound("250", "2.0.0")),
        ],
    )


def test_dialogues_with_two_hosts_are_kept_apart():
    run(
        fed(FULL),
        [
            (cmd("RCPT", "TO:<a@example.org>", ip="192.0.2.1"), ()),
            (cmd("MAIL", "FROM:<x@example.com>", ip="198.51.100.2"), ()),
            (reply("250+2.1.0+Sender+ok", ip="198.51.100.2"), ()),
            (reply("451+4.7.1+Greylisted", ip="192.0.2.1"), outbound("451", "4.7.1")),
        ],
    )


def test_bdat_counts_only_the_last_chunk():
    run(
        fed(FULL),
        [
            (cmd("RCPT", "TO:<a@example.org>"), ()),
            (reply("250+2.1.5+Recipient+OK"), outbound("250", "2.1.5")),
            (cmd("BDAT", "65536"), ()),
            (reply("250+2.0.0+65536+octets+received"), ()),
            (cmd("BDAT", "1200+LAST"), ()),
            (reply("250+2.6.0+Queued+mail+for+delivery"), outbound("250", "2.6.0")),
        ],
    )


def test_a_new_greeting_drops_commands_that_were_never_answered():
    run(
        fed(FULL),
        [
            (cmd("RCPT", "TO:<a@example.org>"), ()),  # the connection broke before the reply
            (reply("220+mx.example.org+ESMTP"), ()),  # a new connection to the same host
            (cmd("EHLO", "relay.example.com"), ()),
            (reply("250-mx.example.org"), ()),
            (cmd("RCPT", "TO:<b@example.org>"), ()),
            (reply("250+2.1.5+Ok"), outbound("250", "2.1.5")),
        ],
    )


def test_the_220_answer_to_starttls_is_not_a_greeting():
    run(
        fed(FULL),
        [
            (cmd("STARTTLS"), ()),
            (cmd("RCPT", "TO:<a@example.org>"), ()),
            (reply("220+2.0.0+Ready+to+start+TLS"), ()),
            (reply("550+5.7.1+Relaying+denied"), outbound("550", "5.7.1")),
        ],
    )


def test_lines_before_any_fields_header_are_unparsed_but_directives_are_not():
    parse = iis.make_parser()
    assert parse("\ufeff#Software: Microsoft Internet Information Services 6.0") == ()
    assert parse("#Version: 1.0") == ()
    assert parse("#Date: 2006-10-09 05:00:15") == ()
    assert parse(cmd("RCPT")) is None
    assert parse("#Log-type: Message Tracking Log") is None
    assert parse(FULL) == ()
    assert parse(cmd("RCPT")) == ()


def test_a_new_fields_header_replaces_the_columns_and_the_dialogues():
    parse = fed(FULL)
    assert parse(cmd("RCPT", "TO:<a@example.org>")) == ()
    assert parse(SHORT) == ()
    assert parse(reply("250+2.1.5+Ok")) is None  # full-width line under the short header
    short_reply = "192.0.2.9 OutboundConnectionResponse SMTPSVC1 HOST - 25 - 250+2.1.5+Ok 0 0 SMTP - -"
    assert parse(short_reply) == ()  # the RCPT was forgotten with the old header
    assert parse(FULL) == ()
    assert parse(cmd("RCPT", "TO:<a@example.org>")) == ()
    assert parse(reply("250+2.1.5+Ok")) == outbound("250", "2.1.5")


def test_a_fields_header_without_a_method_column_is_not_usable():
    parse = fed(FULL)
    assert parse("#Fields: date time cs-uri-stem sc-status") is None
    assert parse("2024-05-01 10:00:00 /x 200") is None


def test_parsers_do_not_share_state():
    first, second = iis.make_parser(), iis.make_parser()
    assert first(FULL) == ()
    assert second(cmd("RCPT")) is None
    assert first(cmd("RCPT")) == ()
    assert second(FULL) == ()
    assert second(reply("250+Ok")) == ()  # the RCPT went to the first parser
    assert first(reply("250+Ok")) == outbound("250")


SNIFF_TRUE = [
    "#Software: Microsoft Internet Information Services 6.0",
    "\ufeff#Software: Microsoft Internet Information Services 7.0",
    FULL,
    SHORT,
    TABLE[2][1],
    cmd("RCPT"),
    reply("250+OK"),
    "192.0.2.4 OutboundConnectionCommand SMTPSVC1 MYHOST - 25 EHLO MYHOST 0 0 SMTP - -",
]
SNIFF_FALSE = [
    "Dec  4 15:36:10 host postfix/smtp[123]: 4F5002F2: to=<a@example.com>, "
    "relay=mx.example.com[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
    "Dec  4 15:36:10 host postfix/smtpd[99]: NOQUEUE: reject: RCPT from x[192.0.2.3]: 554 5.7.1 denied",
    "#Software: Microsoft Exchange Server",
    "#Fields: date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,event-id",
    "2022-09-19T15:02:29.339Z,192.0.2.1,,,,,,SMTP,SEND,438,<x@example.com>,,a@example.org,250 2.1.5 Ok",
    "#Version: 1.0",
    "SMTPSVC1",
    "",
]


@pytest.mark.parametrize("line", SNIFF_TRUE)
def test_sniff_true(line):
    assert iis.sniff(line)


@pytest.mark.parametrize("line", SNIFF_FALSE)
def test_sniff_false(line):
    assert not iis.sniff(line)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=8))
def test_any_text_never_raises(lines):
    for parse in (bare(iis.IisParser()), bare(iis.IisParser(), FULL), iis.make_parser()):
        for line in lines:
            check(parse(line))


TOKEN = st.sampled_from(
    [
        "-",
        "0",
        "250",
        "354",
        "220",
        "550+5.1.1+x",
        "RCPT",
        "DATA",
        "BDAT",
        "QUIT",
        "LAST",
        "354+go",
        "OutboundConnectionCommand",
        "OutboundConnectionResponse",
        "192.0.2.1",
        "192.0.2.2",
        "SMTPSVC1",
    ]
) | st.text(alphabet=st.characters(blacklist_characters=" "), max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(TOKEN, min_size=21, max_size=21), max_size=30))
def test_well_shaped_lines_in_any_order_never_raise(rows):
    parse = bare(iis.IisParser(), FULL)
    for row in rows:
        result = parse(" ".join(row))
        check(result)
        if result:
            assert all(e.code is not None and len(e.code) == 3 for e in result)
