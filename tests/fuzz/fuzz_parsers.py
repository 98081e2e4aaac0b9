"""Coverage-guided fuzzing of every log parser with atheris: any text in, None or events out, never raises.

The first byte of an input picks the format; the rest, decoded as the daemon decodes a log (UTF-8,
undecodable bytes replaced), is split into lines that go through one fresh parser, so stateful formats
(a #Fields: header, a CSV header, a queue ID remembered across lines) are driven across several lines.
For postfix, the same bytes also go to the block counters (the compiled scanner where it is built, and
the block regular expression), which must count exactly what the line parser counts.
Run by tests/test_fuzz.py for a bounded time; by hand, for longer (libFuzzer's options apply):

    .venv/bin/python tests/fuzz/fuzz_parsers.py --seeds /tmp/corpus
    .venv/bin/python tests/fuzz/fuzz_parsers.py -max_total_time=600 /tmp/corpus
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports():
    import exporter.parsers as parsers_pkg
    from exporter.events import DIRECTIONS, STATUSES, Event, tally_lines

    for _info in pkgutil.iter_modules(parsers_pkg.__path__):
        importlib.import_module(f"exporter.parsers.{_info.name}")

# Formats whose parser needs an option to exist at all.
OPTIONS = {"regexfmt": {"pattern": r"(?:code|status)[=:] ?(?P<code>\S+)"}}


def targets() -> list[tuple[str, object]]:
    """(module name, module) of every format module in exporter/parsers, in a stable order."""
    found = []
    for info in sorted(pkgutil.iter_modules(parsers_pkg.__path__), key=lambda i: i.name):
        module = sys.modules[f"exporter.parsers.{info.name}"]
        if callable(getattr(module, "make_parser", None)):
            found.append((info.name, module))
    return found


TARGETS = targets()


def fresh_parser(name: str, module):
    made = module.make_parser(**OPTIONS.get(name, {}))
    return getattr(made, "parse", made)


def check(result: object, line: str) -> None:
    """A parser's answer is None or a tuple of well-formed events."""
    if result is None:
        return
    assert isinstance(result, tuple), (line, result)
    for ev in result:
        assert isinstance(ev, Event), (line, ev)
        assert ev.code is None or isinstance(ev.code, str), (line, ev)
        assert ev.status is None or ev.status in STATUSES, (line, ev)
        assert ev.direction in DIRECTIONS, (line, ev)
        assert ev.enhanced is None or isinstance(ev.enhanced, str), (line, ev)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    name, module = TARGETS[data[0] % len(TARGETS)]
    parse = fresh_parser(name, module)
    text = data[1:].decode("utf-8", "replace")
    for line in text.split("\n")[:64]:
        check(parse(line), line)
        sniff = getattr(module, "sniff", None)
        if sniff is not None:
            assert isinstance(sniff(line), bool), line
    if name == "postfix":
        block = data[1:] + b"\n"
        expected = tally_lines(block.decode("utf-8", "replace").replace("\r\n", "\n"), module.parse)
        assert module.count_block(block) == expected, block
        if "\r" not in text:
            assert module.count_regex(text + "\n") == tally_lines(text + "\n", module.parse), text


def write_seeds(directory: Path) -> None:
    """A starting corpus: an empty input per format, and the sample Postfix log's lines for postfix."""
    directory.mkdir(parents=True, exist_ok=True)
    sample = Path(__file__).resolve().parents[1] / "data" / "postfix-sample.log"
    for i, (name, _) in enumerate(TARGETS):
        (directory / f"seed-{name}").write_bytes(bytes([i]))
        if name == "postfix" and sample.exists():
            for k, line in enumerate(sample.read_bytes().splitlines()[:200]):
                (directory / f"seed-{name}-{k}").write_bytes(bytes([i]) + line)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--seeds":
        write_seeds(Path(sys.argv[2]))
        return
    atheris.enabled_hooks.add("RegEx")  # let the fuzzer learn the strings the patterns look for
    atheris.enabled_hooks.add("str")
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
