"""`auto`: each format's own lines are recognised as that format and no other, then read by its parser."""

from __future__ import annotations

import importlib

import pytest
from helpers import ROOT

from exporter.parsers import auto, get

SAMPLE = ROOT / "tests" / "data" / "postfix-sample.log"


def own_lines(fmt: str) -> list[str]:
    """The lines of a format's table test that its own parser recognises (not None)."""
    mod = importlib.import_module(f"test_parser_{fmt}")
    if fmt == "postfix":
        return [line for line, _ in mod.CASES]
    if hasattr(mod, "OWN"):
        return list(mod.OWN)
    if fmt == "courier":
        return [line for line, expected in mod.LOG if expected is not None]
    return list(mod.SNIFF_TRUE)


@pytest.mark.parametrize("fmt", auto.CANDIDATES)
def test_sniffs_are_exclusive(fmt):
    lines = own_lines(fmt)
    assert lines
    recognised = 0
    for line in lines:
        claims = [other for other in auto.CANDIDATES if get(other).sniff(line)]
        assert claims in ([], [fmt]), f"{line!r} claimed by {claims}"
        recognised += bool(claims)
    assert recognised >= 1


@pytest.mark.parametrize("fmt", auto.CANDIDATES)
def test_auto_reads_each_format_like_its_own_parser(fmt):
    lines = own_lines(fmt)
    chosen = []
    parse = auto.make_parser(on_choose=chosen.append)
    first = next(i for i, line in enumerate(lines) if get(fmt).sniff(line))
    own = get(fmt).make_parser()
    for line in lines[first:]:
        assert parse(line) == own(line)
    assert chosen == [fmt]


def test_auto_leaves_unrecognised_lines_unparsed():
    parse = auto.make_parser()
    assert parse("hello world") is None
    assert parse('{"code": 250}') is None  # application logs are never guessed
    lines = SAMPLE.read_text().splitlines()
    results = [parse(line) for line in lines]
    assert sum(1 for r in results if r) == 14  # then it reads the Postfix sample exactly


def test_auto_is_primed_once_a_stateless_format_is_known():
    a = auto.AutoParser()
    assert not a.primed
    a.parse(SAMPLE.read_text().splitlines()[0])
    assert a.chosen == "postfix" and a.primed
