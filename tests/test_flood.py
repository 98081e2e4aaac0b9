"""A flood of hostile lines through the real counting path: the series stay bounded and memory flat.

Two million Postfix-shaped lines (one million, then a second million) with random reply codes, random
enhanced codes and garbage in every field, plus lines of random bytes (NUL, invalid UTF-8, CR, lines
over the size limit), and a JSON-lines source whose code field holds anything at all. On this 2-core
machine the whole test takes about half a minute.

The bound, per source (documented in the README's SECURITY section):
    code label:     the catalogue's codes and the 240 SMTP codes 200-559, plus "none" and "other"
    responses:      (that many codes, "none" twice: success and failure) x 2 directions
    statuses:       5;   lines: 4 results (outcome, ignored, unparsed, oversize)
    enhanced:       (the known RFC 3463 codes + "other") x 2 outcomes
    The other families (file events, read errors, lost bytes) have labels the code sets, not the log.
"""

from __future__ import annotations

import json
import random
import resource
from pathlib import Path

import pytest

from exporter import enhanced
from exporter.catalogue import Catalogue
from exporter.config import SourceConfig
from exporter.counting import LINE_RESULTS, replay_files
from exporter.events import DIRECTIONS, STATUSES
from exporter.metrics import Counts

LINES = 1_000_000
POOL = 1 << 16
SMTP_CODES = {f"{a}{b}{c}" for a in "2345" for b in "012345" for c in "0123456789"}
PAGE = resource.getpagesize()


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


_ALPHABET = "abcdefghijklmnopqrstuvwxyzABC0123456789 <>[]()=,;:.@/\\\"'{}\t\0\x7fé߷𝄞"


class Flood:
    """Hostile lines from a seeded generator.

    Drawing every field from the generator is too slow for millions of lines, so the pieces (codes,
    enhanced codes, junk, raw byte lines) come from pools made once per seed, picked by random indices.
    """

    def __init__(self, seed: int):
        rng = self.rng = random.Random(seed)
        distinct = sorted({self._code() for _ in range(60_000)})
        self.distinct_codes = len(distinct)
        self.codes = (distinct * (POOL // len(distinct) + 1))[:POOL]
        self.enhanced = [self._enhanced() for _ in range(POOL)]
        self.junk = [self._junk(0, 40) for _ in range(POOL)]
        self.raw = [
            bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120))).replace(b"\n", b" ")
            + rng.choice((b"\n", b"\r\n"))
            for _ in range(4096)
        ]
        self.statuses = ["sent", "deferred", "bounced", "expired", "rejected", *self.junk[:11]]
        self.services = ["smtp", "lmtp", "local", "pipe", *self.junk[11:23]]

    def picks(self, count: int) -> list[int]:
        """`count` random indices below POOL (POOL is 2**16)."""
        return memoryview(self.rng.randbytes(2 * count)).cast("H").tolist()

    def _junk(self, low: int, high: int) -> str:
        rng = self.rng
        return "".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(low, high)))

    def _code(self) -> str:
        rng = self.rng
        kind = rng.random()
        if kind < 0.3:
            return str(rng.randrange(100, 1000))
        if kind < 0.5:
            return "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 9)))
        if kind < 0.6:
            return "0" * rng.randrange(1, 4) + str(rng.randrange(1000))
        if kind < 0.8:
            return "".join(rng.choice("0123456789xX-+.٥ \t") for _ in range(rng.randrange(1, 7)))
        return self._junk(1, 12)

    def _enhanced(self) -> str:
        rng = self.rng
        kind = rng.random()
        if kind < 0.4:
            return f"{rng.choice('245')}.{rng.randrange(0, 10)}.{rng.randrange(0, 10)}"
        if kind < 0.7:
            return ".".join(
                str(rng.randrange(0, 10 ** rng.randrange(1, 5))) for _ in range(rng.randrange(1, 5))
            )
        return self._junk(0, 10)

    def postfix_block(self, start: int, count: int) -> bytes:
        """`count` lines: deliveries and rejections with hostile fields, random bytes, a rare huge line."""
        codes, enh, junk, raw = self.codes, self.enhanced, self.junk, self.raw
        statuses, services = self.statuses, self.services
        out = []
        for i, (kind, c, e1, e2, j1, j2, j3, j4) in enumerate(
            zip(*(self.picks(count) for _ in range(8)), strict=True)
        ):
            n = start + i
            if kind < 36_000:  # 55 %: a delivery
                text = (
                    f"Dec {n % 31 + 1:2d} 10:00:00 {junk[j1]} postfix/{services[j2 & 15]}[{n}]: {n:X}: "
                    f"to=<{junk[j2]}>, relay={junk[j3]}, delay={junk[j4]}, delays=0/0/0/0, "
                    f"dsn={enh[e1]}, status={statuses[j3 & 15]} ({codes[c]} {enh[e2]} {junk[j4]})"
                )
            elif kind < 56_000:  # 30 %: a rejection
                text = (
                    f"Dec  4 10:00:00 mx postfix/smtpd[{n}]: NOQUEUE: reject: RCPT from {junk[j1]}"
                    f"[{junk[j2]}]: {codes[c]} {enh[e1]} <{junk[j3]}>: {junk[j4]}; "
                    f"from=<{junk[e2]}> to=<{junk[j1]}> proto=ESMTP helo=<{junk[j2]}>"
                )
            elif kind < 65_533:  # 15 %: random bytes (NUL, invalid UTF-8, CR)
                out.append(raw[c & 4095])
                continue
            else:  # about 1 in 20,000: over the 64 KiB line limit, counted as oversize
                out.append(b"x" * (70 * 1024) + b"\n")
                continue
            out.append(text.encode() + b"\n")
        return b"".join(out)

    def jsonl_block(self, start: int, count: int) -> bytes:
        """`count` JSON lines whose code field holds anything: hostile strings, huge numbers, objects."""
        rng = self.rng
        odd = ("null", "[1]", '{"a":1}', "1e999", "-0.0", "true")
        values = [
            json.dumps(rng.choice(self.codes)) if k < 0.6 else str(rng.randrange(-(10**30), 10**30))
            if k < 0.8 else rng.choice(odd)
            for k in (rng.random() for _ in range(count))
        ]  # fmt: skip
        return "".join(f'{{"n":{start + i},"code":{v}}}\n' for i, v in enumerate(values)).encode()


