"""Realistic generated logs: a busy Postfix relay, and smaller logs of the other formats we read.

The Postfix log interleaves what a real mail.log holds: postscreen, smtpd with TLS, cleanup, qmgr,
smtp/local/lmtp deliveries, bounces, rejects, anvil and scache statistics, and lines of other programs
(dovecot, opendkim, amavis) that share the file. Noise lines are added so that the share of lines
carrying a result stays at `outcome_share` (a seventh by default). Everything is seeded: the same
arguments give the same bytes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
TLS_CIPHER = (
    "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 "
    "server-signature RSA-PSS (2048 bits) server-digest SHA256"
)
DOMAINS = ("example.net", "example.org", "example.com", "mail.example.net", "example.test")
USERS = ("ann", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ida", "jo", "kim", "lou", "max", "ned")
CLIENTS = (
    ("client.example.net", "198.51.100.8"),
    ("mta.example.org", "198.51.100.23"),
    ("unknown", "203.0.113.9"),
    ("out.example.com", "192.0.2.77"),
    ("unknown", "203.0.113.41"),
)
MXS = (
    ("mx.example.net", "192.0.2.10"),
    ("mx1.example.org", "198.51.100.50"),
    ("mx.example.com", "203.0.113.5"),
)


@dataclass
class Stats:
    """What the generator wrote, by construction (used to check every contender counted it all)."""

    lines: int = 0
    outcomes: int = 0  # lines that carry a result (one event each in this log)
    coded: int = 0  # outcome lines whose result has a three-digit reply code
    smtpd_connects: int = 0  # "connect from" lines of smtpd (postfix_exporter counts these)
    bytes: int = 0
    codes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "lines": self.lines,
            "outcomes": self.outcomes,
            "coded": self.coded,
            "smtpd_connects": self.smtpd_connects,
            "bytes": self.bytes,
            "codes": dict(sorted(self.codes.items())),
        }


class _Postfix:
    """One message flow at a time; each call returns its lines and how many carry a result."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.second = 9 * 3600
        self.stamp = ""
        self.tick = 0
        self.stats = Stats()
        self._set_stamp()

    def _set_stamp(self) -> None:
        day, sec = divmod(self.second, 86400)
        h, rest = divmod(sec, 3600)
        m, s = divmod(rest, 60)
        self.stamp = f"Dec {4 + day % 27:2d} {h:02d}:{m:02d}:{s:02d} mx1 "

    def _advance(self) -> None:
        self.tick += 1
        if self.tick >= 40:
            self.tick = 0
            self.second += 1
            self._set_stamp()

    def qid(self) -> str:
        return f"{self.rng.getrandbits(40):010X}"

    def pid(self) -> int:
        return self.rng.randrange(1000, 65000)

    def addr(self) -> str:
        r = self.rng
        return f"{r.choice(USERS)}{r.randrange(100)}@{r.choice(DOMAINS)}"

    # -- flows -----------------------------------------------------------------------------------
    def relay(self, out: list) -> None:
        """A client hands over a message for 1-3 remote recipients; smtp delivers it over TLS."""
        r = self.rng
        host, ip = r.choice(CLIENTS)
        q, spid, cpid = self.qid(), self.pid(), self.pid()
        port = r.randrange(20000, 65000)
        if r.random() < 0.5:
            ppid = self.pid()
            out.append(f"postfix/postscreen[{ppid}]: CONNECT from [{ip}]:{port} to [192.0.2.1]:25")
            out.append(f"postfix/postscreen[{ppid}]: PASS OLD [{ip}]:{port}")
        out.append(f"postfix/smtpd[{spid}]: connect from {host}[{ip}]")
        out.append(
            f"postfix/smtpd[{spid}]: Anonymous TLS connection established from {host}[{ip}]: {TLS_CIPHER}"
        )
        out.append(f"postfix/smtpd[{spid}]: {q}: client={host}[{ip}]")
        out.append(f"postfix/cleanup[{cpid}]: {q}: message-id=<{r.getrandbits(48):x}@{r.choice(DOMAINS)}>")
        if r.random() < 0.4:
            out.append(
                f"opendkim[{cpid + 7}]: {q}: DKIM-Signature field added (s=mail, d={r.choice(DOMAINS)})"
            )
        n = r.choice((1, 1, 1, 2, 2, 3))
        sender = self.addr()
        out.append(
            f"postfix/qmgr[812]: {q}: from=<{sender}>, size={r.randrange(900, 90000)}, nrcpt={n} (queue "
            "active)"
        )
        out.append(
            f"postfix/smtpd[{spid}]: disconnect from {host}[{ip}] ehlo=2 starttls=1 mail=1 rcpt={n} data=1 "
            f"quit=1 commands={n + 6}"
        )
        mx, mxip = r.choice(MXS)
        dpid = self.pid()
        out.append(
            f"postfix/smtp[{dpid}]: Trusted TLS connection established to {mx}[{mxip}]:25: {TLS_CIPHER}"
        )
        kept = False
        bounced = False
        for _ in range(n):
            line, code, status = self._delivery(q, mx, mxip)
            msg = f"postfix/smtp[{dpid}]: {line}"
            out.append(msg if status == "probe" else (msg, code))
            kept = kept or status == "deferred"
            bounced = bounced or status == "bounced"
        if bounced:
            out.append(f"postfix/bounce[{self.pid()}]: {q}: sender non-delivery notification: {self.qid()}")
        if not kept:
            out.append(f"postfix/qmgr[812]: {q}: removed")

    def _delivery(self, q: str, mx: str, mxip: str) -> tuple[str, str | None, str]:
        r = self.rng
        rcpt = self.addr()
        head = f"{q}: to=<{rcpt}>, "
        if r.random() < 0.05:
            head += f"orig_to=<{r.choice(USERS)}@example.test>, "
        delays = f"delay={r.randrange(1, 90) / 10}, delays=0.1/0.01/0.3/{r.randrange(1, 60) / 100}"
        relay = f"relay={mx}[{mxip}]:25, {delays}"
        x = r.random()
        if x < 0.84:
            return (
                head + f"{relay}, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as {self.qid()})",
                "250",
                "sent",
            )
        if x < 0.90:
            return (
                head + f"{relay}, dsn=4.2.2, status=deferred (host {mx}[{mxip}] said: 452 4.2.2 Mailbox full "
                "(in reply to RCPT TO command))",
                "452",
                "deferred",
            )
        if x < 0.93:
            return (
                head + f"relay=none, {delays}, dsn=4.4.1, status=deferred (connect to {mx}[{mxip}]:25: "
                "Connection timed out)",
                None,
                "deferred",
            )
        if x < 0.975:
            return (
                head + f"{relay}, dsn=5.1.1, status=bounced (host {mx}[{mxip}] said: 550 5.1.1 <{rcpt}>: "
                "Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO "
                "command))",
                "550",
                "bounced",
            )
        if x < 0.985:
            return (
                head
                + f"{relay}, dsn=4.3.2, status=deferred (host {mx}[{mxip}] refused to talk to me: 421 4.3.2 "
                "Service shutting down)",
                "421",
                "deferred",
            )
        if x < 0.995:
            return (
                head
                + f"{relay}, dsn=5.7.1, status=bounced (host {mx}[{mxip}] said: 554-5.7.1 Message rejected "
                "as spam 554 5.7.1 see policy (in reply to end of DATA command))",
                "554",
                "bounced",
            )
        return (  # an address probe: a line of the format that is not a delivery
            head + f"{relay}, dsn=2.1.5, status=deliverable (250 2.1.5 Ok)",
            None,
            "probe",
        )

    def count(self, item: str | tuple[str, str | None]) -> str:
        """Record what one emitted line holds; returns its message."""
        if isinstance(item, str):
            self.stats.smtpd_connects += item.startswith("postfix/smtpd[") and ": connect from " in item
            return item
        msg, code = item
        self.stats.outcomes += 1
        if code is not None:
            self.stats.coded += 1
            self.stats.codes[code] = self.stats.codes.get(code, 0) + 1
        return msg

    def local(self, out: list) -> None:
        """Mail for local users: pickup or smtpd, then local, virtual or lmtp (Dovecot) delivery."""
        r = self.rng
        q = self.qid()
        if r.random() < 0.3:
            out.append(f"postfix/pickup[{self.pid()}]: {q}: uid=1000 from=<{r.choice(USERS)}>")
        else:
            host, ip = r.choice(CLIENTS)
            spid = self.pid()
            out.append(f"postfix/smtpd[{spid}]: connect from {host}[{ip}]")
            out.append(f"postfix/smtpd[{spid}]: {q}: client={host}[{ip}]")
            out.append(
                f"postfix/smtpd[{spid}]: disconnect from {host}[{ip}] ehlo=1 mail=1 rcpt=1 data=1 quit=1 "
                "commands=5"
            )
        out.append(f"postfix/cleanup[{self.pid()}]: {q}: message-id=<{r.getrandbits(48):x}@example.test>")
        out.append(
            f"postfix/qmgr[812]: {q}: from=<{self.addr()}>, size={r.randrange(900, 9000)}, nrcpt=1 (queue "
            "active)"
        )
        rcpt = f"{r.choice(USERS)}@example.test"
        x = r.random()
        if x < 0.5:
            out.append(
                (
                    f"postfix/lmtp[{self.pid()}]: {q}: to=<{rcpt}>, "
                    "relay=mail.example.test[private/dovecot-lmtp], "
                    f"delay=0.2, delays=0.1/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 <{rcpt}> "
                    f"{r.getrandbits(64):x} Saved)",
                    "250",
                )
            )
        elif x < 0.9:
            out.append(
                (
                    f"postfix/local[{self.pid()}]: {q}: to=<{rcpt}>, relay=local, delay=0.05, "
                    "delays=0.02/0.01/0/0.02, "
                    "dsn=2.0.0, status=sent (delivered to mailbox)",
                    None,
                )
            )
        else:
            out.append(
                (
                    f"postfix/virtual[{self.pid()}]: {q}: to=<{rcpt}>, relay=virtual, delay=0.01, "
                    "delays=0/0/0/0.01, "
                    "dsn=2.0.0, status=sent (delivered to maildir)",
                    None,
                )
            )
        out.append(f"postfix/qmgr[812]: {q}: removed")
        if r.random() < 0.3:
            out.append(
                f"dovecot: imap-login: Login: user=<{r.choice(USERS)}>, method=PLAIN, rip=198.51.100.20, "
                f"lip=192.0.2.1, mpid={self.pid()}, TLS, session=<{r.getrandbits(64):x}>"
            )

    def reject(self, out: list) -> None:
        """A client refused at RCPT (or MAIL/DATA): smtpd logs NOQUEUE: reject with the reply it gave."""
        r = self.rng
        host, ip = r.choice(CLIENTS)
        spid = self.pid()
        out.append(f"postfix/smtpd[{spid}]: connect from {host}[{ip}]")
        sender, rcpt = self.addr(), self.addr()
        tail = f"from=<{sender}> to=<{rcpt}> proto=ESMTP helo=<{host}>"
        x = r.random()
        if x < 0.35:
            reply, code = f"554 5.7.1 <{rcpt}>: Relay access denied", "554"
        elif x < 0.65:
            reply, code = (
                f"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in local recipient table",
                "550",
            )
        elif x < 0.85:
            reply = f"554 5.7.1 Service unavailable; Client host [{ip}] blocked using zen.spamhaus.org"
            code = "554"
        else:
            reply, code = f"450 4.7.1 <{host}>: Helo command rejected: Host not found", "450"
        out.append((f"postfix/smtpd[{spid}]: NOQUEUE: reject: RCPT from {host}[{ip}]: {reply}; {tail}", code))
        if r.random() < 0.1:
            out.append(
                f"postfix/smtpd[{spid}]: NOQUEUE: reject_warning: RCPT from {host}[{ip}]: {reply}; {tail}"
            )
        if r.random() < 0.3:
            out.append(f"postfix/smtpd[{spid}]: lost connection after RCPT from {host}[{ip}]")
        out.append(
            f"postfix/smtpd[{spid}]: disconnect from {host}[{ip}] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4"
        )

    def postscreen(self, out: list) -> None:
        """A bot caught by postscreen: DNSBL rank, then the reject it logs."""
        r = self.rng
        _, ip = r.choice(CLIENTS)
        ppid, port = self.pid(), r.randrange(20000, 65000)
        out.append(f"postfix/postscreen[{ppid}]: CONNECT from [{ip}]:{port} to [192.0.2.1]:25")
        out.append(f"postfix/dnsblog[{self.pid()}]: addr {ip} listed by domain zen.spamhaus.org as 127.0.0.2")
        out.append(f"postfix/postscreen[{ppid}]: DNSBL rank 3 for [{ip}]:{port}")
        out.append(
            (
                f"postfix/postscreen[{ppid}]: NOQUEUE: reject: RCPT from [{ip}]:{port}: 550 5.7.1 Service "
                "unavailable; "
                f"client [{ip}] blocked using zen.spamhaus.org; from=<{self.addr()}>, to=<{self.addr()}>, "
                "proto=ESMTP, "
                "helo=<bot>",
                "550",
            )
        )
        out.append(f"postfix/postscreen[{ppid}]: DISCONNECT [{ip}]:{port}")

    def rare(self, out: list) -> None:
        """The less common results: cleanup and milter rejects, expiries, soft bounces, quoted addresses."""
        r = self.rng
        q, pid = self.qid(), self.pid()
        x = r.random()
        host, ip = r.choice(CLIENTS)
        if x < 0.25:
            out.append(
                (
                    f"postfix/cleanup[{pid}]: {q}: reject: header Subject: cheap pills from {host}[{ip}]; "
                    f"from=<{self.addr()}> to=<{self.addr()}> proto=ESMTP helo=<{host}>: 5.7.1 message "
                    "content rejected",
                    None,
                )
            )
        elif x < 0.45:
            out.append(
                (
                    f"postfix/smtpd[{pid}]: {q}: milter-reject: END-OF-MESSAGE from {host}[{ip}]: 5.7.1 "
                    "Command "
                    f"rejected; from=<{self.addr()}> to=<{self.addr()}> proto=ESMTP helo=<{host}>",
                    None,
                )
            )
        elif x < 0.65:
            out.append(
                (f"postfix/qmgr[812]: {q}: from=<{self.addr()}>, status=expired, returned to sender", None)
            )
        elif x < 0.8:
            mx, mxip = r.choice(MXS)
            out.append(
                (
                    f"postfix/smtp[{pid}]: {q}: to=<{self.addr()}>, relay={mx}[{mxip}]:25, delay=1, "
                    "delays=0/0/0.5/0.5, "
                    f"dsn=5.1.1, status=SOFTBOUNCE (host {mx}[{mxip}] said: 550 5.1.1 No such user (in "
                    "reply to RCPT TO "
                    "command))",
                    "550",
                )
            )
        else:
            mx, mxip = r.choice(MXS)
            out.append(
                (
                    f'postfix/smtp[{pid}]: {q}: to=<"odd, dsn=2.0.0, status=sent (250 '
                    f'ok)"@{r.choice(DOMAINS)}>, '
                    f"relay={mx}[{mxip}]:25, delay=1, delays=0/0/0/1, dsn=5.7.1, status=bounced (host "
                    f"{mx}[{mxip}] "
                    "said: 554 5.7.1 rejected (in reply to end of DATA command))",
                    "554",
                )
            )

    def noise(self, out: list) -> None:
        """Lines without a result: statistics, warnings, other programs sharing the log."""
        r = self.rng
        host, ip = r.choice(CLIENTS)
        x = r.random()
        if x < 0.2:
            out.append(
                f"amavis[{self.pid()}]: ({self.pid():05d}-{r.randrange(1, 20):02d}) Passed CLEAN "
                f"{{RelayedInbound}}, "
                f"[{ip}]:{r.randrange(20000, 65000)} <{self.addr()}> -> <{self.addr()}>, Queue-ID: "
                f"{self.qid()}, "
                f"mail_id: {r.getrandbits(60):x}, Hits: -1.2, size: {r.randrange(900, 90000)}, "
                f"{r.randrange(80, 900)} ms"
            )
        elif x < 0.35:
            out.append(
                f"postfix/anvil[{self.pid()}]: statistics: max connection rate 3/60s for (smtp:{ip}) at "
                f"{self.stamp[:15]}"
            )
        elif x < 0.45:
            out.append(f"postfix/scache[{self.pid()}]: statistics: start interval {self.stamp[:15]}")
        elif x < 0.6:
            out.append(
                f"postfix/smtpd[{self.pid()}]: warning: hostname {host} does not resolve to address {ip}"
            )
        elif x < 0.75:
            out.append(f"postfix/smtpd[{self.pid()}]: lost connection after AUTH from unknown[{ip}]")
        elif x < 0.9:
            out.append(
                f"dovecot: imap({r.choice(USERS)})<{self.pid()}><{r.getrandbits(48):x}>: Logged out in=74 "
                "out=1234 "
                "deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0"
            )
        else:
            out.append(
                f"postfix/master[811]: warning: process /usr/lib/postfix/sbin/smtpd pid {self.pid()} exit "
                "status 1"
            )


