"""`python -m bench`: generate logs, run every contender on the same input, write the table.

Every loop here is bounded in count and in time; every network request goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import gen, report
from .contenders import (
    ROOT,
    Contender,
    Mtail,
    Ours,
    PostfixExporter,
    find_peers,
    metric_reader,
    state_path,
    versions,
)
from .procs import Daemon, OneShot, percentile, run_measured, wait_for

FULL = {
    "lines": 2_000_000,
    "other_lines": 200_000,
    "probes": 200,
    "probe_budget": 30.0,
    "rate_seconds": 5.0,
    "cpu_rate": 20_000,
    "cpu_seconds": 10.0,
    "scrapes": 50,
    "fsyncs": 30,
}
QUICK = {
    "lines": 200_000,
    "other_lines": 20_000,
    "probes": 40,
    "probe_budget": 8.0,
    "rate_seconds": 2.0,
    "cpu_rate": 20_000,
    "cpu_seconds": 3.0,
    "scrapes": 20,
    "fsyncs": 10,
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def stamp() -> str:
    t = time.localtime()
    return time.strftime("%b ", t) + f"{t.tm_mday:2d} " + time.strftime("%H:%M:%S", t)


def probe_line(i: int) -> bytes:
    """A delivery line every contender counts (ours: a line; mtail: code 250; postfix_exporter: delays)."""
    return (
        f"{stamp()} mx1 postfix/smtp[999]: {0xB0000000 + i:X}: to=<probe{i}@example.net>, "
        "relay=mx.example.net[192.0.2.10]:25, delay=0.1, delays=0.01/0/0.05/0.04, dsn=2.0.0, "
        "status=sent (250 2.0.0 Ok: queued as 4F2C1D)\n"
    ).encode()


def sentinel_lines() -> bytes:
    """Two lines ending the backlog: a connect (postfix_exporter counts it) and a delivery (the others)."""
    return (
        f"{stamp()} mx1 postfix/smtpd[998]: connect from probe.example.net[192.0.2.99]\n".encode()
        + probe_line(0xFFFFF)
    )


# -- one-shot catch-up ----------------------------------------------------------------------------


def one_shot_figures(res: OneShot, lines: int) -> dict:
    """Time, CPU, memory and rates of a one-shot run over `lines` lines."""
    return {
        "wall_s": res.wall,
        "cpu_s": res.cpu,
        "peak_rss_mb": res.peak_rss_kb / 1024,
        "lines_per_s": lines / res.wall,
        "lines_per_cpu_s": lines / res.cpu,
    }


def replay_ours(path: Path, fmt: str, lines: int) -> dict:
    res = run_measured([sys.executable, "-m", "exporter", "replay", "--format", fmt, str(path)], timeout=600)
    counted = metric_reader("mail_exporter_lines_total")(res.stdout.decode("utf-8", "replace"))
    ok = res.returncode == 0 and counted == lines
    return one_shot_figures(res, lines) | {"lines_counted": counted, "ok": ok}


def hot_path(path: Path, lines: int) -> dict:
    """Our counting alone, in this process: SourceSink fed 1 MiB blocks (reading and startup excluded)."""
    from exporter.catalogue import Catalogue
    from exporter.config import SourceConfig
    from exporter.counting import SourceSink
    from exporter.parsers import postfix

    class File:
        ctx = None

    sink = SourceSink(
        SourceConfig(name="postfix", format="postfix", path=str(path)), postfix, Catalogue.load()
    )
    tf = File()
    cpu = 0.0
    with open(path, "rb") as f:
        rest = b""
        while True:
            data = f.read(1 << 20)
            if not data:
                break
            data = rest + data
            end = data.rfind(b"\n") + 1
            block, rest = data[:end], data[end:]
            start = time.process_time()
            sink.lines(tf, block)
            cpu += time.process_time() - start
    counted = sum(sink.take().lines.values())
    return {"cpu_s": cpu, "lines_per_cpu_s": lines / cpu, "ok": counted == lines}


def one_shot_mtail(mtail: Mtail, path: Path, lines: int, workdir: Path) -> dict:
    res = run_measured(mtail.one_shot_argv(path, workdir), timeout=600)
    total = metric_reader("mail_responses")(res.stdout.decode("utf-8", "replace"))
    return one_shot_figures(res, lines) | {"codes_counted": total, "ok": res.returncode == 0}


# -- a followed file, appended to -----------------------------------------------------------------


def append_file(dst: Path, src: Path, chunk: int = 4 << 20) -> None:
    """Append all of src to dst as fast as the kernel copies (copy_file_range, no Python per line)."""
    with open(src, "rb") as f, open(dst, "r+b") as out:
        size = os.fstat(f.fileno()).st_size
        end = os.fstat(out.fileno()).st_size
        done = 0
        while done < size:
            n = os.copy_file_range(f.fileno(), out.fileno(), min(chunk, size - done), done, end + done)
            if n <= 0:
                break
            done += n


class Followed:
    """A contender's daemon and the file it follows (created empty; the daemon starts at its end)."""

    def __init__(self, contender: Contender, workdir: Path):
        self.contender = contender
        self.dir = workdir / contender.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / "mail.log"
        self.log.write_bytes(b"")
        self.fd = os.open(self.log, os.O_WRONLY | os.O_APPEND)
        self.daemon: Daemon = contender.daemon(self.log, self.dir)
        self.read_progress = metric_reader(*contender.progress_metrics)
        self.read_backlog = metric_reader(*contender.backlog_metrics)

    def progress(self, keep_alive: bool = False) -> tuple[float, float]:
        body, took = self.daemon.scrape(keep_alive=keep_alive)
        return self.read_progress(body), took

    def close(self) -> None:
        self.daemon.stop()
        os.close(self.fd)
        shutil.rmtree(self.dir, ignore_errors=True)


