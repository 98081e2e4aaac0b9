"""Exchange Server message tracking logs.

The headers are those of Exchange 2016/2019, 2010 and 2007 (the 2010 and 2007 ones have fewer
columns). Rows follow the documented fields: recipient-address and recipient-status are parallel
lists split by ";", statuses such as "250 2.1.5 Recipient OK" or "550 4.4.7 QUEUE.Expired; message
expired". Hosts and addresses are documentation ones.
"""

from __future__ import annotations

import csv

import pytest
from helpers import bare, check
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.events import BOUNCED, DEFERRED, EXPIRED, OUTBOUND, SENT, Event
from exporter.parsers import exchange

H2016 = (
    "#Fields: date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,"
    "source,event-id,internal-message-id,message-id,network-message-id,recipient-address,recipient-status,"
    "total-bytes,recipient-count,related-recipient-address,reference,message-subject,sender-address,"
    "return-path,message-info,directionality,tenant-id,original-client-ip,original-server-ip,custom-data,"
    "transport-traffic-type,log-id,schema-version"
)
H2010 = (
    "#Fields: date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,"
    "source,event-id,internal-message-id,message-id,recipient-address,recipient-status,total-bytes,"
    "recipient-count,related-recipient-address,reference,message-subject,sender-address,return-path,"
    "message-info,directionality,tenant-id,original-client-ip,original-server-ip,custom-data"
)
H2007 = (
    "#Fields: date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,"
    "source,event-id,internal-message-id,message-id,recipient-address,recipient-status,total-bytes,"
    "recipient-count,related-recipient-address,reference,message-subject,sender-address,return-path,"
    "message-info"
)
PREAMBLE = (
    "#Software: Microsoft Exchange Server",
    "#Version: 15.01.2375.007",
    "#Log-type: Message Tracking Log",
    "#Date: 2022-09-19T15:02:29.339Z",
)


def ev(code, status, enhanced=None):
    return Event(code, status, OUTBOUND, enhanced)


def fed(header: str):
    parse = exchange.make_parser()
    for line in (*PREAMBLE, header):
        assert parse(line) == ()
    return parse


