"""A private Postfix instance in a temporary directory, logging to its own file, on loopback only.

Everything lives under one directory made for the instance: configuration, queue, data directory,
mail log, the local mail spool. Nothing is shared with the system's Postfix (/etc/postfix is not
touched: the instance is driven over SMTP only, so no `sendmail -C` / `postqueue -c` is needed) and
nothing is fixed: ports are picked free, so a second instance can run next to this one.

No setting may lead Postfix to a DNS lookup (the resolver of these machines is not on loopback):
next hops are IP literals, DNS support is disabled in the SMTP client, the SMTP server does no
peer-name lookup, and the host and domain names are set, not discovered.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
DOMAIN = "example.test"  # our own fully qualified domain: Postfix's mydestination
LOCAL_USER = "nobody"  # a system account every Debian has; local(8) delivers to its mailbox

# Retry timers pinned so far out that every deferred message is tried exactly once during a test:
# no queue scan and no retry can happen before the instance is stopped.
PINNED_TIMERS = {
    "queue_run_delay": "3600s",
    "minimal_backoff_time": "3600s",
    "maximal_backoff_time": "3600s",
    "maximal_queue_lifetime": "1d",
    "bounce_queue_lifetime": "1d",
    "delay_warning_time": "0h",
}

# master.cf services (after the SMTP server line): every one with chroot = n, so that no daemon
# needs a copy of system files inside the queue directory.
_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixError(RuntimeError):
    """The instance could not be set up, started or waited for; the message carries the log's tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _map_text(entries: Mapping[str, str]) -> str:
    return "".join(f"{key} {value}\n" for key, value in entries.items())


