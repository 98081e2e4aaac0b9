"""Processes and what they cost: CPU and memory from /proc, scrapes over loopback, bounded waits."""

from __future__ import annotations

import contextlib
import http.client
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (its threads included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident) of a running process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


@dataclass
class OneShot:
    """A process run to completion: wall time, CPU time, peak RSS and its output."""

    wall: float
    cpu: float
    peak_rss_kb: int
    returncode: int
    stdout: bytes
    stderr: bytes


def run_measured(argv: list[str], timeout: float, env: dict | None = None) -> OneShot:
    """Run argv to completion; its CPU time and peak RSS come from GNU time when it is installed.

    Linux counts the parent's resident memory at fork into a child's ru_maxrss (the mm it had until
    exec), so wait4() from this (large) process overstates the peak: /usr/bin/time forks from a small one.
    """
    timer = shutil.which("time") or ("/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None)
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        report = os.path.join(tmp, "time")
        full = [timer, "-f", "%e %U %S %M", "-o", report, *argv] if timer else argv
        start = time.perf_counter()
        with open(os.path.join(tmp, "err"), "wb") as err:
            proc = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=err, env=env)
            try:
                stdout, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise
        wall = time.perf_counter() - start
        with open(os.path.join(tmp, "err"), "rb") as f:
            stderr = f.read()
        if timer:
            with open(report) as f:
                fields = f.read().split()[-4:]
            wall, cpu, peak = float(fields[0]), float(fields[1]) + float(fields[2]), int(fields[3])
        else:
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # cumulative: a rough figure only
            cpu, peak = usage.ru_utime + usage.ru_stime, usage.ru_maxrss
    return OneShot(wall, cpu, peak, proc.returncode, stdout, stderr)


class Daemon:
    """A long-running contender: started, scraped on loopback, stopped (by its pid only)."""

    def __init__(self, name: str, argv: list[str], port: int, log_path: str):
        self.name = name
        self.argv = argv
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self._conn: http.client.HTTPConnection | None = None

    def start(self, ready_timeout: float = 20.0) -> None:
        log = open(self.log_path, "wb")  # noqa: SIM115 - kept open for the daemon's lifetime
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                self.scrape()
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not answer on 127.0.0.1:{self.port} within {ready_timeout}s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def scrape(self, keep_alive: bool = False) -> tuple[str, float]:
        """GET /metrics on loopback: (body, seconds until the whole response was received).

        keep_alive reuses one connection, as Prometheus does; otherwise each scrape opens its own
        (a server that writes headers and body in two sends can stall a reused connection for the
        40 ms of a delayed ACK: the latency probes use fresh connections for every contender).
        """
        if not keep_alive:
            start = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.request("GET", "/metrics", headers={"Connection": "close"})
                body = conn.getresponse().read()
                took = time.perf_counter() - start  # the response is in; decoding it is the client's work
            finally:
                conn.close()
            return body.decode("utf-8", "replace"), took
        start = time.perf_counter()
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self._conn.request("GET", "/metrics")
                resp = self._conn.getresponse()
                body = resp.read()
                took = time.perf_counter() - start
                if resp.getheader("Connection", "").lower() == "close":
                    self._conn.close()
                    self._conn = None
                break
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
        return body.decode("utf-8", "replace"), took

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def memory(self) -> dict[str, int]:
        return memory_kb(self.pid)

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Poll check() until it is true or timeout seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]