class PostfixLog:
    """A busy Postfix relay's mail.log; `stats` says what was written so far."""

    def __init__(self, seed: int = 1, outcome_share: float = 1 / 7):
        self._gen = _Postfix(seed)
        self.outcome_share = outcome_share
        self.stats = self._gen.stats

    def lines(self, total: int) -> Iterator[str]:
        """The next `total` lines, each with its newline."""
        gen, stats = self._gen, self.stats
        flows = (gen.relay, gen.local, gen.reject, gen.postscreen, gen.rare)
        weights = (0.47, 0.18, 0.25, 0.07, 0.03)
        pending: list[str] = []
        end = stats.lines + total
        while stats.lines < end:
            if not pending:
                if stats.outcomes > self.outcome_share * (stats.lines + 1):
                    gen.noise(pending)
                else:
                    gen.rng.choices(flows, weights)[0](pending)
                pending.reverse()
            gen._advance()
            line = gen.stamp + gen.count(pending.pop()) + "\n"
            stats.lines += 1
            stats.bytes += len(line)
            yield line


def write_postfix(path: Path, total: int, seed: int = 1) -> Stats:
    """Write `total` lines of the Postfix log to path; returns what they hold."""
    log = PostfixLog(seed)
    with open(path, "w", encoding="utf-8") as f:
        buf: list[str] = []
        for line in log.lines(total):
            buf.append(line)
            if len(buf) >= 20000:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))
    return log.stats


