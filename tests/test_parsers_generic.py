"""JSON lines, CSV and regex formats (application logs such as Plex's email log)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.events import Event
from exporter.parsers import csvfmt, jsonl, regexfmt


@pytest.mark.parametrize(
    "line,expected",
    [
        ('{"ts":"2026-12-04T10:00:00Z","event":"email.send","code":9009}', [Event("9009", None, "outbound")]),
        ('{"code":"1","msg":"ok"}', [Event("1", None, "outbound")]),
        ('{"code": 250 }', [Event("250", None, "outbound")]),
        ('{"code": 550.0}', [Event("550", None, "outbound")]),
        ('{"code": true}', [Event("true", None, "outbound")]),
        ('{"code": [1]}', [Event("?", None, "outbound")]),
        ('{"event":"startup"}', []),
        ('{"code": null}', []),
        ('{"code": ""}', []),
        ("not json", None),
        ("[1,2,3]", None),
        ('{"code": 9009', None),
        ("", None),
    ],
)
def test_jsonl(line, expected):
    parse = jsonl.make_parser()
    assert parse(line) == (None if expected is None else tuple(expected))


def test_jsonl_nested_field_and_direction():
    parse = jsonl.make_parser(field="smtp.code", direction="inbound")
    assert parse('{"smtp":{"code":9998}}') == (Event("9998", None, "inbound"),)
    assert parse('{"smtp":5}') == ()


def test_csv_reads_header_then_rows():
    p = csvfmt.make_parser(column="status_code")
    assert p("time,user,status_code,message") == ()
    assert p('2026-12-04T10:00:00Z,alice,9009,"login failed, bad password"') == (
        Event("9009", None, "outbound"),
    )
    assert p("2026-12-04T10:00:01Z,bob,1,ok\r") == (Event("1", None, "outbound"),)
    assert p("2026-12-04T10:00:02Z,bob,,no code") == ()
    assert p("too,few") is None


def test_csv_without_its_column_in_the_header_reads_nothing():
    p = csvfmt.make_parser(column="code")
    assert p("a,b,c") is None
    assert p("1,2,3") is None


def test_csv_semicolon_delimiter():
    p = csvfmt.make_parser(column="code", delimiter=";")
    assert p("when;code") == ()
    assert p("now;9010") == (Event("9010", None, "outbound"),)


def test_regex():
    parse = regexfmt.make_parser(r"SMTP error (?P<code>\d+)|(?P<ok>sent ok)(?P<code2>)?")
    assert parse("Dec 04 10:00 [Plex] SMTP error 9009 logging in") == (Event("9009", None, "outbound"),)
    assert parse("sent ok") == ()
    assert parse("unrelated") is None
    with pytest.raises(ValueError):
        regexfmt.make_parser(r"no group here")


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_generic_parsers_never_raise(text):
    for parse in (jsonl.make_parser(), csvfmt.make_parser(), regexfmt.make_parser(r"(?P<code>\d+)")):
        result = parse(text)
        assert result is None or all(isinstance(e, Event) for e in result)