TABLE = [
    # Received: not a delivery result.
    (
        H2016,
        "2022-09-19T15:02:29.450Z,192.0.2.10,client.example.com,192.0.2.5,EX01,"
        "08DA9806C5B670C1;250 2.0.0 OK;ClientSubmitTime:,EX01\\Default Frontend EX01,SMTP,RECEIVE,438,"
        "<m1@example.com>,6a638d20-1e63-493a-80a2-08da9a4ff8da,user4@example.org,To,3750,1,,,Figures,"
        "alice@example.com,alice@example.com,04I: ,Incoming,,192.0.2.10,192.0.2.5,,Email,"
        "1b7e1c34-8b0a-4c2e-9d51-08da9a4ff8db,15.01.2375.007",
        (),
    ),
    (
        H2016,
        "2022-09-19T15:02:29.339Z,fe80::1234:5678:4321:1010%3,EX01,,,"
        '"MDB:12345678-3232-2323-1111-12345679666, Mailbox:33345678-3232-2323-1111-08da9fd00918, '
        'Event:63779422, MessageClass:IPM.Note, ClientType:MOMT",,STOREDRIVER,NOTIFYMAPI,,,,,,,,,,,'
        "user1@example.com,,2022-09-19T15:02:29.211Z,,,,,S:ItemEntryId=00-00-00,,"
        "12345678-3232-2323-1111-12345679988,15.01.2375.007",
        (),
    ),
    # Sent to the next hop: one event per recipient, from that recipient's status.
    (
        H2016,
        "2022-09-19T15:02:31.010Z,192.0.2.5,EX01,198.51.100.25,mx.example.org,"
        "08DA9806C5B670C2;250 2.6.0 <m1@example.com> [InternalId=1] Queued mail for delivery,"
        "Outbound to Internet,SMTP,SEND,439,<m1@example.com>,6a638d20-1e63-493a-80a2-08da9a4ff8da,"
        "bob@example.org,250 2.1.5 Recipient OK,3920,1,,,Figures,alice@example.com,alice@example.com,"
        "2022-09-19T15:02:29.211Z;SRV=EX01.example.com:TOTAL=1,Originating,,192.0.2.10,192.0.2.5,,Email,"
        "2c7e1c34-8b0a-4c2e-9d51-08da9a4ff8dc,15.01.2375.007",
        (ev("250", SENT, "2.1.5"),),
    ),
    (
        H2016,
        "2022-09-19T15:02:31.020Z,192.0.2.5,EX01,198.51.100.25,mx.example.org,08DA9806C5B670C3,"
        "Outbound to Internet,SMTP,SEND,440,<m2@example.com>,7a638d20-1e63-493a-80a2-08da9a4ff8da,"
        "bob@example.org;carol@example.org,250 2.1.5 Recipient OK;251 2.1.5 Will forward,4100,2,,,"
        "Plans,alice@example.com,alice@example.com,,Originating,,,,,Email,"
        "3c7e1c34-8b0a-4c2e-9d51-08da9a4ff8dd,15.01.2375.007",
        (ev("250", SENT, "2.1.5"), ev("251", SENT, "2.1.5")),
    ),
    # A subject with commas and event names in it is one quoted field.
    (
        H2016,
        "2022-09-19T15:02:32.000Z,192.0.2.5,EX01,198.51.100.25,mx.example.org,08DA9806C5B670C4,"
        "Outbound to Internet,SMTP,SEND,441,<m3@example.com>,,dan@example.org,250 2.1.5 Ok,900,1,,,"
        '"Re: SEND, FAIL, ""DEFER"" and you",alice@example.com,alice@example.com,,Originating,,,,,Email,'
        "4c7e1c34-8b0a-4c2e-9d51-08da9a4ff8de,15.01.2375.007",
        (ev("250", SENT, "2.1.5"),),
    ),
    (
        H2016,
        "2022-09-19T15:02:33.000Z,192.0.2.10,client.example.com,192.0.2.5,EX01,08DA9806C5B670C5,"
        "EX01\\Default EX01,SMTP,RECEIVE,442,<m4@example.com>,,erin@example.com,To,900,1,,,"
        '"Minutes,FAIL,re-sent",bob@example.org,bob@example.org,,Incoming,,,,,Email,'
        "5c7e1c34-8b0a-4c2e-9d51-08da9a4ff8df,15.01.2375.007",
        (),
    ),
    # Delivered to local mailboxes: no reply code logged, still one result per recipient.
    (
        H2016,
        "2022-09-19T15:02:34.000Z,,EX01,192.0.2.5,EX01,MDB:1f0c2a1e-0b22-4d3f-9a3e-3d2f1e0c9b8a,,"
        "STOREDRIVER,DELIVER,443,<m4@example.com>,,erin@example.com;frank@example.com,,900,2,,,Minutes,"
        "bob@example.org,bob@example.org,2022-09-19T15:02:33.000Z;SRV=EX01:TOTAL=1,Incoming,,,,,Email,"
        "6c7e1c34-8b0a-4c2e-9d51-08da9a4ff8e0,15.01.2375.007",
        (ev(None, SENT), ev(None, SENT)),
    ),
    # Failures: the status text carries its own ";".
    (
        H2016,
        "2022-09-19T15:03:00.000Z,,,,EX01,No suitable shadow servers,,SMTP,FAIL,444,<m5@example.com>,,"
        "nobody@example.org,550 5.1.1 RESOLVER.ADR.RecipNotFound; not found,1200,1,,,Hello,"
        "alice@example.com,alice@example.com,,Originating,,,,,Email,"
        "7c7e1c34-8b0a-4c2e-9d51-08da9a4ff8e1,15.01.2375.007",
        (ev("550", BOUNCED, "5.1.1"),),
    ),
    (
        H2016,
        "2022-09-21T15:03:00.000Z,,,,EX01,,,ROUTING,FAIL,445,<m6@example.com>,,"
        "nobody@example.org;full@example.org,"
        "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found;554 5.2.2 mailbox full; STOREDRV.Deliver.Exception,"
        "1200,2,,,Hello,alice@example.com,alice@example.com,,Originating,,,,,Email,"
        "8c7e1c34-8b0a-4c2e-9d51-08da9a4ff8e2,15.01.2375.007",
        (ev("550", BOUNCED, "5.1.1"), ev("554", BOUNCED, "5.2.2")),
    ),
    (
        H2016,
        "2022-09-21T15:04:00.000Z,,,,EX01,,,QUEUE,FAIL,446,<m7@example.com>,,slow@example.net,"
        "550 4.4.7 QUEUE.Expired; message expired,1500,1,,,Report,alice@example.com,alice@example.com,,"
        "Originating,,,,,Email,9c7e1c34-8b0a-4c2e-9d51-08da9a4ff8e3,15.01.2375.007",
        (ev("550", EXPIRED, "4.4.7"),),
    ),
    (
        H2016,
        "2022-09-21T15:05:00.000Z,,,,EX01,,,DNS,FAIL,447,<m8@example.com>,,x@nowhere.example,"
        "554 5.4.4 SMTPSEND.DNS.NonExistentDomain; nonexistent domain,1500,1,,,Report,alice@example.com,"
        "alice@example.com,,Originating,,,,,Email,ac7e1c34-8b0a-4c2e-9d51-08da9a4ff8e4,15.01.2375.007",
        (ev("554", BOUNCED, "5.4.4"),),
    ),
    # Deferred: a quoted status with a comma, and the bracketed {LED=...} form.
    (
        H2016,
        "2022-09-19T15:06:00.000Z,,,,EX01,,,STOREDRIVER,DEFER,448,<m9@example.com>,,busy@example.com,"
        '"432 4.3.2 STOREDRV.Deliver; recipient thread limit exceeded, retry later",1500,1,,,Report,'
        "alice@example.com,alice@example.com,,Originating,,,,,Email,"
        "bc7e1c34-8b0a-4c2e-9d51-08da9a4ff8e5,15.01.2375.007",
        (ev("432", DEFERRED, "4.3.2"),),
    ),
    (
        H2016,
        "2022-09-19T15:07:00.000Z,,,198.51.100.25,mx.example.org,,Outbound to Internet,SMTP,DEFER,449,"
        "<m10@example.com>,,grey@example.org,"
        '"[{LRT=2022-09-19T15:06:59.000Z};{LED=451 4.7.1 Greylisted, try again};{FQDN=mx.example.org};'
        '{IP=198.51.100.25}]",1500,1,,,Report,alice@example.com,alice@example.com,,Originating,,,,,Email,'
        "cc7e1c34-8b0a-4c2e-9d51-08da9a4ff8e6,15.01.2375.007",
        (ev("451", DEFERRED, "4.7.1"),),
    ),
    # Other events: a DSN generated, a group expanded.
    (
        H2016,
        "2022-09-19T15:03:00.100Z,,,,EX01,,,DSN,DSN,450,<m5@example.com>,,alice@example.com,,2500,1,,"
        "<dsn1@example.com>,Undeliverable: Hello,"
        "MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@example.com,"
        "<>,,Originating,,,,,Email,dc7e1c34-8b0a-4c2e-9d51-08da9a4ff8e7,15.01.2375.007",
        (),
    ),
    (
        H2016,
        "2022-09-19T15:08:00.000Z,,,,EX01,,,ROUTING,EXPAND,451,<m11@example.com>,,"
        "a@example.com;b@example.com,250 2.1.5 Recipient OK;250 2.1.5 Recipient OK,800,2,team@example.com,,"
        "All hands,boss@example.com,boss@example.com,,Originating,,,,,Email,"
        "ec7e1c34-8b0a-4c2e-9d51-08da9a4ff8e8,15.01.2375.007",
        (),
    ),
    # Older servers write fewer columns: the header says where things are.
    (
        H2010,
        "2016-04-05T00:00:05.145Z,192.0.2.5,EX2010,198.51.100.25,mx.example.org,08D35C9B2C3E1F44,"
        "Internet,SMTP,SEND,269492709,<q1@example.com>,bob@example.org,250 2.1.5 OK,7852,1,,,Status,"
        "alice@example.com,alice@example.com,2016-04-05T00:00:02.052Z,Originating,,192.0.2.10,192.0.2.5,",
        (ev("250", SENT, "2.1.5"),),
    ),
    (
        H2007,
        "2009-02-11T16:24:25.000Z,,,,EX2007,,,SMTP,FAIL,83322,<q2@example.com>,pf@example.com,"
        "550 4.4.7 QUEUE.Expired; message expired,1441,1,,,Public folder,clayton@example.net,"
        "clayton@example.net,",
        (ev("550", EXPIRED, "4.4.7"),),
    ),
    # A Windows line end.
    (
        H2010,
        "2016-04-05T00:00:06.000Z,,,,EX2010,,,SMTP,FAIL,269492710,<q3@example.com>,x@example.org,"
        "550 5.7.1 Unable to relay,900,1,,,Hi,alice@example.com,alice@example.com,,Originating,,,,\r",
        (ev("550", BOUNCED, "5.7.1"),),
    ),
    # Not a row under this header.
    (H2016, "Dec  4 15:36:10 host postfix/smtp[123]: 4F5002F2: to=<a@example.com>, status=sent", None),
    (
        H2010,
        "2016-04-05T00:00:06.000Z,,,,EX2010,,,SMTP,FAIL,1,<q@x>,a@x,550 5.1.1,1,1,,,,,,,,,,,,too,many",
        None,
    ),
    (H2016, "", None),
]