# -- other formats: smaller logs, replayed by us only (the peers read Postfix) ---------------------


def _jsonl(rng: random.Random, i: int) -> str:
    x = rng.random()
    ts = f"2024-03-05T09:{(i // 600) % 60:02d}:{(i // 10) % 60:02d}.{i % 1000:03d}Z"
    if x < 0.85:
        code = rng.choice((200, 200, 200, 206, 304, 401, 404, 500))
        return json.dumps(
            {
                "ts": ts,
                "level": "info",
                "msg": "request",
                "method": "GET",
                "path": f"/library/parts/{rng.randrange(10**6)}/file.mkv",
                "code": code,
                "ms": rng.randrange(1, 900),
            }
        )
    if x < 0.97:
        return json.dumps({"ts": ts, "level": "debug", "msg": "transcode session heartbeat", "session": i})
    return f"{ts} WARN plain text line between JSON objects"


def _csv(rng: random.Random, i: int) -> str:
    if i == 0:
        return "timestamp,client,method,path,code,bytes"
    code = rng.choice(("250", "250", "250", "451", "550", ""))
    client, path = f"198.51.100.{i % 250}", f"/send/{rng.randrange(10**6)}"
    return f"2024-03-05T09:12:{i % 60:02d}Z,{client},POST,{path},{code},{rng.randrange(9000)}"


