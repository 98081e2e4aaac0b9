"""qmail-send's log.

Lines as qmail-log(5) lists them ("new msg", "info msg", "starting delivery", "delivery N:
success|deferral|failure: report", "end msg", "status: ..."), with the reports qmail-remote and
qmail-local give ("Remote_host_said:_550_...", "did_1+0+0/", "..._(#5.1.1)/", "_" for spaces),
stamped by multilog (tai64n, or tai64nlocal) or sent to syslog through splogger.
"""

from __future__ import annotations

import pytest
from helpers import check
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.events import BOUNCED, DEFERRED, OUTBOUND, SENT, Event
from exporter.parsers import get, qmail

T = "@400000006543aa0b2c3d4e5f "


def out(code, status, enhanced=None):
    return (Event(code, status, OUTBOUND, enhanced),)


TABLE = [
    pytest.param(
        T + "delivery 31: success: 192.0.2.25_accepted_message./Remote_host_said:_250_ok_1709626364_qp_8123/",
        out("250", SENT),
        id="remote success",
    ),
    pytest.param(
        T + "delivery 32: success: 192.0.2.26_accepted_message./Remote_host_said:_250_2.0.0_Ok:"
        "_queued_as_4TqLmN0Zx1z9/",
        out("250", SENT, "2.0.0"),
        id="remote success with an enhanced code",
    ),
    pytest.param(T + "delivery 33: success: did_1+0+0/", out(None, SENT), id="local success"),
    pytest.param(
        T + "delivery 34: failure: 198.51.100.7_does_not_like_recipient./Remote_host_said:_550_5.1.1"
        "_<bob@example.org>..._User_unknown/Giving_up_on_198.51.100.7./",
        out("550", BOUNCED, "5.1.1"),
        id="remote failure",
    ),
    pytest.param(
        T + "delivery 35: failure: Sorry,_no_mailbox_here_by_that_name._(#5.1.1)/",
        out(None, BOUNCED, "5.1.1"),
        id="local failure",
    ),
    pytest.param(
        T + "delivery 36: deferral: Connected_to_198.51.100.8_but_greeting_failed./Remote_host_said:"
        "_421_4.7.0_Try_again_later/",
        out("421", DEFERRED, "4.7.0"),
        id="remote deferral",
    ),
    pytest.param(
        T + "delivery 37: deferral: Sorry,_I_wasn't_able_to_establish_an_SMTP_connection._(#4.4.1)/",
        out(None, DEFERRED, "4.4.1"),
        id="no connection",
    ),
    pytest.param(
        T + "delivery 38: deferral: 198.51.100.9_does_not_like_recipient./Remote_host_said:_451-4.7.1"
        "_Greylisted/451_4.7.1_Please_try_again_later/Giving_up_on_198.51.100.9./",
        out("451", DEFERRED, "4.7.1"),
        id="multi-line reply",
    ),
    pytest.param(
        T + "delivery 39: failure: Sorry,_I_couldn't_find_any_host_named_nohost.example.invalid._(#5.1.2)/",
        out(None, BOUNCED, "5.1.2"),
        id="no such host",
    ),
    pytest.param(
        T + "delivery 40: deferral: Unable_to_chdir_to_maildir._(#4.2.1)/",
        out(None, DEFERRED, "4.2.1"),
        id="local deferral",
    ),
    pytest.param(
        "2024-03-05 09:12:44.512345678 delivery 41: success: 192.0.2.25_accepted_message./Remote_host_said:"
        "_250_2.0.0_Ok/",
        out("250", SENT, "2.0.0"),
        id="tai64nlocal time",
    ),
    pytest.param(
        "Mar  5 09:12:44 mail qmail: 1709626364.512345 delivery 42: failure: 203.0.113.3_does_not_like"
        "_recipient./Remote_host_said:_554_5.7.1_Relay_access_denied/Giving_up_on_203.0.113.3./",
        out("554", BOUNCED, "5.7.1"),
        id="splogger through syslog",
    ),
    pytest.param(T + "new msg 2392315", (), id="new message"),
    pytest.param(
        T + "info msg 2392315: bytes 2210 from <ann@example.com> qp 8120 uid 1001", (), id="message info"
    ),
    pytest.param(T + "starting delivery 31: msg 2392315 to remote bob@example.net", (), id="delivery starts"),
    pytest.param(T + "end msg 2392315", (), id="message done"),
    pytest.param(T + "bounce msg 2392316 qp 8130", (), id="bounce queued"),
    pytest.param(T + "status: local 0/10 remote 1/20", (), id="status"),
    pytest.param("Mar  5 09:12:45 mail qmail: 1709626365.000001 running", (), id="syslog, no result"),
    pytest.param(
        "Dec  4 15:36:10 host postfix/local[123]: 4BC2D3E4F5: to=<a@example.com>, relay=local, "
        "delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (delivered to mailbox)",
        None,
        id="Postfix line",
    ),
    pytest.param("success: did_1+0+0/", None, id="not a qmail-send line"),
]