def test_table_rows_have_the_width_of_their_header():
    widths = {h: h.count(",") + 1 for h in (H2016, H2010, H2007)}
    for header, line, expected in TABLE:
        if expected is not None:
            assert len(next(csv.reader([line.rstrip("\r")]))) == widths[header], line


@pytest.mark.parametrize(("header", "line", "expected"), TABLE)
def test_table(header, line, expected):
    assert fed(header)(line) == expected


def row(addresses: str, statuses: str, event: str = "FAIL") -> str:
    return (
        f"2016-04-05T00:00:06.000Z,,,,EX2010,,,SMTP,{event},1,<q@example.com>,{addresses},{statuses},"
        "900,1,,,Hi,alice@example.com,alice@example.com,,Originating,,,,"
    )


@pytest.mark.parametrize(
    ("addresses", "statuses", "expected"),
    [
        # One status per address, split plainly when no status starts like a new one.
        ("a@example.org;b@example.org", "Failed;Failed", [(None, None), (None, None)]),
        # One status for several addresses holds for each.
        ("a@example.org;b@example.org", "550 5.1.1 unknown", [("550", "5.1.1"), ("550", "5.1.1")]),
        # Fewer statuses than addresses: the rest have none.
        (
            "a@example.org;b@example.org;c@example.org",
            "550 5.1.1 unknown; gone;551 5.1.6 moved",
            [("550", "5.1.1"), ("551", "5.1.6"), (None, None)],
        ),
        # No address: one result per status.
        ("", "550 5.1.1 x;554 5.7.1 y", [("550", "5.1.1"), ("554", "5.7.1")]),
        ("", "", [(None, None)]),
        # A code without an enhanced code, an enhanced code that runs on.
        ("a@example.org", "421 Service not available", [("421", None)]),
        ("a@example.org", "550 5.1.1.5 odd", [("550", None)]),
    ],
)
def test_pairing_of_addresses_and_statuses(addresses, statuses, expected):
    result = fed(H2010)(row(addresses, statuses))
    assert [(e.code, e.enhanced) for e in result] == expected
    assert all(e.status == BOUNCED and e.direction == OUTBOUND for e in result)