def _exim(rng: random.Random, i: int) -> str:
    ts = f"2024-03-05 09:{(i // 600) % 60:02d}:{(i // 10) % 60:02d}"
    mid = f"1rh{rng.getrandbits(16):04X}-000{rng.getrandbits(12):03X}-4Q"
    x = rng.random()
    rcpt = f"{rng.choice(USERS)}@{rng.choice(DOMAINS)}"
    if x < 0.3:
        return (
            f"{ts} {mid} <= {rng.choice(USERS)}@example.test H=client.example.net [198.51.100.8] P=esmtps "
            f"X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no S={rng.randrange(900, 90000)} "
            f"id={rng.getrandbits(40):x}@example.test"
        )
    if x < 0.55:
        return (
            f"{ts} {mid} => {rcpt} R=dnslookup T=remote_smtp H=mx1.example.net [192.0.2.25] "
            'X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=yes C="250 2.0.0 Ok: queued as 4F2C1D"'
        )
    if x < 0.62:
        return (
            f"{ts} {mid} == {rcpt} R=dnslookup T=remote_smtp defer (-44) H=mx.example.org [198.51.100.7]: "
            f"SMTP error from remote mail server after RCPT TO:<{rcpt}>: 451 4.7.1 Greylisted, please try "
            "again later"
        )
    if x < 0.67:
        return (
            f"{ts} {mid} ** {rcpt} R=dnslookup T=remote_smtp H=mx.example.org [198.51.100.7]: SMTP error "
            f"from remote mail server after RCPT TO:<{rcpt}>: 550 5.1.1 <{rcpt}>: User unknown"
        )
    if x < 0.8:
        return f"{ts} {mid} Completed"
    port = rng.randrange(20000, 65000)
    return f"{ts} SMTP connection from client.example.net [198.51.100.8]:{port} (TCP/IP connection count = 3)"


