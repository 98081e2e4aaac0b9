"""The block-level fast paths count exactly what the line parser counts, line by line.

postfix.count_block() counts a whole block at once, by the compiled scanner (bytes, where it is built)
or by one regular expression (count_regex) instead of parse() per line. Its contract: the same
outcome/ignored/unparsed line counts and the same events, for any block. These tests compare the
three on the parser's table lines, the sample log, generated logs, and hypothesis-mutated lines
(tricky characters, cut lines, other headers, carriage returns, bytes that are not UTF-8), and check
that SourceSink gives the same counts whichever path it takes.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import REQUIRE_ENV, requires_system
from hypothesis import given, settings
from hypothesis import strategies as st
from test_parser_postfix import CASES

from exporter.catalogue import Catalogue
from exporter.config import SourceConfig
from exporter.counting import SourceSink
from exporter.events import tally_lines
from exporter.parsers import postfix

SAMPLE = Path(__file__).parent / "data" / "postfix-sample.log"
BASE_LINES = [line for line, _ in CASES] + SAMPLE.read_text(encoding="utf-8").splitlines()


def by_lines(text: str) -> tuple[int, int, int, dict]:
    """What parse() gives line by line, in count_block()'s shape."""
    return tally_lines(text, postfix.parse)


def assert_same(text: str) -> None:
    expected = by_lines(text)
    assert postfix.count_regex(text) == expected
    if text.isascii():
        assert postfix.count_regex(text.encode()) == expected
    assert_scanned(text.encode(), expected)


def assert_scanned(data: bytes, expected: tuple | None = None) -> None:
    """The compiled scanner on bytes: what the sink's line-by-line path makes of the same bytes."""
    if postfix._postfix_scan is None:
        return  # test_scanner_is_built says whether that may be
    if expected is None:
        expected = by_lines(data.decode("utf-8", "replace").replace("\r\n", "\n"))
    assert postfix.count_scanned(data) == expected
    assert postfix.count_block(data) == expected


def test_scanner_is_built():
    """Where a C compiler is (as in CI), `pip install` builds the scanner; elsewhere it is optional."""
    if postfix._postfix_scan is None:
        reason = "the compiled Postfix scanner is not built (no C compiler at install time?)"
        if requires_system():
            pytest.fail(f"{reason}; {REQUIRE_ENV} is set, so this is a failure")
        pytest.skip(reason)
    assert postfix.count_block(CASES[0][0].encode() + b"\n") == postfix.count_regex(CASES[0][0] + "\n")


def test_table_lines_one_by_one_and_together():
    for line in BASE_LINES:
        assert_same(line + "\n")
    assert_same("\n".join(BASE_LINES) + "\n")


def test_sample_log():
    text = SAMPLE.read_text(encoding="utf-8")
    outcome, ignored, unparsed, events = postfix.count_block(text)
    assert (outcome, ignored, unparsed) == by_lines(text)[:3]
    assert outcome > 0 and ignored > 0 and unparsed > 0  # the sample exercises all three
    assert_same(text)