def test_rows_before_the_header_are_unparsed_and_directives_ignored():
    parse = exchange.make_parser()
    assert parse("\ufeff#Software: Microsoft Exchange Server") == ()
    assert parse("#Version: 14.0.0.0") == ()
    assert parse(row("a@example.org", "550 5.1.1 x")) is None
    assert parse("#Remark: what") is None
    assert parse(H2010) == ()
    assert parse(row("a@example.org", "550 5.1.1 x")) == (ev("550", BOUNCED, "5.1.1"),)


def test_a_header_without_the_needed_columns_is_not_usable():
    parse = fed(H2010)
    assert (
        parse("#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,event,data") is None
    )
    assert parse(row("a@example.org", "550 5.1.1 x")) is None


def test_a_new_header_replaces_the_columns():
    parse = fed(H2016)
    assert parse(row("a@example.org", "550 5.1.1 x")) is None  # 2010 row under the 2016 header
    assert parse(H2010) == ()
    assert parse(row("a@example.org", "550 5.1.1 x")) == (ev("550", BOUNCED, "5.1.1"),)


def test_parsers_do_not_share_state():
    first, second = exchange.make_parser(), exchange.make_parser()
    assert first(H2010) == ()
    assert second(row("a@example.org", "550 5.1.1 x")) is None


