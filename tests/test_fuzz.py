"""A bounded, coverage-guided fuzz run (atheris) over every parser in exporter/parsers.

The property tests (hypothesis) beside each parser try random text; this run lets libFuzzer steer the
input by the branches and regular expressions it reaches. It lasts FUZZ_SECONDS in a subprocess (atheris
ends its process when it is done). Without atheris the test skips, and under CI
(MAILCODE_TEST_REQUIRE_SYSTEM=1) it fails instead when the test extras declare atheris for this machine.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import REQUIRE_ENV, requires_system
from helpers import ROOT

FUZZ_SCRIPT = ROOT / "tests" / "fuzz" / "fuzz_parsers.py"
FUZZ_SECONDS = 20


def atheris_declared() -> bool:
    """True when pyproject's test extras ask for atheris on this platform (its marker holds here)."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for spec in extras.get("test", []):
        try:
            from packaging.requirements import Requirement
        except ImportError:  # pragma: no cover - pytest itself depends on packaging
            return spec.lower().startswith("atheris")
        req = Requirement(spec)
        if req.name.lower() == "atheris" and (req.marker is None or req.marker.evaluate()):
            return True
    return False


def need_atheris() -> None:
    try:
        import atheris  # noqa: F401
    except ImportError as exc:
        reason = f"atheris cannot be imported ({exc}); `pip install atheris` (wheels: Linux x86_64)"
        if requires_system() and atheris_declared():
            pytest.fail(f"{reason}; {REQUIRE_ENV} is set and the test extras declare it")
        pytest.skip(reason)


@pytest.mark.slow
def test_fuzz_every_parser(tmp_path: Path) -> None:
    need_atheris()
    corpus = tmp_path / "corpus"
    seeded = subprocess.run(
        [sys.executable, str(FUZZ_SCRIPT), "--seeds", str(corpus)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert seeded.returncode == 0, seeded.stderr
    assert len(list(corpus.iterdir())) > 10
    result = subprocess.run(
        [
            sys.executable,
            str(FUZZ_SCRIPT),
            f"-max_total_time={FUZZ_SECONDS}",
            "-max_len=4096",
            "-timeout=10",  # one input taking longer than this is a finding (a regex gone quadratic)
            "-rss_limit_mb=2048",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 120,
    )
    output = result.stdout + result.stderr
    crashes = [p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-"))]
    assert result.returncode == 0 and not crashes, f"{crashes}\n{output[-4000:]}"
    done = re.search(r"Done (\d+) runs", output)
    assert done is not None and int(done.group(1)) > 1000, output[-2000:]
