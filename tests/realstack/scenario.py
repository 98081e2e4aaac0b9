"""Drive a private Postfix with swaks and an SMTP sink; return an independent record of what it logged.

The record is built only from what the other ends saw: the reply codes in swaks' transcripts (for
the rejections Postfix gives its clients), the sink's own log of the replies it gave Postfix (for
the results Postfix logs about its deliveries), the number of messages sent to a port nobody
listens on, and the messages found in the local mailbox. It never reads the mail log to decide a
count (the log is only polled to know that Postfix has finished), and never uses the exporter.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import postfix_env
from .postfix_env import DOMAIN, HOST, LOCAL_USER, PostfixInstance
from .sink import DATA, GREETING, MAIL, Reply, SmtpSink

INBOUND = "inbound"
OUTBOUND = "outbound"
NONE = "none"  # the code label of a result that carries no reply code

SINK_DOMAIN = "sink.test"
GREET421_DOMAIN = "greet421.test"
GREET554_DOMAIN = "greet554.test"
UNREACHABLE_DOMAIN = "unreachable.test"
CLIENT_DOMAIN = "client.test"
HELO = "client.example.test"

MESSAGE_SIZE_LIMIT = 20480
SINK_CODES = ("421", "450", "451", "452", "550", "551", "552", "553", "554")

# Access-map actions: the reply code is chosen by the address (REJECT and DEFER use Postfix's defaults).
RCPT_ACCESS = {
    **{f"acc{c}@{DOMAIN}": f"{c} {e} Test access map says {c}" for c, e in (
        ("421", "4.7.0"), ("450", "4.2.0"), ("451", "4.3.0"), ("452", "4.3.1"),
        ("501", "5.1.3"), ("504", "5.5.2"), ("554", "5.7.1"),
    )},
    f"accreject@{DOMAIN}": "REJECT",
    f"accdefer@{DOMAIN}": "DEFER",
}  # fmt: skip
SENDER_ACCESS = {
    f"snd451@{CLIENT_DOMAIN}": "451 4.7.1 Test sender map says 451",
    f"snd553@{CLIENT_DOMAIN}": "553 5.7.1 Test sender map says 553",
}
DATA_ACCESS = {f"dat554@{CLIENT_DOMAIN}": "554 5.7.1 Test data restriction says 554"}
EOD_ACCESS = {f"eod550@{CLIENT_DOMAIN}": "550 5.7.1 Test end-of-data restriction says 550"}

POSTFIX_SETTINGS = {
    "message_size_limit": str(MESSAGE_SIZE_LIMIT),
    # Sender restrictions are applied at MAIL FROM, so their rejections are logged as "MAIL from".
    "smtpd_delay_reject": "no",
    "smtpd_sender_restrictions": "check_sender_access texthash:$config_directory/sender_access",
    "smtpd_recipient_restrictions": "check_recipient_access texthash:$config_directory/rcpt_access",
    "smtpd_data_restrictions": "check_sender_access texthash:$config_directory/data_access",
    "smtpd_end_of_data_restrictions": "check_sender_access texthash:$config_directory/eod_access",
}

# swaks looks up the machine's own name (gethostbyname) for its default Message-Id; the resolver is
# not on loopback, so it is given a Sys::Hostname that knows no name, and every message gets an id.
_NO_HOSTNAME_PM = """package Sys::Hostname;
use Exporter 'import';
our @EXPORT = ('hostname');
sub hostname { return '' }
1;
"""

_SWAKS_REPLY = re.compile(r"^<(?:\*\*|-) +([0-9]{3})[ -](?:([245]\.[0-9]{1,3}\.[0-9]{1,3}) )?(.*)$")
_SWAKS_SENT = re.compile(r"^ ?-> (.*)$")
_QUEUED = re.compile(r"^<- +250 .*queued as ([0-9A-Za-z]+)")

# SMTP stage of swaks' last command -> the word Postfix uses in "reject: WORD from".
_STAGE_WORDS = (("MAIL FROM:", "MAIL"), ("RCPT TO:", "RCPT"), ("DATA", "DATA"), (".", "END-OF-MESSAGE"))


@dataclass(frozen=True)
class Case:
    """One SMTP session with Postfix."""

    name: str
    sender: str
    recipient: str
    body: str | None = None
    # Postfix writes no reject line for this path (the reply swaks sees is not logged).
    logged: bool = True


@dataclass(frozen=True)
class Reject:
    """A failure reply swaks received from Postfix (`<** CODE ...`), with the command it answered."""

    code: str
    enhanced: str | None
    text: str
    stage: str


@dataclass
class Session:
    case: Case
    transcript: str
    rejects: list[Reject]
    queue_id: str | None


@dataclass
class Expected:
    """What the mail log must show, derived without reading it.

    responses: (code, direction) -> number of logged results; code "none" for results without one.
    statuses: disposition (sent, deferred, bounced, rejected) -> number of logged results.
    """

    responses: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    unreachable_deferrals: int = 0
    local_deliveries: int = 0
    inbound: list[Reject] = field(default_factory=list)
    unlogged_inbound: list[Reject] = field(default_factory=list)
    outbound: list[Reply] = field(default_factory=list)

    @property
    def none_outcomes(self) -> dict[str, int]:
        """Results without a code: local deliveries succeed, connection failures fail."""
        return {"success": self.local_deliveries, "failure": self.unreachable_deferrals}


@dataclass
class ScenarioResult:
    postfix: PostfixInstance
    sink: SmtpSink
    sessions: list[Session]
    expected: Expected
    unreachable_port: int
    log_text: str
    seconds: float


def inbound_cases() -> list[Case]:
    """Sessions that Postfix answers itself: one local delivery and rejections at every stage."""
    client = f"sender@{CLIENT_DOMAIN}"
    local = f"{LOCAL_USER}@{DOMAIN}"
    cases = [
        Case("local", client, local),
        Case("unknown-user", client, f"nosuchuser@{DOMAIN}"),
        Case("relay-denied", client, "someone@elsewhere.test"),
        # swaks cannot add SIZE= to MAIL FROM; the sender string carries it, closed by ENVID=<> (valid
        # xtext) so that the "<...>" swaks wraps around it stays well formed.
        Case("declared-size", f"big@{CLIENT_DOMAIN}> SIZE={MESSAGE_SIZE_LIMIT * 50} ENVID=<", local),
        # Over the limit without a declared SIZE: Postfix answers 552 after DATA, but logs only a warning.
        Case("oversize-body", client, local, body="x" * 70 + "\n", logged=False),
        Case("sender-451", f"snd451@{CLIENT_DOMAIN}", local),
        Case("sender-553", f"snd553@{CLIENT_DOMAIN}", local),
        Case("data-554", f"dat554@{CLIENT_DOMAIN}", local),
        Case("end-of-data-550", f"eod550@{CLIENT_DOMAIN}", local),
    ]
    cases += [Case(f"access-{r.split('@')[0][3:]}", client, r) for r in RCPT_ACCESS]
    return cases


def outbound_cases() -> list[Case]:
    """Messages Postfix accepts and relays to the sink (or fails to): one delivery attempt each."""
    cases = [Case(f"rcpt-{c}", "<>", f"rcpt{c}@{SINK_DOMAIN}") for c in SINK_CODES]
    cases += [Case(f"data-{c}", "<>", f"data{c}@{SINK_DOMAIN}") for c in SINK_CODES]
    # A coded sender: a 5XX at MAIL FROM makes Postfix send a bounce to it, which the sink accepts.
    cases += [Case(f"mail-{c}", f"mail{c}@{SINK_DOMAIN}", f"ok@{SINK_DOMAIN}") for c in SINK_CODES]
    cases += [
        Case("accepted", "<>", f"ok@{SINK_DOMAIN}"),
        Case("greeting-421", "<>", f"someone@{GREET421_DOMAIN}"),
        Case("greeting-554", "<>", f"someone@{GREET554_DOMAIN}"),
        Case("unreachable", "<>", f"someone@{UNREACHABLE_DOMAIN}"),
    ]
    return cases


def parse_swaks(case: Case, transcript: str) -> Session:
    """The failure replies (`<**`) in a swaks transcript, each with the command it answered."""
    rejects: list[Reject] = []
    queue_id = None
    last_command = ""
    in_data = False
    for line in transcript.splitlines():
        sent = _SWAKS_SENT.match(line)
        if sent:
            command = sent.group(1)
            # Message lines are sent after DATA was accepted; only the final "." is a command again.
            if not in_data or command == ".":
                last_command = command
            continue
        queued = _QUEUED.match(line)
        if queued:
            queue_id = queued.group(1)
        reply = _SWAKS_REPLY.match(line)
        if not reply:
            continue
        code = reply.group(1)
        in_data = last_command == "DATA" and code == "354"
        if line.startswith("<**"):
            stage = next((w for prefix, w in _STAGE_WORDS if last_command.startswith(prefix)), last_command)
            rejects.append(Reject(code, reply.group(2), reply.group(3), stage))
    return Session(case, transcript, rejects, queue_id)


class Driver:
    """Runs swaks against the instance and waits for the results to show."""

    def __init__(self, swaks: str, postfix: PostfixInstance, sink: SmtpSink):
        self.swaks = swaks
        self.postfix = postfix
        self.sink = sink
        self.perl_lib = postfix.root / "swaks-perl"
        (self.perl_lib / "Sys").mkdir(parents=True, exist_ok=True)
        (self.perl_lib / "Sys" / "Hostname.pm").write_text(_NO_HOSTNAME_PM)
        self.count = 0

    def send(self, case: Case) -> Session:
        self.count += 1
        args = [
            self.swaks,
            "--server", f"{HOST}:{self.postfix.smtpd_port}",
            "--helo", HELO,
            "--from", case.sender,
            "--to", case.recipient,
            "--timeout", "20",
            "--header", f"Message-Id: <{self.count}.{case.name}@{HELO}>",
            "--header", f"Subject: realstack {case.name}",
        ]  # fmt: skip
        if case.body is not None:
            lines = MESSAGE_SIZE_LIMIT // len(case.body) + 10
            args += ["--body", case.body * lines]
        env = {**os.environ, "PERL5LIB": str(self.perl_lib), "LANG": "C"}
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
        session = parse_swaks(case, proc.stdout + proc.stderr)
        if case.logged and not session.rejects and session.queue_id is None:
            raise AssertionError(
                f"swaks session {case.name} neither queued nor rejected:\n{session.transcript}"
            )
        return session


def _final(reply: Reply) -> bool:
    """A reply that ends a delivery attempt (the 250s to MAIL FROM and RCPT TO are intermediate)."""
    return reply.code != "250" or reply.stage == DATA


def _disposition(reply: Reply) -> str:
    if reply.code.startswith("2"):
        return "sent"
    if reply.code.startswith("4"):
        return "deferred"
    # smtp_skip_5xx_greeting = yes: a 5XX greeting skips the server; none left, the mail is deferred.
    return "deferred" if reply.stage == GREETING else "bounced"


def _count_mbox(path: Path) -> int:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    return sum(1 for line in data.split(b"\n") if line.startswith(b"From "))


def build_expected(
    sessions: list[Session], sink_log: list[Reply], unreachable: int, mailbox: Path
) -> Expected:
    exp = Expected()
    for session in sessions:
        target = exp.inbound if session.case.logged else exp.unlogged_inbound
        target.extend(session.rejects)
    for rej in exp.inbound:
        exp.responses[(rej.code, INBOUND)] += 1
        exp.statuses["rejected"] += 1
    exp.outbound = [r for r in sink_log if _final(r)]
    for reply in exp.outbound:
        exp.responses[(reply.code, OUTBOUND)] += 1
        exp.statuses[_disposition(reply)] += 1
    # Retry timers are pinned beyond the test's end: each message to the dead port is tried once.
    exp.unreachable_deferrals = unreachable
    exp.statuses["deferred"] += unreachable
    exp.local_deliveries = _count_mbox(mailbox)
    exp.statuses["sent"] += exp.local_deliveries
    none = exp.unreachable_deferrals + exp.local_deliveries
    if none:
        exp.responses[(NONE, OUTBOUND)] += none
    return exp


def _finished(text: str, queue_ids: list[str], rejects: int) -> bool:
    """True once every queued message has a status line, bounces included, and all rejects show."""
    for qid in queue_ids + re.findall(r"sender non-delivery notification: ([0-9A-Za-z]+)", text):
        if not re.search(rf"\b{qid}: to=<[^\n]*\bstatus=", text):
            return False
    return len(re.findall(r": reject: ", text)) >= rejects


def _outcome_seen(case: Case, sink: SmtpSink, before: int) -> bool:
    """Has the sink answered this case's delivery attempt with a final reply?"""
    for reply in sink.replies()[before:]:
        if not _final(reply):
            continue
        if case.recipient.endswith("@" + GREET421_DOMAIN) and reply.listener == "greet421":
            return True
        if case.recipient.endswith("@" + GREET554_DOMAIN) and reply.listener == "greet554":
            return True
        if reply.listener == "main" and (
            case.recipient in reply.address.split(",")
            or (reply.stage == MAIL and reply.address == case.sender)
        ):
            return True
    return False


