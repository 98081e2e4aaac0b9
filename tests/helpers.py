"""Small shared helpers for tests: free ports, scraping /metrics, starting the daemon as a subprocess."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Exposition text -> {(sample name, sorted labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(smp: dict, name: str, **labels: str) -> float | None:
    return smp.get((name, tuple(sorted(labels.items()))))


def http_get(url: str, timeout: float = 5.0, headers: dict | None = None) -> tuple[int, str, dict]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


class Daemon:
    """`python -m exporter run ...` on a free loopback port; stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, *args: str, port: int | None = None, env: dict | None = None):
        self.port = port or free_port()
        self.args = [
            sys.executable,
            "-m",
            "exporter",
            "run",
            "--web.listen-address",
            f"127.0.0.1:{self.port}",
            *args,
        ]
        self.env = {**os.environ, **(env or {})}
        self.cwd: Path = ROOT
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> Daemon:
        self.proc = subprocess.Popen(
            self.args, cwd=self.cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                _, err = self.proc.communicate()
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {err}")
            with contextlib.suppress(OSError):
                if http_get(self.url + "/healthz", timeout=1)[0] == 200:
                    return self
            time.sleep(0.05)
        raise RuntimeError("daemon did not answer /healthz in time")

    def metrics(self) -> dict:
        status, body, _ = http_get(self.url + "/metrics")
        assert status == 200
        return samples(body)

    def wait_for(self, predicate, timeout: float = 10.0) -> dict:
        """Scrape until predicate(samples) is true; the last samples either way."""
        deadline = time.monotonic() + timeout
        while True:
            smp = self.metrics()
            if predicate(smp) or time.monotonic() > deadline:
                return smp
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, str]:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()


def check(result: object) -> None:
    """A parser's answer for any line: None (not of the format) or a tuple of Events, nothing else."""
    from exporter.events import Event

    assert result is None or (isinstance(result, tuple) and all(isinstance(e, Event) for e in result))


def bare(parser: object, header: str | None = None):
    """A W3C-style parser's (IIS, Exchange) own line parse, without the catch-all that would report a
    bug as an unparsed line; fed `header` first (a #Fields: line), which must give ()."""
    if header is not None:
        assert parser._parse(header) == ()
    return parser._parse