def _sendmail(rng: random.Random, i: int) -> str:
    ts = f"Mar  5 09:{(i // 600) % 60:02d}:{(i // 10) % 60:02d} mail sm-mta[{3000 + i % 900}]: "
    q = f"425ACk{rng.getrandbits(24):06X}"
    x = rng.random()
    rcpt = f"{rng.choice(USERS)}@{rng.choice(DOMAINS)}"
    if x < 0.35:
        return (
            ts + f"{q}: from=<{rng.choice(USERS)}@example.test>, size={rng.randrange(900, 90000)}, class=0, "
            "nrcpts=1, "
            f"msgid=<{rng.getrandbits(40):x}@example.test>, proto=ESMTP, daemon=MTA, "
            "relay=client.example.net [198.51.100.8]"
        )
    if x < 0.7:
        return (
            ts + f"{q}: to=<{rcpt}>, delay=00:00:02, xdelay=00:00:01, mailer=esmtp, pri=120452, "
            "relay=mx.example.net. [192.0.2.30], dsn=2.0.0, stat=Sent (Ok: queued as 4F2C1D)"
        )
    if x < 0.8:
        return (
            ts + f"{q}: to=<{rcpt}>, delay=00:00:01, xdelay=00:00:01, mailer=esmtp, pri=120452, "
            "relay=mx.example.net. [192.0.2.30], dsn=4.2.2, stat=Deferred: 452 4.2.2 Mailbox full"
        )
    return (
        ts + "STARTTLS=client, relay=mx.example.net., version=TLSv1.3, verify=OK, "
        "cipher=TLS_AES_256_GCM_SHA384, bits=256/256"
    )