def _wait(cond, timeout: float, what: str, postfix: PostfixInstance) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}; mail log tail:\n{postfix.log_tail()}")
        time.sleep(0.02)


@contextmanager
def postfix_with_sink(postfix_bin: str) -> Iterator[tuple[PostfixInstance, SmtpSink, int]]:
    """The sink, then a Postfix routing the test domains to it (and one to a closed port)."""
    with SmtpSink() as sink:
        unreachable_port = postfix_env.free_port()
        transport = {
            SINK_DOMAIN: f"smtp:[{HOST}]:{sink.ports['main']}",
            GREET421_DOMAIN: f"smtp:[{HOST}]:{sink.ports['greet421']}",
            GREET554_DOMAIN: f"smtp:[{HOST}]:{sink.ports['greet554']}",
            UNREACHABLE_DOMAIN: f"smtp:[{HOST}]:{unreachable_port}",
        }
        maps = {
            "rcpt_access": RCPT_ACCESS,
            "sender_access": SENDER_ACCESS,
            "data_access": DATA_ACCESS,
            "eod_access": EOD_ACCESS,
        }
        with postfix_env.postfix_instance(
            postfix_bin,
            relay_domains=list(transport),
            transport=transport,
            maps=maps,
            settings=POSTFIX_SETTINGS,
        ) as postfix:
            yield postfix, sink, unreachable_port