@pytest.mark.parametrize(("line", "expected"), TABLE)
def test_parse(line, expected):
    assert qmail.parse(line) == expected


def test_without_any_stamp():
    assert qmail.parse("delivery 7: success: did_0+1+0/") == out(None, SENT)
    assert qmail.parse("end msg 42") == ()


def test_trailing_carriage_return_is_tolerated():
    assert qmail.parse(T + "delivery 33: success: did_1+0+0/\r") == out(None, SENT)


def test_registry_and_options():
    assert get("qmail") is qmail
    assert (qmail.NAME, qmail.APP_LOG) == ("qmail", False)
    assert qmail.make_parser() is qmail.parse
    with pytest.raises(TypeError, match="no options"):
        qmail.make_parser(splogger=True)


OWN = [param.values[0] for param in TABLE if param.values[1] is not None]
FOREIGN = [
    "Dec  4 15:36:10 host postfix/smtp[123]: 4BC2D3E4F5: to=<a@example.com>, "
    "relay=mx.example.com[192.0.2.1]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, "
    "status=sent (250 2.0.0 Ok: queued as 1A2B3C)",
    "Dec 04 15:36:11 host postfix/smtpd[456]: NOQUEUE: reject: RCPT from unknown[192.0.2.9]: 554 5.7.1 "
    "<x@example.org>: Relay access denied; from=<a@example.net> to=<x@example.org> proto=ESMTP helo=<h>",
    '2024-03-05 09:12:44 1rhXyz-000Abc-4Q => ann@example.net R=dnslookup T=remote_smtp C="250 OK"',
    "2024-03-05 09:12:44.029305500  [NOTICE] [1B01-42.1.1] [outbound]  delivered file=1784_0_1287 "
    'domain=example.org host=mx.example.org ip=192.0.2.8 port=25 mode=SMTP response="Ok" rcpts=1/0/0',
    "Mar  5 09:12:44 mail smtpd[771]: 8f3a1c2b4d5e6f70 mda delivery evpid=8f3a1c2b4d5e6f72 "
    "from=<a@example.com> to=<c@example.com> rcpt=<-> user=c delay=0s result=Ok stat=Delivered",
    "Mar  5 09:12:44 mail sm-mta[3344]: 425ACkRq012345: to=<a@example.net>, delay=00:00:02, "
    "mailer=esmtp, pri=120452, relay=mx.example.net. [192.0.2.30], dsn=2.0.0, stat=Sent (Ok)",
]


@pytest.mark.parametrize("line", OWN)
def test_sniff_recognises_qmail_lines(line):
    assert qmail.sniff(line)


@pytest.mark.parametrize("line", FOREIGN)
def test_sniff_rejects_other_formats(line):
    assert not qmail.sniff(line)
    assert qmail.parse(line) is None


@settings(max_examples=200, deadline=None, database=None)
@given(st.text())
def test_any_text_gives_none_or_events(text):
    check(qmail.parse(text))


@settings(max_examples=200, deadline=None, database=None)
@given(st.sampled_from(["success", "deferral", "failure"]), st.text(max_size=300))
def test_any_report_gives_one_event(kind, report):
    result = qmail.parse(f"{T}delivery 9: {kind}: {report}")
    assert result is not None and len(result) == 1
    assert result[0].code is None or (len(result[0].code) == 3 and result[0].code.isascii())


@settings(max_examples=200, deadline=None, database=None)
@given(st.sampled_from(OWN), st.integers(min_value=0, max_value=300), st.text(max_size=120))
def test_damaged_lines_never_raise(line, cut, tail):
    check(qmail.parse(line[:cut] + tail))
    check(qmail.parse(line[:cut] + "\x00" + tail + line[cut:]))
