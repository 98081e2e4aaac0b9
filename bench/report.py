"""The results as a Markdown report: the table the README shows, with the machine it came from."""

from __future__ import annotations

OURS = "mailcode-exporter"


def _f(value, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and abs(value) >= 1000:
        return f"{value:,.0f}{unit}"
    return f"{value:.{digits}f}{unit}"


def _rate(value) -> str:
    return "–" if value is None else f"{value / 1e6:.2f} M"


def _ratio(ours, peer, higher_is_better: bool = True) -> str:
    if not ours or not peer:
        return "–"
    return f"{(ours / peer if higher_is_better else peer / ours):.1f}×"


def markdown(r: dict) -> str:
    m = r["machine"]
    inp = r["input"]
    out = [
        "# mailcode-exporter benchmark",
        "",
        f"{r['when']}, {r['mode']} run, {r['duration_s']:.0f} s. Machine: {m['cpu']}, {m['cores']} cores, "
        f"{m['memory_gb']} GB, Linux {m['kernel']}, load average {m['load_before'][0]:.2f} before and "
        f"{m['load_after'][0]:.2f} after. Versions: "
        + ", ".join(f"{k} {v}" for k, v in r["versions"].items())
        + ".",
        "",
        f"Input: a generated Postfix log of {inp['lines']:,} lines ({inp['bytes'] / 1e6:.0f} MB), "
        f"{inp['outcome_share']:.1%} of them results ({inp['outcomes']:,}; {inp['coded']:,} with a reply "
        "code), "
        "the rest smtpd/qmgr/cleanup/TLS/postscreen lines and other programs sharing the file.",
        "",
        "CPU figures are CPU time of the contender's process (user + system), which other work on the "
        "machine disturbs far less than wall-clock time: compare ratios of CPU figures.",
        "",
    ]
    for note in r.get("notes", []):
        out.append(f"- {note}")
    c = r["catch_up"]
    live = r.get("live", {})
    ours_live = live.get(OURS, {})
    mtail = live.get("mtail", {})
    pfe = live.get("postfix_exporter", {})
    out += [
        "## Catch-up: the whole backlog",
        "",
        "| contender | how | wall s | lines/s | CPU s | lines per CPU-s | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]

    def row(name: str, how: str, d: dict | None) -> None:
        if not d:
            return
        flag = "" if d.get("ok", d.get("complete", True)) else " (incomplete!)"
        out.append(
            f"| {name} | {how}{flag} | {_f(d['wall_s'], 2)} | {_rate(d['lines_per_s'])} | "
            f"{_f(d['cpu_s'], 2)} | "
            f"{_rate(d['lines_per_cpu_s'])} | {_f(d['peak_rss_mb'])} |"
        )

    row(OURS, "`replay` (process start to exit)", c.get("ours_replay"))
    row(OURS, "daemon `--from-beginning` (start to all counted)", c.get("ours_from_beginning"))
    row(OURS, "daemon, backlog appended to the followed file", ours_live.get("catch_up"))
    row("mtail", "`--one_shot`, a program counting codes only", c.get("mtail_one_shot"))
    row("mtail", "daemon, backlog appended", mtail.get("catch_up"))
    row("postfix_exporter", "daemon, backlog appended", pfe.get("catch_up"))
    hot = c.get("ours_hot_path")
    if hot:
        mt = _get(c, "mtail_one_shot", "lines_per_cpu_s")
        versus = f" ({hot['lines_per_cpu_s'] / mt:.1f}× mtail's one-shot figure)" if mt else ""
        out += [
            "",
            f"Our counting alone (SourceSink fed 1 MiB blocks in one process: no reading, no startup, no "
            f"state file): {hot['cpu_s']:.2f} CPU-s, {_rate(hot['lines_per_cpu_s'])} lines per CPU-second"
            f"{versus}.",
        ]
    replay = c.get("ours_replay", {})
    startup = c.get("ours_replay_startup")
    if replay and startup:
        work = replay["cpu_s"] - startup
        out += [
            "",
            f"Our `replay` spends {startup:.2f} CPU-s starting (imports, configuration) before it reads a "
            f"line; without that, {inp['lines'] / work / 1e6:.2f} M lines per CPU-second.",
        ]
    out += ["", "## Live: a followed file", ""]
    names = [n for n in (OURS, "mtail", "postfix_exporter") if n in live]
    if names:
        out += [
            "| | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]

        def line(label: str, get) -> None:
            vals = []
            for n in names:
                try:
                    vals.append(get(live[n]))
                except (KeyError, TypeError):
                    vals.append("–")
            out.append(f"| {label} | " + " | ".join(vals) + " |")

        line("latency, one line at a time: p50 / p99 / max ms", lambda d: _lat(d["latency_single"]))
        line("latency at 1,000 lines/s: p50 / p99 / max ms", lambda d: _lat(d["latency_1000"]))
        line("same, new connection per poll: one line at a time", lambda d: _lat(d["latency_single_fresh"]))
        line("same, new connection per poll: at 1,000 lines/s", lambda d: _lat(d["latency_1000_fresh"]))
        line(
            "CPU at 20,000 lines/s appended",
            lambda d: f"{d['cpu_live']['cpu_percent']:.1f} %",
        )
        line("idle RSS MB (baseline)", lambda d: _f(d["idle_rss_mb"]))
        line("RSS after the backlog MB", lambda d: _f(d["catch_up"]["rss_after_mb"]))
        line("peak RSS MB", lambda d: _f(d["catch_up"]["peak_rss_mb"]))
        line(
            "/metrics scrape p50 / p99 ms, kept-alive connection",
            lambda d: (
                f"{_f(d['scrape']['keep_alive']['p50_ms'], 2)} / {_f(d['scrape']['keep_alive']['p99_ms'], 2)}"
            ),
        )
        line(
            "/metrics scrape p50 / p99 ms, new connection each",
            lambda d: (
                f"{_f(d['scrape']['new_connection']['p50_ms'], 2)} / "
                f"{_f(d['scrape']['new_connection']['p99_ms'], 2)}"
            ),
        )
        fs = ours_live.get("fsync")
        if fs:
            out += [
                "",
                f"Durability: our daemon saves its state file (read positions and counters, "
                f"{ours_live.get('state_file_bytes', 0) / 1024:.0f} KiB here) after every batch it reads, "
                f"before the counts are published: in place, over the older of two copies, then fdatasync. "
                f"One save takes {_f(fs['with_fsync']['p50_ms'], 2)} ms "
                f"(p99 {_f(fs['with_fsync']['p99_ms'], 2)}) with the flush, "
                f"{_f(fs['without_fsync']['p50_ms'], 2)} ms without: that cost is inside the live latency "
                "figures above.",
            ]
    out += ["", "## Targets (issue 8)", "", "| target | measured | met |", "|---|---|---|"]
    for label, measured, met in target_rows(r):
        out.append(f"| {label} | {measured} | {met} |")
    out += [
        "",
        "## Our ratio to each peer",
        "",
        "| measure | vs mtail | vs postfix_exporter |",
        "|---|---:|---:|",
    ]
    ratios = ratio_rows(r)
    for label, vm, vp in ratios:
        out.append(f"| {label} | {vm} | {vp} |")
    others = r.get("other_formats", {})
    if others:
        out += [
            "",
            "## Other formats (our `replay` only)",
            "",
            "| format | lines | lines/s | lines per CPU-s | peak RSS MB |",
            "|---|---:|---:|---:|---:|",
        ]
        for fmt, d in others.items():
            if "skipped" in d:
                out.append(f"| {fmt} | {d['skipped']} | | | |")
            else:
                flag = "" if d["ok"] else " (count mismatch!)"
                out.append(
                    f"| {fmt}{flag} | {d['lines_counted']:,.0f} | {_rate(d['lines_per_s'])} | "
                    f"{_rate(d['lines_per_cpu_s'])} | {_f(d['peak_rss_mb'])} |"
                )
    out.append("")
    return "\n".join(out)


def _lat(d: dict) -> str:
    return f"{_f(d['p50_ms'], 1)} / {_f(d['p99_ms'], 1)} / {_f(d['max_ms'], 1)} (n={d['n']})"


def ratio_rows(r: dict) -> list[tuple[str, str, str]]:
    c = r["catch_up"]
    live = r.get("live", {})
    ours, mtail, pfe = live.get(OURS, {}), live.get("mtail", {}), live.get("postfix_exporter", {})

    def vs_peers(*keys: str, higher_is_better: bool = True) -> tuple[str, str]:
        """Our figure at `keys` against mtail's and postfix_exporter's."""
        mine = _get(ours, *keys)
        return (
            _ratio(mine, _get(mtail, *keys), higher_is_better),
            _ratio(mine, _get(pfe, *keys), higher_is_better),
        )

    replay = _ratio(_get(c, "ours_replay", "lines_per_cpu_s"), _get(c, "mtail_one_shot", "lines_per_cpu_s"))
    return [
        ("catch-up lines per CPU-s: `replay` vs one-shot (higher is better)", replay, "–"),
        ("catch-up lines per CPU-s: daemons, backlog appended", *vs_peers("catch_up", "lines_per_cpu_s")),
        ("CPU at 20,000 lines/s (their CPU ÷ ours)", *vs_peers("cpu_live", "cpu_s", higher_is_better=False)),
        (
            "latency p50, one line at a time (theirs ÷ ours)",
            *vs_peers("latency_single", "p50_ms", higher_is_better=False),
        ),
        (
            "peak RSS during the backlog (theirs ÷ ours)",
            *vs_peers("catch_up", "peak_rss_mb", higher_is_better=False),
        ),
    ]


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _yes(ok) -> str:
    return "–" if ok is None else ("yes" if ok else "**no**")


def target_rows(r: dict) -> list[tuple[str, str, str]]:
    """Each target of the issue with the figure that decides it."""
    c, live = r["catch_up"], r.get("live", {})
    ours, mtail, pfe = live.get(OURS, {}), live.get("mtail", {}), live.get("postfix_exporter", {})
    rows = []
    pairs = (
        ("`replay` vs one-shot", c.get("ours_replay"), c.get("mtail_one_shot")),
        ("daemons, backlog appended", ours.get("catch_up"), mtail.get("catch_up")),
    )
    for label, a, b in pairs:
        x, y = _get(a, "lines_per_cpu_s"), _get(b, "lines_per_cpu_s")
        ratio = x / y if x and y else None
        shown = "–" if ratio is None else f"{ratio:.1f}×"
        rows.append(
            (
                f"catch-up ≥ 8× mtail lines per CPU-s: {label}",
                shown,
                _yes(None if ratio is None else ratio >= 8),
            )
        )
    for label, key in (
        ("one line at a time", "latency_single"),
        ("at 1,000 lines/s", "latency_1000"),
        ("one line at a time, new connection per poll", "latency_single_fresh"),
        ("at 1,000 lines/s, new connection per poll", "latency_1000_fresh"),
    ):
        p50, p99 = _get(ours, key, "p50_ms"), _get(ours, key, "p99_ms")
        ok = None if p50 is None else p50 < 2 and p99 < 10
        rows.append((f"latency {label}: p50 < 2 ms, p99 < 10 ms", f"{_f(p50)} / {_f(p99)} ms", _yes(ok)))
    cpu = _get(ours, "cpu_live", "cpu_percent")
    peers = [v for v in (_get(mtail, "cpu_live", "cpu_percent"), _get(pfe, "cpu_live", "cpu_percent")) if v]
    shown = f"{_f(cpu)} % (peers: " + (", ".join(f"{_f(v)} %" for v in peers) or "none measured") + ")"
    rows.append(
        (
            "CPU at 20,000 lines/s below both peers",
            shown,
            _yes(None if cpu is None or not peers else cpu < min(peers)),
        )
    )
    peaks = [v for v in (_get(ours, "catch_up", "peak_rss_mb"), _get(c, "ours_replay", "peak_rss_mb")) if v]
    peak = max(peaks) if peaks else None
    rows.append(("peak RSS < 50 MB", f"{_f(peak)} MB", _yes(None if peak is None else peak < 50)))
    idle, after = _get(ours, "idle_rss_mb"), _get(ours, "catch_up", "rss_after_mb")
    grew = after - idle if idle and after else None
    shown = f"{_f(after)} MB vs {_f(idle)} MB idle (+{_f(grew)})"
    rows.append(
        ("RSS after the backlog ≤ idle baseline + 5 MB", shown, _yes(None if grew is None else grew <= 5))
    )
    scrape = _get(ours, "scrape", "keep_alive", "p50_ms")
    ok = None if scrape is None else scrape < 5
    rows.append(("/metrics scrape < 5 ms (p50, kept-alive connection)", f"{_f(scrape, 2)} ms", _yes(ok)))
    fs = _get(ours, "fsync", "with_fsync", "p50_ms")
    rows.append(
        ("state file fsync cost reported", f"{_f(fs, 2)} ms per save", _yes(None if fs is None else True))
    )
    return rows
