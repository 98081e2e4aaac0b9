"""The contenders: our exporter, mtail and prometheus-postfix-exporter; how to start and read each."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .procs import Daemon, free_port

ROOT = Path(__file__).resolve().parent.parent

# mtail's side of the same work: count results by reply code, and nothing else. Its regular
# expressions were chosen as the fastest of the simple forms tried on this log (RE2 syntax).
_MTAIL_STATUS = (
    r"status=(?:sent|deferred|bounced|SOFTBOUNCE) "
    r"\((?:host \S+ (?:said|refused to talk to me): )?(?P<code>\d{3})[ -]"
)
_MTAIL_REJECT = r"reject: [A-Z]+ from \S+: (?P<code>\d{3})[ -]"
MTAIL_PROGRAM = (
    "counter mail_responses by code\n\n"
    f"/{_MTAIL_STATUS}/ {{\n  mail_responses[$code]++\n}}\n"
    f"/{_MTAIL_REJECT}/ {{\n  mail_responses[$code]++\n}}\n"
)


def state_path(workdir: Path) -> Path:
    """Our state file, in a directory of its own as by default: not beside the followed log, whose
    directory is watched (every save renames a file there, and watchdog holds move events back)."""
    return workdir / "state" / "state.json"


def metric_reader(*names: str):
    """A function summing every sample of the named metrics in a /metrics text."""
    alternatives = "|".join(map(re.escape, names))
    pattern = re.compile(rf"^(?:{alternatives})(?:\{{[^}}\n]*\}})? (\S+)$", re.M)

    def read(text: str) -> float:
        return sum(float(v) for v in pattern.findall(text))

    return read


@dataclass
class Contender:
    """A daemon that follows one file. `progress` reads a number that grows with the lines it counted."""

    name: str
    progress_metrics: tuple[str, ...]  # grows by a known amount per probe line (a status=sent line)
    backlog_metrics: tuple[str, ...]  # reaches a value known in advance after the whole backlog

    def argv(self, log: Path, port: int, workdir: Path, from_beginning: bool = False) -> list[str]:
        raise NotImplementedError

    def daemon(self, log: Path, workdir: Path, from_beginning: bool = False) -> Daemon:
        port = free_port()
        argv = self.argv(log, port, workdir, from_beginning)
        return Daemon(self.name, argv, port, str(workdir / f"{self.name}.log"))


class Ours(Contender):
    def __init__(self) -> None:
        super().__init__("mailcode-exporter", ("mail_exporter_lines_total",), ("mail_exporter_lines_total",))

    def argv(self, log: Path, port: int, workdir: Path, from_beginning: bool = False) -> list[str]:
        state_path(workdir).parent.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "exporter",
            "run",
            "--source",
            str(log),  # the default format, auto, as a user who names no format gets it
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--state-file",
            str(state_path(workdir)),
            "--log.level",
            "warning",
        ]
        return argv + (["--from-beginning"] if from_beginning else [])


class Mtail(Contender):
    def __init__(self, binary: str) -> None:
        super().__init__("mtail", ("mail_responses",), ("mail_responses",))
        self.binary = binary

    def progs(self, workdir: Path) -> Path:
        progs = workdir / "mtail-progs"
        progs.mkdir(exist_ok=True)
        (progs / "codes.mtail").write_text(MTAIL_PROGRAM)
        return progs

    def argv(self, log: Path, port: int, workdir: Path, from_beginning: bool = False) -> list[str]:
        return [
            self.binary,
            "--address",
            "127.0.0.1",
            "--port",
            str(port),
            "--progs",
            str(self.progs(workdir)),
            "--logs",
            str(log),
            "--logtostderr",  # not glog files in /tmp
        ]

    def one_shot_argv(self, log: Path, workdir: Path) -> list[str]:
        return [
            self.binary,
            "--one_shot",
            "--one_shot_format=prometheus",
            "--logtostderr",
            "--progs",
            str(self.progs(workdir)),
            "--logs",
            str(log),
        ]


class PostfixExporter(Contender):
    def __init__(self, binary: str) -> None:
        # It counts an smtp delivery line in its delay histograms (one observation per stage).
        super().__init__(
            "postfix_exporter",
            ("postfix_smtp_delivery_delay_seconds_count",),
            ("postfix_smtpd_connects_total",),
        )
        self.binary = binary

    def argv(self, log: Path, port: int, workdir: Path, from_beginning: bool = False) -> list[str]:
        return [
            self.binary,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--postfix.logfile_path={log}",
            "--postfix.showq_path=/nonexistent",
        ]


def find_peers() -> tuple[list[Contender], list[str]]:
    """The peers installed here, and a note for each one that is missing."""
    peers: list[Contender] = []
    notes = []
    mtail = shutil.which("mtail")
    if mtail:
        peers.append(Mtail(mtail))
    else:
        notes.append("mtail: not installed (Debian package `mtail`), skipped")
    pfe = shutil.which("prometheus-postfix-exporter") or shutil.which("postfix_exporter")
    if pfe:
        peers.append(PostfixExporter(pfe))
    else:
        notes.append("prometheus-postfix-exporter: not installed (Debian package of that name), skipped")
    return peers, notes


def versions(peers: list[Contender]) -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for p in peers:
        if isinstance(p, Mtail):
            first = subprocess.run([p.binary, "--version"], capture_output=True, text=True, timeout=10)
            out["mtail"] = (first.stdout or first.stderr).split("\n", 1)[0].replace("mtail version ", "")
        elif isinstance(p, PostfixExporter):
            dpkg = subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", "prometheus-postfix-exporter"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            out["postfix_exporter"] = dpkg.stdout.strip() or "unknown"
    return out