def probe_latency_one_by_one(f: Followed, count: int, budget: float, unit: float, keep_alive: bool) -> dict:
    """Append one delivery line at a time; time from the write to the counter moving on /metrics.

    keep_alive: the scraper polls over one kept-alive connection, as Prometheus scrapes; otherwise it
    opens a connection for every poll (that connection's setup is then inside every figure).
    """
    latencies = []
    started = []  # from the write to the start of the first scrape that showed the line (a lower bound)
    scrapes = []
    deadline = time.monotonic() + budget
    tried = 0
    for i in range(count):
        if time.monotonic() > deadline:
            break
        tried += 1
        before, _ = f.progress(keep_alive)
        line = probe_line(i)
        start = time.perf_counter()
        os.write(f.fd, line)
        while time.perf_counter() - start < 3.0:
            asked = time.perf_counter()
            value, took = f.progress(keep_alive)
            scrapes.append(took)
            if value >= before + unit:
                # until the response that shows it was received (not until this client parsed it)
                latencies.append(asked + took - start)
                started.append(asked - start)
                break
        time.sleep(0.005 + (i % 7) * 0.002)  # let the contender settle; vary the phase
    return _latency_summary(latencies, count_tried=tried) | {
        "scrape_ms_p50": _ms(percentile(scrapes, 50)),
        "p50_to_scrape_start_ms": _ms(percentile(started, 50)),
        "p99_to_scrape_start_ms": _ms(percentile(started, 99)),
    }


