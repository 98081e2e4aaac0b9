"""Shared test helpers. Nothing here starts a process at import time."""

from __future__ import annotations

import os
import shutil

import pytest

# CI sets this so that a test which would skip for a missing system binary fails instead.
REQUIRE_ENV = "MAILCODE_TEST_REQUIRE_SYSTEM"


def requires_system() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false", "no")


def need_binary(name: str, *candidates: str) -> str:
    """Path of a system binary; skip the test (fail under CI's REQUIRE_ENV) when it is missing."""
    for candidate in (name, *candidates):
        executable = os.path.isabs(candidate) and os.access(candidate, os.X_OK)
        found = shutil.which(candidate) or (candidate if executable else None)
        if found:
            return found
    reason = f"{name} is not installed (Debian package provides it; `.ci/run` installs it)"
    if requires_system():
        pytest.fail(f"{reason}; {REQUIRE_ENV} is set, so a missing binary is a failure")
    pytest.skip(reason)
    raise AssertionError("unreachable")