@dataclass
class PostfixInstance:
    """A running private Postfix: where its files are and how to reach it."""

    postfix: str
    root: Path
    config_dir: Path
    queue_dir: Path
    data_dir: Path
    spool_dir: Path
    log_path: Path
    smtpd_port: int

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def mailbox(self, user: str = LOCAL_USER) -> Path:
        return self.spool_dir / user

    def wait_for_log(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        """Poll the mail log until predicate(text) holds; PostfixError naming `what` after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                raise PostfixError(f"timed out waiting for {what}; mail log tail:\n{self.log_tail()}")
            time.sleep(0.05)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run `postfix -c CONFIG_DIR ARGS...` (start, stop, check, set-permissions, reload)."""
        env = {k: v for k, v in os.environ.items() if k != "MAIL_CONFIG"}
        env["LANG"] = "C"
        proc = subprocess.run(
            [self.postfix, "-c", str(self.config_dir), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        if check and proc.returncode != 0:
            raise PostfixError(
                f"postfix {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}\n"
                f"mail log tail:\n{self.log_tail()}"
            )
        return proc

    def master_pid(self) -> int | None:
        try:
            return int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def leftover_pids(self) -> list[int]:
        """Processes of this instance: working directory in its queue or MAIL_CONFIG naming its config."""
        mine = []
        queue = os.path.realpath(self.queue_dir)
        marker = f"MAIL_CONFIG={self.config_dir}".encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
                with open(f"/proc/{entry}/environ", "rb") as f:
                    environ = f.read().split(b"\0")
            except OSError:
                continue
            if cwd == queue or cwd.startswith(queue + "/") or marker in environ:
                mine.append(int(entry))
        return mine


def _write_config(
    inst: PostfixInstance,
    relay_domains: Sequence[str],
    transport: Mapping[str, str],
    maps: Mapping[str, Mapping[str, str]],
    settings: Mapping[str, str],
) -> None:
    main = {
        "compatibility_level": "3.6",
        "queue_directory": str(inst.queue_dir),
        "data_directory": str(inst.data_dir),
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "maillog_file": str(inst.log_path),
        "maillog_file_prefixes": str(inst.root),
        "myhostname": f"mx.{DOMAIN}",
        "mydomain": DOMAIN,
        "myorigin": "$mydomain",
        "mydestination": DOMAIN,
        "inet_interfaces": HOST,
        "inet_protocols": "ipv4",
        # No client is trusted: relaying is allowed only to relay_domains, so 127.0.0.1 can be denied.
        "mynetworks": "",
        "smtpd_relay_restrictions": "reject_unauth_destination",
        "relay_domains": " ".join(relay_domains),
        "transport_maps": "texthash:$config_directory/transport",
        # Anything without a route fails in the error agent instead of reaching for DNS.
        "default_transport": "error:no route in this test instance",
        "relay_transport": "error:no route in this test instance",
        "smtp_dns_support_level": "disabled",
        "smtp_host_lookup": "native",
        "smtpd_peername_lookup": "no",
        "alias_maps": "",
        "alias_database": "",
        "local_recipient_maps": "proxy:unix:passwd.byname",
        "mail_spool_directory": str(inst.spool_dir),
        "biff": "no",
        "append_dot_mydomain": "no",
        # Postfix's default, pinned: a 5XX greeting skips the server, and with no other server left
        # the mail is deferred (the log keeps the server's 5XX code).
        "smtp_skip_5xx_greeting": "yes",
        **PINNED_TIMERS,
        **settings,
    }
    etc = inst.config_dir
    (etc / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main.items()))
    smtpd = f"{HOST}:{inst.smtpd_port} inet n       -       n       -       -       smtpd\n"
    (etc / "master.cf").write_text(smtpd + _SERVICES)
    (etc / "transport").write_text(_map_text(transport))
    for name, entries in maps.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name in ("main", "master", "transport"):
            raise ValueError(f"bad map name {name!r}")
        (etc / name).write_text(_map_text(entries))


def _alive(pid: int) -> bool:
    """True while the process runs (a zombie left for an init that does not reap counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != b"Z"


def _stop(inst: PostfixInstance) -> None:
    """Stop the instance and make sure none of its processes outlive it."""
    master = inst.master_pid()
    with suppress(OSError, subprocess.SubprocessError):
        inst.run("stop", check=False)
    deadline = time.monotonic() + 10
    while master is not None and _alive(master) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in inst.leftover_pids():
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _wait_listening(inst: PostfixInstance, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((HOST, inst.smtpd_port), timeout=1) as s:
                greeting = s.recv(512)
                s.sendall(b"QUIT\r\n")
            if greeting.startswith(b"220"):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise PostfixError(f"smtpd never answered on port {inst.smtpd_port}:\n{inst.log_tail()}")
        time.sleep(0.05)


@contextmanager
def postfix_instance(
    postfix: str,
    *,
    relay_domains: Sequence[str] = (),
    transport: Mapping[str, str] | None = None,
    maps: Mapping[str, Mapping[str, str]] | None = None,
    settings: Mapping[str, str] | None = None,
    base_dir: str | None = None,
) -> Iterator[PostfixInstance]:
    """Build, start and (always) stop a private Postfix; yields the running instance.

    transport: domain -> next hop, IP literals only (e.g. "smtp:[127.0.0.1]:2525").
    maps: name -> {key: value}, written as $config_directory/NAME (use it as texthash:...).
    settings: extra or overriding main.cf parameters; values may use $config_directory.
    """
    for domain, nexthop in (transport or {}).items():
        if not re.fullmatch(r"[a-z]+:\[127\.0\.0\.1\](:\d+)?|error:.*|local:.*", nexthop):
            raise ValueError(f"next hop for {domain} must be an IP literal, not {nexthop!r}")
    # Not under pytest's tmp_path: its parents are 0700, and Postfix's unprivileged daemons and
    # local(8) (acting as the mailbox owner) must reach files here by absolute path.
    root = Path(tempfile.mkdtemp(prefix="mailcode-postfix-", dir=base_dir))
    inst = PostfixInstance(
        postfix=postfix,
        root=root,
        config_dir=root / "etc",
        queue_dir=root / "queue",
        data_dir=root / "data",
        spool_dir=root / "spool",
        log_path=root / "mail.log",
        smtpd_port=free_port(),
    )
    started = False
    try:
        root.chmod(0o755)
        inst.config_dir.mkdir()
        inst.queue_dir.mkdir()
        inst.data_dir.mkdir()
        owner = pwd.getpwnam("postfix")
        os.chown(inst.data_dir, owner.pw_uid, owner.pw_gid)
        inst.spool_dir.mkdir()
        inst.spool_dir.chmod(0o1777)  # like /tmp: local(8) creates each mailbox as its owner
        _write_config(inst, relay_domains, transport or {}, maps or {}, settings or {})
        started = True
        inst.run("start")
        _wait_listening(inst)
        yield inst
    finally:
        if started:
            _stop(inst)
        shutil.rmtree(root, ignore_errors=True)
