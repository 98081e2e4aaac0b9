"""The built-in demo: realistic Postfix and Plex-style lines, written continuously, covering every code."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

from .catalogue import Catalogue

_HOSTS = ["mx1.example.net", "mail.example.org", "smtp.example.com"]
_USERS = ["alice", "bob", "carol", "dave", "erin"]
_TEXT = {
    "2": "Ok: queued as {qid}",
    "3": "End data with <CR><LF>.<CR><LF>",
    "4": "Service temporarily unavailable, try again later",
    "5": "Requested action not taken",
}
_ENHANCED = {"2": "2.0.0", "3": "2.0.0", "4": "4.3.0", "5": "5.1.1"}


def _stamp(now: float) -> str:
    return time.strftime("%b %d %H:%M:%S", time.localtime(now))


def postfix_line(code: str, rng: random.Random, now: float) -> str:
    """One Postfix log line carrying `code`: a status line from smtp, or an smtpd reject for some 5xx."""
    qid = "".join(rng.choice("0123456789ABCDEF") for _ in range(10))
    user = rng.choice(_USERS)
    host = rng.choice(_HOSTS)
    cls = code[0]
    enh = _ENHANCED[cls]
    if cls == "5" and rng.random() < 0.3:
        return (
            f"{_stamp(now)} demo postfix/smtpd[{rng.randint(1000, 9999)}]: NOQUEUE: reject: RCPT from "
            f"unknown[192.0.2.{rng.randint(1, 254)}]: {code} {enh} <{user}@example.com>: Recipient address "
            f"rejected; from=<sender@example.test> to=<{user}@example.com> proto=ESMTP helo=<c.example.test>"
        )
    status = {"2": "sent", "3": "sent", "4": "deferred", "5": "bounced"}[cls]
    text = _TEXT[cls].format(qid=qid[:6])
    return (
        f"{_stamp(now)} demo postfix/smtp[{rng.randint(1000, 9999)}]: {qid}: to=<{user}@{host}>, "
        f"relay={host}[198.51.100.{rng.randint(1, 254)}]:25, delay=0.4, delays=0.1/0/0.1/0.2, dsn={enh}, "
        f"status={status} (host {host}[198.51.100.7] said: {code} {enh} {text} (in reply to RCPT TO command))"
    )


def plex_line(code: str, rng: random.Random, now: float) -> str:
    """A Plex-style JSON line (Plex publishes no log format; this shape is illustrative)."""
    return json.dumps(
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)),
            "event": "email.send",
            "to": f"{rng.choice(_USERS)}@example.com",
            "code": int(code),
        }
    )


class DemoWriter:
    """Appends lines to two logs at `rate` lines per second until stopped; every catalogue code appears."""

    def __init__(self, directory: Path, catalogue: Catalogue, rate: float = 20.0, seed: int = 0):
        self.postfix_log = directory / "mail.log"
        self.plex_log = directory / "plex-email.jsonl"
        self.rate = rate
        self.rng = random.Random(seed)
        self.smtp_codes = [e.code for e in catalogue.entries if e.type == "smtp" and len(e.code) == 3]
        self.plex_codes = [e.code for e in catalogue.entries if e.code not in self.smtp_codes]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-writer", daemon=True)

    def start(self) -> None:
        self.postfix_log.touch()
        self.plex_log.touch()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        # First one line of every code, then a realistic mix (mostly 250, some 4xx/5xx, Plex failures).
        queue = [("postfix", c) for c in self.smtp_codes] + [("plex", c) for c in self.plex_codes]
        weights = {c: (40 if c == "250" else 1) for c in self.smtp_codes}
        with self.postfix_log.open("a") as pf, self.plex_log.open("a") as xf:
            while not self._stop.is_set():
                now = time.time()
                if queue:
                    kind, code = queue.pop(0)
                elif self.rng.random() < 0.15:
                    kind, code = "plex", self.rng.choice(self.plex_codes + ["1"] * 6)
                else:
                    kind = "postfix"
                    code = self.rng.choices(list(weights), weights=list(weights.values()))[0]
                if kind == "postfix":
                    pf.write(postfix_line(code, self.rng, now) + "\n")
                    pf.flush()
                else:
                    xf.write(plex_line(code, self.rng, now) + "\n")
                    xf.flush()
                self._stop.wait(1.0 / self.rate)