def probe_latency_at_rate(f: Followed, rate: float, seconds: float, unit: float, keep_alive: bool) -> dict:
    """Append delivery lines at `rate` per second; a scraper notes when each one shows on /metrics."""
    base, _ = f.progress(keep_alive)
    total = int(rate * seconds)
    appended: list[float] = []
    observed: list[tuple[float, float]] = []
    stop = threading.Event()

    def scraper() -> None:
        end = time.monotonic() + seconds + 5.0
        while time.monotonic() < end:
            asked = time.perf_counter()
            value, took = f.progress(keep_alive)
            observed.append((asked + took, value))  # when the response was received
            if stop.is_set() and value >= base + total * unit:
                return

    thread = threading.Thread(target=scraper, daemon=True)
    thread.start()
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        line = probe_line(100000 + i)
        appended.append(time.perf_counter())
        os.write(f.fd, line)
    stop.set()
    thread.join(timeout=seconds + 10)
    # Line i shows once a scrape received after its append reads base + (i + 1) units; both the
    # append times and the targets grow, so one forward walk over the scrapes finds every answer.
    latencies = []
    j = 0
    for i, t in enumerate(appended):
        target = base + (i + 1) * unit
        while j < len(observed) and (observed[j][0] < t or observed[j][1] < target):
            j += 1
        if j == len(observed):
            break
        latencies.append(observed[j][0] - t)
    return _latency_summary(latencies, count_tried=total)


def _latency_summary(latencies: list[float], count_tried: int) -> dict:
    return {
        "n": len(latencies),
        "tried": count_tried,
        "p50_ms": _ms(percentile(latencies, 50)),
        "p99_ms": _ms(percentile(latencies, 99)),
        "max_ms": _ms(max(latencies) if latencies else None),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def cpu_at_rate(f: Followed, rate: int, seconds: float, seed: int) -> dict:
    """CPU the contender uses while realistic lines are appended at `rate` per second."""
    lines = list(gen.PostfixLog(seed).lines(int(rate * seconds)))
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    batches = ["".join(lines[i : i + per_tick]).encode() for i in range(0, len(lines), per_tick)]
    cpu0 = f.daemon.cpu()
    start = time.perf_counter()
    for k, batch in enumerate(batches):
        delay = start + k * tick - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        os.write(f.fd, batch)
    time.sleep(1.0)  # the last batch is read and counted
    elapsed = time.perf_counter() - start
    used = f.daemon.cpu() - cpu0
    return {"lines": len(lines), "seconds": elapsed, "cpu_s": used, "cpu_percent": 100 * used / elapsed}


def catch_up_appended(f: Followed, backlog: Path, lines: int, expected_gain: float, timeout: float) -> dict:
    """Append the whole backlog (plus two sentinel lines) and time how long until it is all counted."""
    body, _ = f.daemon.scrape()
    target = f.read_backlog(body) + expected_gain
    cpu0 = f.daemon.cpu()
    start = time.perf_counter()
    append_file(f.log, backlog)
    os.write(f.fd, sentinel_lines())
    last = {"value": None, "moved": time.monotonic()}

    def done() -> bool:
        value = f.read_backlog(f.daemon.scrape()[0])
        if value != last["value"]:
            last["value"], last["moved"] = value, time.monotonic()
        return value >= target or time.monotonic() - last["moved"] > 20

    wait_for(done, timeout, interval=0.02)
    wall = time.perf_counter() - start
    cpu = f.daemon.cpu() - cpu0
    mem = f.daemon.memory()
    complete = last["value"] is not None and last["value"] >= target
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "lines_per_s": lines / wall,
        "lines_per_cpu_s": lines / cpu if cpu else None,
        "rss_after_mb": mem["VmRSS"] / 1024,
        "peak_rss_mb": mem["VmHWM"] / 1024,
        "complete": complete,
        "counted": last["value"],
        "expected": target,
    }


def scrape_times(f: Followed, count: int) -> dict:
    """Time /metrics on a kept-alive connection (as Prometheus scrapes) and on fresh connections."""
    out = {}
    for keep_alive in (True, False):
        took = []
        deadline = time.monotonic() + 30
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            took.append(f.daemon.scrape(keep_alive=keep_alive)[1])
        key = "keep_alive" if keep_alive else "new_connection"
        out[key] = {"p50_ms": _ms(percentile(took, 50)), "p99_ms": _ms(percentile(took, 99)), "n": len(took)}
    return out


