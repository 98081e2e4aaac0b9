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


def test_the_detected_format_is_exposed_and_counted_like_the_named_one():
    import subprocess
    import sys

    from helpers import samples, value

    def run(*args):
        out = subprocess.run(
            [sys.executable, "-m", "exporter", "replay", *args, str(SAMPLE)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
        return samples(out)

    auto_smp, named = run("--name", "mx"), run("--format", "postfix", "--name", "mx")
    assert value(auto_smp, "mail_exporter_source_info", source="mx", format="postfix") == 1
    drop = {"mail_exporter_source_info"}
    assert {k: v for k, v in auto_smp.items() if k[0] not in drop} == {
        k: v for k, v in named.items() if k[0] not in drop
    }


def test_a_resumed_auto_source_detects_again_and_counts_only_new_lines(tmp_path):
    from helpers import Daemon, value

    log = tmp_path / "mail.log"
    lines = SAMPLE.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:12]))
    state = tmp_path / "state.json"
    with Daemon("--source", f"mx={log}", "--from-beginning", "--state-file", str(state)) as d:
        smp = d.wait_for(lambda s: value(s, "mail_exporter_source_info", source="mx", format="postfix") == 1)
        assert value(smp, "mail_exporter_lines_total", source="mx", result="outcome") == 5
    with log.open("a") as f:
        f.write("".join(lines[12:]))
    with Daemon("--source", f"mx={log}", "--state-file", str(state)) as d:
        smp = d.wait_for(lambda s: value(s, "mail_exporter_lines_total", source="mx", result="outcome") == 14)
        assert value(smp, "mail_exporter_lines_total", source="mx", result="outcome") == 14
        assert value(smp, "mail_exporter_lines_total", source="mx", result="unparsed") == 1
        assert value(smp, "mail_exporter_source_info", source="mx", format="postfix") == 1