def write_flood(path: Path, lines: int, make) -> None:
    """Write `lines` lines made by make(start, count) in blocks, so that the test's own memory stays small."""
    with path.open("wb") as f:
        for start in range(0, lines, 10_000):
            f.write(make(start, min(10_000, lines - start)))


def series_bound(catalogue: Catalogue) -> dict[str, int]:
    """The most series one source can have in each family that a log line can reach, whatever it says."""
    known = {e.code for e in catalogue.entries} | SMTP_CODES
    return {
        "responses": (len(known) + 1 + 2) * len(DIRECTIONS),  # "other" once; "none" as success and failure
        "statuses": len(STATUSES),
        "enhanced": (len(enhanced.load()) + 1) * 2,
        "lines": len(LINE_RESULTS),
    }


OTHER_FAMILY_BOUND = 10  # file events, read errors, lost bytes...: labels set by the code, not by the log


def check_bounded(counts: Counts, catalogue: Catalogue, source: str) -> dict[str, int]:
    """Every series key is from the bounded label sets, and each family is within its bound."""
    values, _, _ = counts.copy()
    known = {e.code for e in catalogue.entries} | SMTP_CODES
    known_enhanced = set(enhanced.load())
    sizes = {}
    for family, series in values.items():
        mine = [k for k in series if k[0] == source]
        sizes[family] = len(mine)
        for key in mine:
            if family == "responses":
                _, code, typ, outcome, direction = key
                assert code in known | {"none", "other"} and direction in DIRECTIONS, key
                if code == "none":
                    assert (typ, outcome) in {("smtp", "success"), ("smtp", "failure")}, key
                else:
                    assert catalogue.classify(code) == (code, typ, outcome), key
            elif family == "enhanced":
                assert key[1] in known_enhanced | {"other"} and key[2] in ("success", "failure"), key
            elif family == "statuses":
                assert key[1] in STATUSES, key
            elif family == "lines":
                assert key[1] in LINE_RESULTS, key
    bound = series_bound(catalogue)
    for family, n in sizes.items():
        assert n <= bound.get(family, OTHER_FAMILY_BOUND), (family, n)
    return sizes


@pytest.mark.slow
def test_a_flood_of_hostile_lines_stays_within_the_series_bound_and_memory_is_flat(tmp_path):
    catalogue = Catalogue.load()
    first, second, app = tmp_path / "flood-1.log", tmp_path / "flood-2.log", tmp_path / "flood.jsonl"
    flood = Flood(1)
    write_flood(first, LINES, flood.postfix_block)
    write_flood(second, LINES, Flood(2).postfix_block)
    write_flood(app, LINES // 5, Flood(3).jsonl_block)
    assert flood.distinct_codes > 10_000  # the input really holds many distinct code strings

    counts = Counts()
    postfix = SourceConfig(name="mx", format="postfix", path="-")
    replay_files([str(first)], postfix, catalogue, counts)
    after_first = check_bounded(counts, catalogue, "mx")
    values, _, _ = counts.copy()
    lines = {key[1]: n for key, n in values["lines"].items()}
    assert sum(lines.values()) == LINES and lines["unparsed"] > 0 and lines["oversize"] > 0
    assert lines["outcome"] > LINES // 4
    others = sum(n for key, n in values["responses"].items() if key[1] == "other")
    assert others > 0 and after_first["responses"] > 200  # the flood reached many of the allowed codes

    memory_before = rss()
    replay_files([str(second)], postfix, catalogue, counts)  # a second million, into the same counts
    growth = rss() - memory_before
    after_second = check_bounded(counts, catalogue, "mx")
    values, _, _ = counts.copy()
    assert sum(n for key, n in values["lines"].items() if key[0] == "mx") == 2 * LINES
    assert after_second["responses"] <= series_bound(catalogue)["responses"]
    assert growth < 16 * 1024 * 1024, f"resident memory grew by {growth} bytes over the second million"

    plex = SourceConfig(name="app", format="jsonl", path="-")
    replay_files([str(app)], plex, catalogue, counts)
    check_bounded(counts, catalogue, "app")
    values, _, _ = counts.copy()
    assert sum(n for key, n in values["responses"].items() if key[0] == "app" and key[1] == "other") > 0