def run_daemon(
    contender: Contender, workdir: Path, backlog: Path, stats: gen.Stats, cfg: dict, mtail_total
) -> dict:
    """Idle memory, live latency, CPU at 20,000 lines/s, then the backlog appended, then scrape time."""
    # The logs this run generated and copied (hundreds of MB) may still be on their way to the disk:
    # flush them first, or a contender that flushes its own state file waits behind them.
    os.sync()
    f = Followed(contender, workdir)
    out: dict = {}
    try:
        f.daemon.start()
        time.sleep(1.0)
        f.daemon.scrape()
        out["idle_rss_mb"] = f.daemon.memory()["VmRSS"] / 1024
        # How much the progress number grows per probe line (postfix_exporter counts 4 observations).
        before, _ = f.progress()
        os.write(f.fd, probe_line(0xFFFFE))
        wait_for(lambda: f.progress()[0] > before, 5.0, interval=0.01)
        time.sleep(0.3)
        unit = (f.progress()[0] - before) or 1.0
        # Twice: polling over one kept-alive connection (as Prometheus scrapes), and opening a new
        # connection for every poll (the figures of earlier runs).
        for suffix, keep_alive in (("", True), ("_fresh", False)):
            how = "kept-alive connection" if keep_alive else "a new connection each poll"
            log(f"{contender.name}: latency, one line at a time ({how})")
            out["latency_single" + suffix] = probe_latency_one_by_one(
                f, cfg["probes"], cfg["probe_budget"], unit, keep_alive
            )
            log(f"{contender.name}: latency at 1,000 lines/s ({how})")
            rate_seconds = cfg["rate_seconds"]
            out["latency_1000" + suffix] = probe_latency_at_rate(f, 1000, rate_seconds, unit, keep_alive)
        log(f"{contender.name}: CPU at {cfg['cpu_rate']:,} lines/s")
        out["cpu_live"] = cpu_at_rate(f, cfg["cpu_rate"], cfg["cpu_seconds"], seed=7)
        log(f"{contender.name}: backlog of {stats.lines:,} lines appended")
        if isinstance(contender, Ours):
            gain = stats.lines + 2
        elif isinstance(contender, PostfixExporter):
            gain = stats.smtpd_connects + 1
        else:
            gain = (mtail_total or 0) + 1
        out["catch_up"] = catch_up_appended(f, backlog, stats.lines, gain, timeout=300)
        out["scrape"] = scrape_times(f, cfg["scrapes"])
        if isinstance(contender, Ours):
            from exporter import state

            doc = state.load(state_path(f.dir)) or {}
            out["state_file_bytes"] = len(json.dumps(doc, separators=(",", ":")))  # the document saved
            out["fsync"] = fsync_cost(state_path(f.dir), cfg["fsyncs"])
    finally:
        f.close()
    return out


def from_beginning(workdir: Path, backlog: Path, lines: int) -> dict:
    """Our daemon started on a file that is already full (--from-beginning): time to count it all."""
    d = workdir / "from-beginning"
    d.mkdir(exist_ok=True)
    log_path = d / "mail.log"
    shutil.copyfile(backlog, log_path)
    with open(log_path, "ab") as f:
        f.write(sentinel_lines())
    daemon = Ours().daemon(log_path, d, from_beginning=True)
    read = metric_reader("mail_exporter_lines_total")
    start = time.perf_counter()
    try:
        daemon.start()
        wait_for(lambda: read(daemon.scrape()[0]) >= lines + 2, 300, interval=0.02)
        wall = time.perf_counter() - start
        cpu = daemon.cpu()
        mem = daemon.memory()
        counted = read(daemon.scrape()[0])
    finally:
        daemon.stop()
        shutil.rmtree(d, ignore_errors=True)
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "lines_per_s": lines / wall,
        "lines_per_cpu_s": lines / cpu,
        "peak_rss_mb": mem["VmHWM"] / 1024,
        "rss_after_mb": mem["VmRSS"] / 1024,
        "complete": counted >= lines + 2,
    }