def run(postfix: PostfixInstance, sink: SmtpSink, unreachable_port: int, swaks: str) -> ScenarioResult:
    """Send every case, wait until Postfix has logged all results, return the independent record."""
    start = time.monotonic()
    driver = Driver(swaks, postfix, sink)
    sessions = [driver.send(case) for case in inbound_cases()]
    unreachable = 0
    for case in outbound_cases():
        before = len(sink.replies())
        session = driver.send(case)
        sessions.append(session)
        if session.queue_id is None:
            raise AssertionError(f"Postfix did not queue {case.name}:\n{session.transcript}")
        if case.recipient.endswith("@" + UNREACHABLE_DOMAIN):
            unreachable += 1
            qid = session.queue_id
            _wait(lambda q=qid: f"{q}: to=<" in postfix.log_text(), 15, case.name, postfix)
        else:
            # One message at a time: each delivery attempt ends before the next message arrives.
            _wait(
                lambda c=case, b=before: _outcome_seen(c, sink, b),
                15,
                f"the sink's reply to {case.name}",
                postfix,
            )
    # Bounces to the coded senders whose MAIL FROM got a 5XX: the sink accepts each one at DATA.
    bounced_senders = {c.sender for c in outbound_cases() if c.sender.startswith("mail5")}
    sink.wait_for(
        lambda log: bounced_senders <= {r.address for r in log if r.stage == DATA and r.code == "250"}, 15
    )
    expected_rejects = sum(len(s.rejects) for s in sessions if s.case.logged)
    queue_ids = [s.queue_id for s in sessions if s.queue_id]
    text = postfix.wait_for_log(
        lambda t: _finished(t, queue_ids, expected_rejects), 20, "every result in the mail log"
    )
    expected = build_expected(sessions, sink.replies(), unreachable, postfix.mailbox())
    return ScenarioResult(postfix, sink, sessions, expected, unreachable_port, text, time.monotonic() - start)