def _iis(rng: random.Random, i: int) -> str:
    if i == 0:
        return "#Software: Microsoft Internet Information Services 10.0"
    if i == 1:
        return (
            "#Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-stem "
            "cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version cs-host "
            "cs(User-Agent) cs(Cookie) cs(Referer)"
        )
    verb, query, status = rng.choice(
        (
            ("EHLO", "-", "250"),
            ("MAIL", "+FROM:+<sender@example.net>", "250"),
            ("RCPT", "+TO:+<ann@example.test>", "250"),
            ("RCPT", "+TO:+<nobody@example.test>", "550"),
            ("DATA", "+<m1@example.net>", "250"),
            ("QUIT", "-", "240"),
        )
    )
    return (
        f"2006-10-09 05:{(i // 600) % 60:02d}:{(i // 10) % 60:02d} 198.51.100.106 36A42160 SMTPSVC1 MX-PDC "
        f"192.0.2.2 0 {verb} - {query} {status} 0 48 13 0 SMTP - - - -"
    )


# format name -> (line maker, options for the source)
OTHER_FORMATS: dict[str, tuple[Callable[[random.Random, int], str], dict]] = {
    "jsonl": (_jsonl, {}),
    "csv": (_csv, {}),
    "exim": (_exim, {}),
    "sendmail": (_sendmail, {}),
    "iis": (_iis, {}),
}


def write_other(fmt: str, path: Path, total: int, seed: int = 1) -> int:
    """Write `total` lines of a format from OTHER_FORMATS; returns the bytes written."""
    make, _ = OTHER_FORMATS[fmt]
    rng = random.Random(seed)
    size = 0
    with open(path, "w", encoding="utf-8") as f:
        buf = []
        for i in range(total):
            line = make(rng, i) + "\n"
            size += len(line)
            buf.append(line)
            if len(buf) >= 20000:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))
    return size