def fsync_cost(state_path: Path, count: int) -> dict:
    """Time a state save as the daemon does it (in place, then fdatasync), and the same without flush."""
    from exporter import state

    doc = state.load(state_path)
    target = state_path.parent / "fsync-probe.json"
    out = {}
    for durable in (True, False):
        writer = state.StateWriter(target, fsync=durable)
        writer.save(doc["sources"], doc["counters"])  # the first save of a process makes the file
        took = []
        for _ in range(count):
            t = time.perf_counter()
            writer.save(doc["sources"], doc["counters"])
            took.append(time.perf_counter() - t)
        writer.close()
        key = "with_fsync" if durable else "without_fsync"
        out[key] = {"p50_ms": _ms(percentile(took, 50)), "p99_ms": _ms(percentile(took, 99))}
    target.unlink(missing_ok=True)
    return out


def other_formats(workdir: Path, lines: int) -> dict:
    from exporter import parsers

    out = {}
    available = set(parsers.available())
    for fmt in gen.OTHER_FORMATS:
        if fmt not in available:
            out[fmt] = {"skipped": "no parser for this format in exporter/parsers/"}
            continue
        path = workdir / f"{fmt}.log"
        gen.write_other(fmt, path, lines)
        log(f"replay of {lines:,} {fmt} lines")
        out[fmt] = replay_ours(path, fmt, lines)
        path.unlink()
    return out


def machine() -> dict:
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "load_before": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a small run (200,000 lines, short live tests)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where latest.md/json go")
    p.add_argument("--workdir", type=Path, default=None, help="for the generated logs (default: a temp dir)")
    p.add_argument("--no-live", action="store_true", help="skip the daemons (catch-up one-shot runs only)")
    args = p.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    started = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="mailcode-bench-", dir=args.workdir))
    peers, notes = find_peers()
    for note in notes:
        log(note)
    results: dict = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "mode": "quick" if args.quick else "full",
        "machine": machine(),
        "versions": versions(peers),
        "notes": notes,
    }
    try:
        backlog = workdir / "postfix.log"
        log(f"generating {cfg['lines']:,} Postfix lines")
        stats = gen.write_postfix(backlog, cfg["lines"])
        results["input"] = stats.as_dict() | {"outcome_share": stats.outcomes / stats.lines}
        catch = {}
        log("catch-up: our replay")
        catch["ours_replay"] = replay_ours(backlog, "auto", stats.lines)  # the default format
        empty = workdir / "empty.log"
        empty.write_bytes(b"")
        log("catch-up: our counting alone (in-process)")
        catch["ours_hot_path"] = hot_path(backlog, stats.lines)
        catch["ours_replay_startup"] = run_measured(
            [sys.executable, "-m", "exporter", "replay", "--format", "auto", str(empty)], timeout=60
        ).cpu
        mtail = next((c for c in peers if isinstance(c, Mtail)), None)
        mtail_total = None
        if mtail is not None:
            log("catch-up: mtail one-shot")
            catch["mtail_one_shot"] = one_shot_mtail(mtail, backlog, stats.lines, workdir)
            mtail_total = catch["mtail_one_shot"]["codes_counted"]
        results["catch_up"] = catch
        if not args.no_live:
            log("catch-up: our daemon with --from-beginning")
            catch["ours_from_beginning"] = from_beginning(workdir, backlog, stats.lines)
            live = {}
            for contender in [Ours(), *peers]:
                log(f"live: {contender.name}")
                live[contender.name] = run_daemon(contender, workdir, backlog, stats, cfg, mtail_total)
            results["live"] = live
        results["other_formats"] = other_formats(workdir, cfg["other_lines"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["machine"]["load_after"] = os.getloadavg()
    results["duration_s"] = time.time() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    text = report.markdown(results)
    (args.out / "latest.md").write_text(text)
    print(text)
    log(f"done in {results['duration_s']:.0f}s; wrote {args.out / 'latest.md'} and latest.json")
    return 0
