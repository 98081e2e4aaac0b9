"""Torture: a writer at a high rate, every rotation style many times, the exporter killed with SIGKILL.

At the end the counters on /metrics plus the bytes counted as lost equal, source by source and code by
code, what the writer wrote; nothing is lost in any rename-based style; and no counter served after a
restart is ever lower than one served before (checked on every scrape, by a scraper running throughout).

The only lines that may be lost are cut by a truncation (copytruncate or a bare truncate) after the
exporter saw their first part: their bytes must be counted exactly in mail_exporter_lost_bytes_total.
The rotator waits (a barrier on /metrics, never a sleep) until the exporter has read a line of a file
before it rotates that file again: a file created and rotated away before the exporter ever saw it
cannot be found by identity (in real life a log lives for hours, not milliseconds).

TORTURE_STEPS (default 36) and TORTURE_SEED (default: random, printed on failure) tune a run.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import ROOT, free_port, http_get, samples
from torture_writer import LINE_BYTES, Rotator, Writer

pytestmark = pytest.mark.slow

STEPS = int(os.environ.get("TORTURE_STEPS", "36"))
BARRIER_TIMEOUT = 60.0
RESET_OK = {"mail_exporter_state_saves_total"}  # counts this process's saves: starts at 0 each run


class Exporter:
    """The daemon as a subprocess on a fixed port; killed with SIGKILL and started again."""

    def __init__(self, tmp: Path, sources: dict[str, Path]):
        self.port = free_port()
        cfg = tmp / "config.yml"
        cfg.write_text("rotate_wait: 0.5\npoll_interval: 0.2\n")
        self.args = [sys.executable, "-m", "exporter", "run", "--config", str(cfg)]
        for name, path in sources.items():
            self.args += ["--source", f"{name}=postfix:{path}"]
        self.args += [
            "--state-file",
            str(tmp / "state" / "state.json"),
            "--from-beginning",  # the first start reads what is there; later the state wins
        ]
        self.stderr_path = tmp / "exporter.stderr"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, attempts: int = 3) -> None:
        args = [*self.args, "--web.listen-address", f"127.0.0.1:{self.port}"]
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        self.starts += 1
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "cannot listen" in self.stderr()[-300:] and attempts > 1:
                    self.port = free_port()  # another test took the port while we were down
                    return self.start(attempts - 1)
                raise AssertionError(f"exporter exited {self.proc.returncode}: {self.stderr()}")
            with contextlib.suppress(OSError):
                status, body, _ = http_get(f"http://127.0.0.1:{self.port}/metrics", timeout=2)
                if status == 200 and 'source="glob"' in body:  # ours, not another test's daemon
                    return
            time.sleep(0.05)
        raise AssertionError("exporter did not answer /metrics in time")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def scrape(self) -> dict:
        status, body, _ = http_get(f"http://127.0.0.1:{self.port}/metrics", timeout=10)
        assert status == 200
        return samples(body)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-4000:]


class Monitor(threading.Thread):
    """Scrapes all the time and keeps the highest value each counter was ever served at."""

    def __init__(self, exporter: Exporter):
        super().__init__(name="torture-scraper", daemon=True)
        self.exporter = exporter
        self.high: dict = {}
        self.violations: list[str] = []
        self.scrapes = 0
        self.lock = threading.Lock()
        self._halt = threading.Event()

    def scrape(self) -> dict:
        """Scrape and check in one go: checks must see scrapes in the order they were served."""
        with self.lock:
            smp = self.exporter.scrape()
            self._check(smp)
            return smp

    def _check(self, smp: dict) -> None:
        self.scrapes += 1
        for key, v in smp.items():
            name = key[0]
            if not (name.startswith("mail_") and name.endswith("_total")) or name in RESET_OK:
                continue
            before = self.high.get(key, 0.0)
            if v < before:
                self.violations.append(f"start {self.exporter.starts}: {key} served {v} after {before}")
            self.high[key] = max(before, v)
        for key, before in self.high.items():
            if before and key not in smp:
                self.violations.append(f"start {self.exporter.starts}: {key} disappeared after {before}")

    def run(self) -> None:
        while not self._halt.wait(0.1):
            if not self.exporter.alive:
                continue
            # killed in the middle of the scrape: no answer, an error status or a cut-off body
            # (IncompleteRead); none of them is a served value, so there is nothing to check
            with contextlib.suppress(OSError, AssertionError, http.client.HTTPException):
                self.scrape()

    def stop(self) -> None:
        self._halt.set()
        if self.ident is not None:  # started
            self.join(timeout=10)


def total(smp: dict, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, lab), v in smp.items() if n == name and want <= set(lab))


def test_torture(tmp_path):
    seed = int(os.environ.get("TORTURE_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    logs = tmp_path / "logs"
    (logs / "targets").mkdir(parents=True)
    (logs / "g").mkdir()
    (tmp_path / "state").mkdir()
    (logs / "targets" / "t0.log").touch()
    link = logs / "link.log"
    link.symlink_to(logs / "targets" / "t0.log")
    sources = {"plain": logs / "mail.log", "link": link, "glob": logs / "g" / "*.log"}
    writer = Writer({"plain": logs / "mail.log", "link": link, "glob": logs / "g" / "f0.log"}, 3000, seed)
    exporter = Exporter(tmp_path, sources)
    monitor = Monitor(exporter)
    marks: Counter[str] = Counter()  # lines of a source written before its current file began
    kills_mid: list[str] = []  # sources rotated when the exporter was killed in the middle

    def caught_up(name: str, pending: int) -> None:
        """Barrier (writer paused): the exporter has read all lines of `name` and sees `pending` bytes."""
        assert exporter.alive, "a barrier needs a running exporter"
        deadline = time.monotonic() + BARRIER_TIMEOUT
        while True:
            smp = monitor.scrape()
            lines = total(smp, "mail_exporter_lines_total", source=name)
            behind = total(smp, "mail_exporter_behind_bytes", source=name)
            if lines == writer.lines[name] and behind == pending:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"seed {seed}: {name} not caught up: {lines} lines read of {writer.lines[name]} "
                    f"written, {behind} bytes behind (want {pending})\n{exporter.stderr()}"
                )
            time.sleep(0.02)

    def seen(name: str) -> None:
        """Barrier: the exporter has read a line of the current file of `name` (so it knows that file)."""
        deadline = time.monotonic() + BARRIER_TIMEOUT
        while True:
            if exporter.alive:
                smp = monitor.scrape()
                if total(smp, "mail_exporter_lines_total", source=name) > marks[name]:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"seed {seed}: the exporter never read the new file of {name}")
            time.sleep(0.02)

    rot = Rotator(writer, caught_up, rng)

    def restart(down: float) -> None:
        time.sleep(down)  # the writer goes on while the exporter is down
        exporter.start()
        monitor.scrape()  # the very first values served after the restart

    def style(name: str, rotate) -> tuple[str, object]:
        """A rotation of source `name`; afterwards, remember where the new file's lines begin."""

        def act() -> None:
            rotate()
            with writer.lock:
                marks[name] = writer.lines[name]

        return name, act

    def killed_inside(rotation, name: str, *args) -> None:
        """Run a rotation and kill the exporter in its middle (its context's body)."""
        with rotation(name, *args):
            exporter.kill()
            kills_mid.append(name)

    def nothing_inside(rotation, name: str, *args) -> None:
        with rotation(name, *args):
            pass

    alive_styles = [  # may run only while the exporter runs: they wait for it (barriers)
        style("plain", lambda: rot.rename("plain")),
        style("plain", lambda: nothing_inside(rot.rename_late, "plain")),
        style("plain", lambda: killed_inside(rot.rename_late, "plain")),
        style("plain", lambda: nothing_inside(rot.copytruncate, "plain")),
        style("plain", lambda: killed_inside(rot.copytruncate, "plain")),
        style("plain", lambda: rot.truncate_cutting_a_line("plain", copy=True)),
        style("plain", lambda: rot.truncate_cutting_a_line("plain", copy=False)),
        style("plain", lambda: rot.delete("plain")),
        style("plain", lambda: rot.vanish("plain")),
        style("link", lambda: nothing_inside(rot.swap_symlink, "link", link)),
        style("link", lambda: killed_inside(rot.swap_symlink, "link", link)),
        style("glob", lambda: rot.glob_next("glob", logs / "g")),
    ]
    down_styles = [  # may also run while the exporter is down
        style("plain", lambda: rot.rename("plain")),
        style("plain", lambda: nothing_inside(rot.copytruncate, "plain")),
        style("link", lambda: nothing_inside(rot.swap_symlink, "link", link)),
        style("glob", lambda: rot.glob_next("glob", logs / "g", delete_done=False)),
    ]
    plan = list(range(len(alive_styles))) * 2
    plan += [rng.randrange(len(alive_styles)) for _ in range(max(0, STEPS - len(plan)))]
    rng.shuffle(plan)
    plan = plan[:STEPS]
    kills = 0
    t0 = time.monotonic()

    exporter.start()
    monitor.start()
    writer.start()
    try:
        for step in plan:
            name, act = alive_styles[step]
            if not exporter.alive:
                restart(rng.uniform(0, 0.4))
            seen(name)  # never rotate a file the exporter has not seen yet
            act()
            if not exporter.alive:  # killed in the middle of that rotation
                kills += 1
                restart(rng.uniform(0.1, 0.5))
                continue
            assert writer.error is None, writer.error
            time.sleep(rng.uniform(0, 0.3))
            if rng.random() < 0.25:  # a kill at an arbitrary moment, maybe a rotation while down
                down = down_styles[rng.randrange(len(down_styles))] if rng.random() < 0.6 else None
                if down is not None:
                    seen(down[0])
                exporter.kill()
                kills += 1
                if down is not None:
                    time.sleep(rng.uniform(0, 0.2))
                    down[1]()
                restart(rng.uniform(0.1, 0.5))
        writer.stop()
        assert writer.error is None, writer.error
        if not exporter.alive:
            restart(0)
        for name in sources:
            caught_up(name, 0)
        smp = monitor.scrape()
    finally:
        if exporter.alive:  # first: never leave a daemon behind
            exporter.kill()
        monitor.stop()
        writer.stop()

    report = (
        f"seed {seed}: {len(plan)} rotations, {kills} kills ({len(kills_mid)} in the middle of a "
        f"rotation), {exporter.starts} starts, {sum(writer.lines.values())} lines, "
        f"{monitor.scrapes} scrapes, {time.monotonic() - t0:.0f}s"
    )
    print(report)
    assert monitor.violations == [], f"{report}\n" + "\n".join(monitor.violations[:20])
    for name in sources:
        served = {
            code: total(smp, "mail_responses_total", source=name, code=code) for code in writer.written[name]
        }
        assert served == dict(writer.written[name]), f"{report}: {name} counted differently"
        assert (
            total(smp, "mail_exporter_lines_total", source=name, result="unparsed") == writer.fragments[name]
        )
        assert total(smp, "mail_exporter_lines_total", source=name, result="oversize") == 0
        lost = total(smp, "mail_exporter_lost_bytes_total", source=name)
        assert lost == writer.cut_bytes[name], f"{report}: {name} lost {lost} bytes"
    assert writer.cut_bytes["plain"] % (LINE_BYTES - 9) == 0  # only whole line heads were cut
    events = {
        ev: total(smp, "mail_exporter_file_events_total", event=ev) for ev in ("rotate", "truncate", "reopen")
    }
    assert all(events.values()), events  # every kind of file event happened
