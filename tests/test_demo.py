"""`demo`: what the README's first command serves — counters that grow and cover every catalogue code."""

from __future__ import annotations

import subprocess
import sys
import time

from helpers import ROOT, free_port, http_get, samples

from exporter.catalogue import Catalogue


def total(smp: dict) -> float:
    return sum(v for (name, _), v in smp.items() if name == "mail_responses_total")


def test_demo_serves_growing_counters_for_every_code():
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter",
            "demo",
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--rate",
            "400",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/metrics" in banner
        codes = {e.code for e in Catalogue.load().entries}
        deadline = time.monotonic() + 30
        seen: set[str] = set()
        first = None
        while time.monotonic() < deadline:
            status, body, _ = http_get(f"http://127.0.0.1:{port}/metrics")
            assert status == 200
            smp = samples(body)
            first = total(smp) if first is None else first
            seen = {
                dict(lbl)["code"] for (name, lbl), v in smp.items() if name == "mail_responses_total" and v
            }
            if codes <= seen and total(smp) > first:
                break
            time.sleep(0.2)
        assert codes <= seen, f"codes never seen: {sorted(codes - seen)}"
        assert total(smp) > first
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0