def _generated(seed: int, n: int) -> str:
    """A log shuffled from the documented lines, with fresh queue ids, pids, hosts and timestamps."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        line = rng.choice(BASE_LINES)
        line = line.replace("[4123]", f"[{rng.randrange(1, 99999)}]").replace("7A1B82C3D4", f"{i:010X}")
        if rng.random() < 0.2:
            line = line.replace("mx1 ", rng.choice(["mail.example.org ", "h ", "mx-2.example.net "]), 1)
        if rng.random() < 0.1:
            line = line.replace("Dec  4", rng.choice(["Jan 12", "Feb 03", "Mar  9"]), 1)
        out.append(line)
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_logs(seed):
    assert_same(_generated(seed, 3000))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        "\n\n\n",
        "garbage\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: \n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=4.0.0, status=deferred (x said: 4501 no)\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=5.0.0, status=bounced (a said: b said: 550-x)\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, relay=x, delay=1, delays=1, dsn=5.0.0, "
        "status=expired\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, relay=x, dsn=2.0.0, status=sent (host said: 250 "
        "ok)\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, relay=x, delay=1, delays=1, dsn=1, status=x, dsn=2, "
        "status=sent (250 ok)\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: a:b: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: a:b:c:d: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "Dec  4 15:36:10 mx1 postfix/cleanup[1]: Q: milter-reject: END-OF-MESSAGE from h[1.2.3.4]: 5.7.1 x\n",
        "Dec  4 15:36:10 mx1 postfix/cleanup[1]: Q: reject: \n",
        "Dec  4 15:36:10 mx1 a/b/cleanup[1]: Q: reject: RCPT from h[1.2.3.4]: 550 5.1.1 x; to=<a>: 5.1.2 y\n",
        "Dec  4 15:36:10 mx1 postfix/cleanupd[1]: Q: reject: RCPT from h[1.2.3.4]: 550 5.1.1 x\n",
        "Dec  4 15:36:10 mx1 postfix/smtpd[1]: NOQUEUE: milter-reject: body x from h[1.2.3.4]: 5.7.1 y\n",
        "Dec  4 15:36:10 mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from h[1.2.3.4]:25: 450-4.7.1 z\n",
        "Dec  4 15:36:10 mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from h[1.2.3.4]: 5.7.1234 z\n",
        "Dec  4 15:36:10 mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from h[1.2.3.4]: 550 5.7.1x z\n",
        "Dec  4 15:36:10 mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from h[1.2.3.4]: 550 5.7.1_\n",
        "Dec  4 15:36:10 mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from h[1.2.3.4]: 550 5.7.1.\n",
        "Dec  4 15:36:10 mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from h[1.2.3.4]: 550 5.7777.1 z\n",
        "Dec  4 15:36:10 mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from h[1.2.3.4]: 5500 5.7.1 z\n",
        "Dec  4 15:36:10 mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from h[1.2.3.4]:25x: 550 5.7.1 z\n",
        "Dec  4 15:36:10 mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from h[1.2.3.4]:: 550 5.7.1 z\n",
        "Dec  4 15:36:10 mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from h x[1.2.3.4]: 550 5.7.1 z\n",
        "Dec  4 15:36:10 mx1 postfix/smtpd[1]: NOQUEUE: reject: rcpt from h[1.2.3.4]: 550 5.7.1 z\n",
        "Dec  4 15:36:10 mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from h[1.2.3.4: 550 5.7.1 z\n",
        "Dec  4 15:36:10 mx1 postfix/smtp/[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "Dec  4 15:36:10 mx1 /postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "Dec  4 15:36:10 mx1 postfix/[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "Dec  4 15:36:10 mx1 postfix.x-y_z[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]:Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1] : Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "Dec  4 15:36:10  mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "Dec 14 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "DEC  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "2026-12-04T15:36:10.Z mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "2026-12-04T15:36:10+01:00 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "2026-12-04T15:36:10+01:0 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "2026-12-04T15:36:10-010000 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "2026-12-04T15:36:10+010a mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, orig_to=<\"b>\">, dsn=2.0.0, status=sent (250 ok)\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent "
        "(x refused to talk to me: 421)\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (x said:  550 y said: 551)\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent ( said: 450)\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (25)\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=., status=SOFTBOUNCE (550 x)\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=force-expired (550 x)\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=deliverable (250 x)\n",
        "Dec  4 15:36:10 mx1 postfix/qmgr[1]: Q: from=<a>, status=expired, returned to sender\n",
        "Dec  4 15:36:10 mx1: postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "Dec  4 15:36:10 mx1 postfix[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "Dec  4 15:36:10 mx1 postfix-2/smtp: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "Dec  4 15:36:10 mx1 postfix//smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "Dec  4 15:36:10 m\tx postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "Dec  4 15:36:10 m\x1cx postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (\u0662\u0665\u0660 ok)\n",
        "Dec \u0664 15:36:10 mx1 postfix/smtp[1]: Q: to=<\u00e9>, dsn=2.0.0, status=sent (250 ok)\n",
        "2026-12-04T15:36:10+0100 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "2026-12-04T15:36:10.5Z mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>\nDec  4 15:36:10 mx1 postfix/smtp[1]: Q: "
        "to=<b>, dsn=2.0.0, status=sent (250 ok)\n",
    ],
)
def test_edges(text):
    assert_same(text)


def test_declined_blocks():
    line = CASES[0][0]
    assert postfix.count_block(line) is None  # no final newline
    assert postfix.count_block(line.encode()) is None
    assert postfix.count_block(line + "\r\n") is None  # the caller turns \r\n into \n first
    assert postfix.count_regex((line + "\n").encode() + "é\n".encode()) is None  # bytes that are not ASCII
    assert postfix.count_regex((line + "\r\n").encode()) is None
    assert postfix.count_block(line + "\n") is not None


@pytest.mark.parametrize(
    "data",
    [
        b"\r\n",
        b"\r\r\n",
        b"Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\r\n",
        b"Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\r\r\n",
        b"Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent\r (250 ok)\n",
        b"Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250\r\n",
        b"Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<\xe9>, dsn=2.0.0, status=sent (250 ok)\n",
        b"Dec  4 15:36:10 m\xc2\xa0x postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 ok)\n",
        b"Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent "
        b"(\xd9\xa2\xd9\xa5\xd9\xa0)\n",
        b"Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=2.0.0, status=sent (250 \xff\xfe)\n",
        b"Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<a>, dsn=" + b"1." * 40 + b"0, status=sent (250 ok)\n",
        b"\x00\n\xff\n\n",
    ],
)
def test_scanner_carriage_returns_and_other_bytes(data):
    assert_scanned(data)
    assert_scanned(data * 3)


TRICKY = [":", ": ", " ", "<", ">", '"', ",", ", ", "(", ")", "[", "]", "-", "/", "=", "\t", "\x1c", "\x00"]
TRICKY += ["é", "\u0663", "\ufffd", "0", "5", "550 ", " said: ", ", dsn=2.0.0, status=sent (", "reject: "]
TRICKY += ["to=<", "from=<", "expired, returned to sender", "/cleanup", "header ", "postfix/"]


@st.composite
def mutated_line(draw) -> str:
    line = draw(st.sampled_from(BASE_LINES))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.integers(0, 2))
        pos = draw(st.integers(0, len(line)))
        if kind == 0:
            line = line[:pos] + draw(st.sampled_from(TRICKY)) + line[pos:]
        elif kind == 1:
            line = line[:pos] + line[pos + draw(st.integers(1, 12)) :]
        else:
            line = line[:pos]
    return line.replace("\n", " ").replace("\r", " ")


@settings(max_examples=300, deadline=None)
@given(st.lists(mutated_line(), min_size=1, max_size=8))
def test_mutated_blocks(lines):
    assert_same("\n".join(lines) + "\n")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(mutated_line(), st.sampled_from([b"", b"\r", b"\xff", b"\xc3", b"\r\r"]))))
def test_mutated_bytes_for_the_scanner(lines):
    assert_scanned(b"".join(line.encode() + end + b"\n" for line, end in lines))


PIECES = TRICKY + [
    "a",
    "Z",
    "1",
    "\n",
    "Dec  4 15:36:10 mx1 postfix/smtp[1]: ",
    "postfix/smtpd[2]: NOQUEUE: ",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
def test_pieces_in_any_order(text):
    assert_same(text + "\n")


def _sink() -> SourceSink:
    return SourceSink(SourceConfig(name="mx", format="postfix", path="-"), postfix, Catalogue.load())


def test_sink_counts_the_same_on_either_path():
    text = (
        _generated(7, 2000)
        + "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<\u00e9>, dsn=2.0.0, status=sent (250 ok)\n"
    )
    fast, slow = _sink(), _sink()
    slow._count_block = None  # the line-by-line path
    for sink in (fast, slow):
        sink.count_text(text, sink.new_parser())
        sink.count_text(text.replace("\n", "\r\n"), sink.new_parser())
    a, b = fast.take(), slow.take()
    for family in a.__slots__:
        assert getattr(a, family) == getattr(b, family), family
    assert a.lines[("mx", "outcome")] > 0


def test_sink_counts_bytes_blocks_the_same():
    text = _generated(8, 1500)

    class File:
        ctx = None

    fast, slow = _sink(), _sink()
    slow._count_block = None
    for sink in (fast, slow):
        tf = File()
        sink.lines(tf, text.encode())  # ASCII: counted as bytes on the fast path
        sink.lines(tf, (text + "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<é>\n").encode())  # decoded
    a, b = fast.take(), slow.take()
    for family in a.__slots__:
        assert getattr(a, family) == getattr(b, family), family


def test_auto_counts_a_postfix_log_by_block_once_it_knows_the_format(monkeypatch):
    """The default format, `auto`, takes the block counter of the format it recognised."""
    from exporter.parsers import auto

    calls = []
    real = postfix.count_block
    monkeypatch.setattr(postfix, "count_block", lambda block: calls.append(len(block)) or real(block))
    text = _generated(9, 1500)

    class File:
        ctx = None
        offset = 0

    by_auto = SourceSink(SourceConfig(name="mx", format="auto", path="-"), auto, Catalogue.load())
    by_line = _sink()
    by_line._count_block = None
    first = b"garbage first\n" + text[:2000].encode()  # undecided, then postfix
    for sink in (by_auto, by_line):
        tf = File()
        sink.lines(tf, first)
        sink.lines(tf, text.encode())
        sink.lines(tf, (text + "Dec  4 15:36:10 mx1 postfix/smtp[1]: Q: to=<\u00e9>\n").encode())
    assert by_auto.format == "postfix"
    # the first block decided the format line by line; the others went by block (the regex path
    # counts the non-ASCII one after decoding it, a second call for the same block)
    assert len(calls) >= 2 and len(first) not in calls
    a, b = by_auto.take(), by_line.take()
    for family in a.__slots__:
        assert getattr(a, family) == getattr(b, family), family