def test_other_dated_lines_are_ignored_and_garbage_is_not():
    parse = fed(H2010)
    assert parse(row("a@example.org", "", event="RECEIVE")) == ()
    assert parse("2016-04-05T00:00:06.000Z,,,SEND,") is None  # a row narrower than its header
    assert parse("random words, SEND, here") is None


SNIFF_TRUE = [
    "#Software: Microsoft Exchange Server",
    "\ufeff#Software: Microsoft Exchange Server",
    "#Log-type: Message Tracking Log",
    H2016,
    H2010,
    TABLE[0][1],
    TABLE[2][1],
    row("a@example.org", "550 5.1.1 x"),
]
SNIFF_FALSE = [
    "Dec  4 15:36:10 host postfix/smtp[123]: 4F5002F2: to=<a@example.com>, "
    "relay=mx.example.com[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
    "Dec  4 15:36:10 host postfix/smtpd[99]: NOQUEUE: reject: RCPT from x[192.0.2.3]: 554 5.7.1 denied",
    "#Software: Microsoft Internet Information Services 6.0",
    "#Fields: date time c-ip cs-username s-sitename cs-method cs-uri-query sc-status",
    "2006-10-09 05:00:16 198.51.100.106 36A42160 SMTPSVC1 MX-PDC 192.0.2.2 0 RCPT - +TO:+<p@example.com> "
    "250 0 29 27 0 SMTP - - - -",
    "2023-01-11T15:59:51.433Z,EX01\\Default Frontend EX01,123453EC62278461,1,10.10.10.10:25,"
    "192.0.2.33:56026,>,220 EX01 Microsoft ESMTP MAIL Service ready,",
    "#Version: 15.01.2375.007",
    "",
]


@pytest.mark.parametrize("line", SNIFF_TRUE)
def test_sniff_true(line):
    assert exchange.sniff(line)


@pytest.mark.parametrize("line", SNIFF_FALSE)
def test_sniff_false(line):
    assert not exchange.sniff(line)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=8))
def test_any_text_never_raises(lines):
    for parse in (
        bare(exchange.ExchangeParser()),
        bare(exchange.ExchangeParser(), H2010),
        exchange.make_parser(),
    ):
        for line in lines:
            check(parse(line))


FIELD = st.sampled_from(
    [
        "",
        "SEND",
        "FAIL",
        "DEFER",
        "DELIVER",
        "a@x;b@x",
        "550 5.1.1 x; y;250 2.1.5 ok",
        "[{LED=",
        '"',
        ";",
        "To",
    ]
) | st.text(max_size=15)


@settings(max_examples=150, deadline=None)
@given(st.lists(FIELD, min_size=1, max_size=30))
def test_rows_of_any_fields_never_raise(fields):
    result = bare(exchange.ExchangeParser(), H2010)("2016-04-05T00:00:06.000Z," + ",".join(fields))
    check(result)
