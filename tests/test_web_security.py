"""--web.config.file: TLS, client certificates, basic auth with bcrypt, reloads, strict checking.

Certificates are made in each test run with the openssl command line (self-signed CAs); clients are
Python's ssl module, curl and a real Prometheus. Only loopback traffic; every wait is bounded.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import yaml
from conftest import need_binary
from helpers import ROOT, free_port, http_get, samples, value

from exporter.catalogue import Catalogue
from exporter.metrics import Counts, Exposition
from exporter.server import Server, Site
from exporter.webconfig import (
    CIPHER_SUITES,
    BasicAuth,
    WebConfigError,
    WebConfigFile,
    bcrypt_cost,
    load,
)

COST = 4  # the lowest bcrypt cost: the tests check behaviour, not strength


# -- a small PKI made with the openssl command line ---------------------------------------------------


class PKI:
    """Two CAs (one for the server, one for clients), certificates signed by them, in a directory."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.openssl = need_binary("openssl")
        self._serial = 100
        self.ca = self._ca("server-ca")
        self.client_ca = self._ca("client-ca")
        self.rogue_ca = self._ca("rogue-ca")

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [self.openssl, *args], cwd=self.dir, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr

    def _ca(self, name: str) -> Path:
        self._run(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        return self.dir / f"{name}.crt"

    def issue(self, name: str, ca: Path, san: str, usage: str) -> tuple[Path, Path, int]:
        """A key and a certificate for `name`, signed by `ca`; returns (cert, key, serial)."""
        self._serial += 1
        ext = self.dir / f"{name}.ext"
        ext.write_text(
            f"subjectAltName={san}\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n"
            "authorityKeyIdentifier=keyid\n"
        )
        self._run(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        )  # fmt: skip
        self._run(
            "x509", "-req", "-in", f"{name}.csr", "-CA", str(ca), "-CAkey", str(ca.with_suffix(".key")),
            "-set_serial", str(self._serial), "-days", "2", "-out", f"{name}.crt", "-extfile", str(ext),
        )  # fmt: skip
        return self.dir / f"{name}.crt", self.dir / f"{name}.key", self._serial

    def server_cert(self, name: str = "server") -> tuple[Path, Path, int]:
        return self.issue(name, self.ca, "DNS:localhost,IP:127.0.0.1", "serverAuth")

    def client_cert(self, name: str = "client", ca: Path | None = None) -> tuple[Path, Path, int]:
        return self.issue(name, ca or self.client_ca, "DNS:scraper.example", "clientAuth")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


def hashed(password: str, cost: int = COST) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()


def write_web_config(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def tls_doc(cert: Path, key: Path, **extra: object) -> dict:
    return {"tls_server_config": {"cert_file": str(cert), "key_file": str(key), **extra}}


@contextlib.contextmanager
def serving(web_config: Path) -> Iterator[tuple[Server, WebConfigFile]]:
    """The real HTTP server in this process, on a free loopback port, with the real collector."""
    web = WebConfigFile(web_config)
    counts = Counts()
    catalogue = Catalogue.load()
    exposition = Exposition(counts, lambda: catalogue, {})
    site = Site(exposition.render, [("mx", "postfix", "/var/log/mail.log")], lambda: (True, []))
    server = Server("127.0.0.1", 0, site, web)
    exposition.register_live(server.collector())
    thread = server.start()
    try:
        yield server, web
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def https_get(
    port: int,
    ca: Path,
    path: str = "/metrics",
    headers: dict | None = None,
    cert: tuple[Path, Path] | None = None,
    max_version: ssl.TLSVersion | None = None,
) -> tuple[int, dict, bytes, dict]:
    """GET over TLS verifying the server against `ca`; (status, headers, body, server certificate)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    if max_version is not None:
        ctx.maximum_version = max_version
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=15)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return response.status, dict(response.headers), body, conn.sock.getpeercert()
    finally:
        conn.close()


def curl(*args: str) -> subprocess.CompletedProcess:
    """curl with the body thrown away; -w "%{http_code}" puts the status on stdout."""
    return subprocess.run(
        [need_binary("curl"), "-sS", "-o", "/dev/null", *args], capture_output=True, text=True, timeout=60
    )


def port_of(server: Server) -> int:
    return server.server_address[1]


# -- TLS with Python's ssl and curl -----------------------------------------------------------------


def test_tls_serves_metrics_to_a_verifying_client_and_refuses_plain_http(pki, tmp_path):
    cert, key, serial = pki.server_cert("tls-basic")
    config = write_web_config(tmp_path / "web.yml", tls_doc(cert, key))
    with serving(config) as (server, _):
        status, _, body, peer = https_get(port_of(server), pki.ca)
        assert status == 200 and b"mail_responses_total" in body
        assert int(peer["serialNumber"], 16) == serial
        with pytest.raises((http.client.HTTPException, OSError)):  # plain HTTP on a TLS port: no answer
            conn = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=15)
            conn.request("GET", "/metrics")
            conn.getresponse().read()
        smp = samples(https_get(port_of(server), pki.ca)[2].decode())
        assert value(smp, "mail_exporter_http_rejected_total", reason="tls") >= 1


def test_a_slow_tls_handshake_is_cut_off(pki, tmp_path, monkeypatch):
    """A client that starts a TLS record and then trickles bytes: the handshake has one deadline."""
    from exporter import server as server_module

    monkeypatch.setattr(server_module, "REQUEST_TIMEOUT", 2.0)
    cert, key, _ = pki.server_cert("slow")
    with serving(write_web_config(tmp_path / "web.yml", tls_doc(cert, key))) as (server, _):
        with socket.create_connection(("127.0.0.1", port_of(server)), timeout=30) as sock:
            sock.sendall(b"\x16\x03\x01\x02\x00")  # a handshake record of 512 bytes... that never comes
            closed = False
            try:
                for _ in range(150):  # 30 s at most
                    sock.sendall(b"\x00")
                    ready, _, _ = select.select([sock], [], [], 0.2)
                    if ready and sock.recv(4096) == b"":
                        closed = True
                        break
            except ConnectionError:  # a reset: closed as well
                closed = True
        assert closed
        assert server.stats.rejected["timeout"] == 1


def test_minimum_tls_version_is_enforced(pki, tmp_path):
    cert, key, _ = pki.server_cert("tls-min")
    default = load(write_web_config(tmp_path / "default.yml", tls_doc(cert, key)))[0]
    assert default.tls.minimum_version == ssl.TLSVersion.TLSv1_2  # the toolkit's default
    config = write_web_config(tmp_path / "web.yml", tls_doc(cert, key, min_version="TLS13"))
    with serving(config) as (server, _):
        assert https_get(port_of(server), pki.ca)[0] == 200
        with pytest.raises(ssl.SSLError):
            https_get(port_of(server), pki.ca, max_version=ssl.TLSVersion.TLSv1_2)
        url = f"https://127.0.0.1:{port_of(server)}/metrics"
        ok = curl("--cacert", str(pki.ca), "-w", "%{http_code}", url)
        assert ok.returncode == 0 and ok.stdout == "200", ok.stderr
        old = curl("--cacert", str(pki.ca), "--tls-max", "1.2", url)
        assert old.returncode == 35, old.stderr  # 35: the TLS handshake failed


def test_client_certificates_accepted_and_refused(pki, tmp_path):
    cert, key, _ = pki.server_cert("mtls")
    good = pki.client_cert("good-client")
    rogue = pki.client_cert("rogue-client", ca=pki.rogue_ca)
    doc = tls_doc(cert, key, client_auth_type="RequireAndVerifyClientCert", client_ca_file=str(pki.client_ca))
    config = write_web_config(tmp_path / "web.yml", doc)
    with serving(config) as (server, _):
        port = port_of(server)
        assert https_get(port, pki.ca, cert=good[:2])[0] == 200
        for client in (None, rogue[:2]):  # no certificate; one from a CA the server does not trust
            with pytest.raises(OSError):  # ssl.SSLError or a reset, during or right after the handshake
                https_get(port, pki.ca, cert=client)
        base = ("--cacert", str(pki.ca), "-w", "%{http_code}", f"https://127.0.0.1:{port}/metrics")
        ok = curl("--cert", str(good[0]), "--key", str(good[1]), *base)
        assert ok.returncode == 0 and ok.stdout == "200", ok.stderr
        refused = curl(*base)
        assert refused.returncode != 0 and refused.stdout != "200"
        smp = samples(https_get(port, pki.ca, cert=good[:2])[2].decode())
        assert value(smp, "mail_exporter_http_rejected_total", reason="tls") >= 2


def test_client_allowed_sans(pki, tmp_path):
    cert, key, _ = pki.server_cert("sans")
    client = pki.client_cert("san-client")  # carries DNS:scraper.example
    extra = {"client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": str(pki.client_ca)}
    allowed = write_web_config(
        tmp_path / "allowed.yml", tls_doc(cert, key, client_allowed_sans=["scraper.example"], **extra)
    )
    with serving(allowed) as (server, _):
        assert https_get(port_of(server), pki.ca, cert=client[:2])[0] == 200
    other = write_web_config(
        tmp_path / "other.yml", tls_doc(cert, key, client_allowed_sans=["other.example"], **extra)
    )
    with serving(other) as (server, _):
        with pytest.raises((http.client.HTTPException, OSError)):
            https_get(port_of(server), pki.ca, cert=client[:2])
        assert server.stats.rejected["client_san"] == 1


def test_inline_certificate_and_key(pki, tmp_path):
    cert, key, serial = pki.server_cert("inline")
    doc = {"tls_server_config": {"cert": cert.read_text(), "key": key.read_text()}}
    with serving(write_web_config(tmp_path / "web.yml", doc)) as (server, _):
        status, _, _, peer = https_get(port_of(server), pki.ca)
        assert status == 200 and int(peer["serialNumber"], 16) == serial


def test_configured_response_headers(pki, tmp_path):
    cert, key, _ = pki.server_cert("headers")
    doc = tls_doc(cert, key)
    doc["http_server_config"] = {"headers": {"X-Frame-Options": "deny", "X-Content-Type-Options": "nosniff"}}
    with serving(write_web_config(tmp_path / "web.yml", doc)) as (server, _):
        for path in ("/metrics", "/nope"):
            _, headers, _, _ = https_get(port_of(server), pki.ca, path)
            assert headers["X-Frame-Options"] == "deny" and headers["X-Content-Type-Options"] == "nosniff"


# -- basic auth -------------------------------------------------------------------------------------


def test_basic_auth_over_tls(pki, tmp_path):
    cert, key, _ = pki.server_cert("auth")
    doc = tls_doc(cert, key)
    # htpasswd writes $2y$ hashes (as in the toolkit's documentation): the same algorithm as $2b$
    doc["basic_auth_users"] = {"alice": hashed("s3cret").replace("$2b$", "$2y$", 1), "bob": hashed("other")}
    with serving(write_web_config(tmp_path / "web.yml", doc)) as (server, _):
        port = port_of(server)
        for headers in (
            {},
            basic("alice", "wrong"),
            basic("mallory", "s3cret"),
            {"Authorization": "Bearer x"},
        ):
            status, response_headers, body, _ = https_get(port, pki.ca, headers=headers)
            assert status == 401 and b"mail_" not in body
            assert response_headers["WWW-Authenticate"].startswith("Basic ")
        for path in ("/", "/healthz", "/readyz", "/nope"):  # every path is behind the login
            assert https_get(port, pki.ca, path)[0] == 401
        status, _, body, _ = https_get(port, pki.ca, headers=basic("alice", "s3cret"))
        assert status == 200 and b"mail_responses_total" in body
        assert https_get(port, pki.ca, headers=basic("bob", "other"))[0] == 200
        base = ("--cacert", str(pki.ca), "-w", "%{http_code}", f"https://127.0.0.1:{port}/metrics")
        assert curl("-u", "alice:s3cret", *base).stdout == "200"
        assert curl("-u", "alice:nope", *base).stdout == "401"
        assert server.stats.rejected["auth"] == 9


def test_unknown_user_is_checked_at_the_same_cost_as_a_wrong_password():
    """The checker is a spy: the unknown-user path must call it once, on a hash of the users' cost."""
    calls: list[tuple[bytes, bytes]] = []

    def spy(password: bytes, hashed_password: bytes) -> bool:
        calls.append((password, hashed_password))
        return bcrypt.checkpw(password, hashed_password)

    alice = hashed("right", cost=5)
    auth = BasicAuth({"alice": alice}, checker=spy)
    assert auth.check("mallory", b"right") is False
    assert len(calls) == 1
    dummy = calls[0][1]
    assert dummy != alice.encode() and bcrypt_cost(dummy) == 5 and bcrypt_cost(alice.encode()) == 5
    assert auth.check("alice", b"wrong") is False
    assert calls[-1] == (b"wrong", alice.encode())
    assert auth.check("mallory", b"other") is False  # failures are never remembered: each one pays
    assert len(calls) == 3 and calls[-1][1] == dummy
    assert auth.check("alice", b"right") is True and len(calls) == 4
    assert auth.check("alice", b"right") is True and len(calls) == 4  # verified once, then remembered
    assert auth.check("alice", b"righ") is False and len(calls) == 5
    assert auth.check("alice", b"x" * 100) is False and len(calls) == 6  # too long for bcrypt: refused
    assert auth.check("nobody", b"x" * 100) is False and len(calls) == 7  # ... the same way for anyone


def test_mixed_costs_use_the_dearest_for_unknown_users():
    calls: list[bytes] = []
    auth = BasicAuth(
        {"a": hashed("x", 4), "b": hashed("y", 6)}, checker=lambda p, h: calls.append(h) or False
    )
    auth.check("nobody", b"x")
    assert bcrypt_cost(calls[0]) == 6


def test_verified_credentials_cache_is_bounded():
    from exporter import webconfig

    n = webconfig.AUTH_CACHE_SIZE + 1
    calls: list[bytes] = []

    def spy(password: bytes, hashed_password: bytes) -> bool:
        calls.append(password)
        return password == b"pw"  # the spy decides; bcrypt itself is tested above

    auth = BasicAuth({f"u{i}": hashed("pw") for i in range(n)}, checker=spy)
    for i in range(n):
        assert auth.check(f"u{i}", b"pw")
    assert len(calls) == n
    assert auth.check(f"u{n - 1}", b"pw") and len(calls) == n  # recent: remembered
    assert auth.check("u0", b"pw") and len(calls) == n + 1  # the oldest was forgotten: checked again


# -- reloading --------------------------------------------------------------------------------------


def test_certificate_rotation_and_config_changes_without_restart(pki, tmp_path):
    cert_a, key_a, serial_a = pki.server_cert("rotate-a")
    cert_b, key_b, serial_b = pki.server_cert("rotate-b")
    live_cert, live_key = tmp_path / "live.crt", tmp_path / "live.key"
    live_cert.write_bytes(cert_a.read_bytes())
    live_key.write_bytes(key_a.read_bytes())
    doc = {
        "tls_server_config": {"cert_file": "live.crt", "key_file": "live.key"},  # relative to the file
        "basic_auth_users": {"alice": hashed("one")},
    }
    config = write_web_config(tmp_path / "web.yml", doc)
    with serving(config) as (server, web):
        port = port_of(server)
        status, _, _, peer = https_get(port, pki.ca, headers=basic("alice", "one"))
        assert status == 200 and int(peer["serialNumber"], 16) == serial_a

        # Rotate the way certbot and friends do: new files renamed over the old ones.
        for src, dst in ((cert_b, live_cert), (key_b, live_key)):
            tmp = dst.with_suffix(".new")
            tmp.write_bytes(src.read_bytes())
            os.replace(tmp, dst)
        status, _, _, peer = https_get(port, pki.ca, headers=basic("alice", "one"))
        assert status == 200 and int(peer["serialNumber"], 16) == serial_b
        assert web.reloads == {"ok": 1, "error": 0}

        # A new user in the file is accepted on the next request, and the old password is gone.
        doc["basic_auth_users"] = {"alice": hashed("two"), "bob": hashed("three")}
        write_web_config(config, doc)
        assert https_get(port, pki.ca, headers=basic("bob", "three"))[0] == 200
        assert https_get(port, pki.ca, headers=basic("alice", "one"))[0] == 401
        assert https_get(port, pki.ca, headers=basic("alice", "two"))[0] == 200

        # A broken rotation keeps the configuration in force and says so in the metrics.
        live_cert.write_text("not a certificate\n")
        status, _, body, peer = https_get(port, pki.ca, headers=basic("alice", "two"))
        assert status == 200 and int(peer["serialNumber"], 16) == serial_b
        smp = samples(body.decode())
        assert value(smp, "mail_exporter_web_config_last_reload_successful") == 0
        assert value(smp, "mail_exporter_web_config_reloads_total", result="error") == 1
        assert value(smp, "mail_exporter_web_config_reloads_total", result="ok") == 2


def test_switching_tls_off_needs_a_restart(pki, tmp_path):
    cert, key, serial = pki.server_cert("switch")
    config = write_web_config(tmp_path / "web.yml", tls_doc(cert, key))
    with serving(config) as (server, web):
        write_web_config(config, {})
        status, _, _, peer = https_get(port_of(server), pki.ca)
        assert status == 200 and int(peer["serialNumber"], 16) == serial  # still TLS
        assert web.reloads == {"ok": 0, "error": 1} and web.last_reload_ok == 0


def test_plain_http_with_basic_auth_and_a_rate_limit(tmp_path):
    doc = {"basic_auth_users": {"alice": hashed("pw")}, "rate_limit": {"interval": "1h", "burst": 3}}
    with serving(write_web_config(tmp_path / "web.yml", doc)) as (server, _):
        url = f"http://127.0.0.1:{port_of(server)}/metrics"
        assert http_get(url)[0] == 401
        assert http_get(url, headers=basic("alice", "pw"))[0] == 200
        assert http_get(url, headers=basic("alice", "pw"))[0] == 200
        status, _, headers = http_get(url, headers=basic("alice", "pw"))  # the bucket of 3 is empty
        assert status == 429 and headers["Retry-After"] == "1"
        assert server.stats.rejected == {**server.stats.rejected, "auth": 1, "rate": 1}


# -- strict checking --------------------------------------------------------------------------------

BAD_CONFIGS = [
    (
        "tls_server_config: {cert_file: c, key_file: k, cert_fiel: x}",
        "tls_server_config.cert_fiel: unknown key",
    ),
    ("basic_auth: {alice: x}", "basic_auth: unknown key"),
    ("tls_server_config: {cert_file: c}", "missing one of key or key_file"),
    ("tls_server_config: {cert_file: c, key_file: k, min_version: TLS14}", "tls_server_config.min_version"),
    (
        "tls_server_config: {cert_file: c, key_file: k, min_version: TLS13, max_version: TLS12}",
        "above max_version",
    ),
    (
        "tls_server_config: {cert_file: c, key_file: k, client_auth_type: RequireAndVerifyClientCert}",
        "needs client_ca_file",
    ),
    ("tls_server_config: {cert_file: c, key_file: k, client_auth_type: Maybe}", "client_auth_type"),
    (
        "tls_server_config: {cert_file: c, key_file: k, client_ca: x, client_auth_type: RequireClientCert}",
        "not supported",
    ),
    ("tls_server_config: {cert_file: c, key_file: k, cipher_suites: [TLS_FAST]}", "unknown cipher suite"),
    ("tls_server_config: {cert_file: c, key_file: k, curve_preferences: [CurveP999]}", "unknown curve"),
    ("tls_server_config: {cert_file: /nonexistent.crt, key_file: k}", "/nonexistent.crt"),
    ("http_server_config: {headers: {X-Frame-Options: allow}}", "X-Frame-Options"),
    ("http_server_config: {headers: {X-Powered-By: me}}", "cannot be configured"),
    ("http_server_config: {http2: maybe}", "http_server_config.http2"),
    ("rate_limit: {interval: 1s}", "burst"),
    ("rate_limit: {interval: soon, burst: 2}", "not a duration"),
    ("basic_auth_users: {alice: hunter2}", "not a bcrypt hash"),
    ("tls_server_config: [", "not valid YAML"),
    ("- a list", "expected a mapping"),
]


@pytest.mark.parametrize("text,expected", BAD_CONFIGS)
def test_bad_web_configs_are_one_clear_line(tmp_path, text, expected):
    path = tmp_path / "web.yml"
    path.write_text(text + "\n")
    with pytest.raises(WebConfigError) as info:
        WebConfigFile(path)
    message = str(info.value)
    assert expected in message and "\n" not in message and message.startswith(f"web config file {path}")
    assert "hunter2" not in message  # a secret is never echoed


def test_cipher_names_match_openssl(tmp_path):
    """The IANA -> OpenSSL table agrees with `openssl ciphers -stdname`."""
    openssl = need_binary("openssl")
    out = subprocess.run([openssl, "ciphers", "-stdname", "ALL"], capture_output=True, text=True, timeout=60)
    table = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[1] == "-":
            table[parts[0]] = parts[2]
    for iana, name in CIPHER_SUITES.items():
        assert table.get(iana) == name, iana


def test_empty_web_config_is_plain_http(tmp_path):
    settings, files = load(write_web_config(tmp_path / "web.yml", {}))
    assert settings.tls is None and settings.auth is None and files == []


# -- the daemon: command line, exit codes, and a real Prometheus ---------------------------------------


def _start_daemon(tmp_path: Path, config: Path, port: int, ready) -> subprocess.Popen:
    log = tmp_path / "mail.log"
    log.touch()
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "run", "--web.listen-address", f"127.0.0.1:{port}",
         "--web.config.file", str(config), "--source", f"postfix:{log}",
         "--state-file", str(tmp_path / "state.json")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"daemon exited {proc.returncode}: {proc.stderr.read()}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if ready():
                return proc
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the daemon did not answer over TLS in time")


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_daemon_refuses_a_bad_web_config_with_exit_2(tmp_path):
    config = write_web_config(tmp_path / "web.yml", {"tls_server_config": {"cert_file": "x"}, "users": {}})
    log = tmp_path / "mail.log"
    log.touch()
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "run", "--web.listen-address", f"127.0.0.1:{free_port()}",
         "--web.config.file", str(config), "--source", f"postfix:{log}",
         "--state-file", str(tmp_path / "state.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mailcode-exporter: error: web config file"), result.stderr


@pytest.mark.slow
def test_real_prometheus_scrapes_over_tls_with_client_cert_and_basic_auth(pki, tmp_path):
    prometheus = need_binary("prometheus")
    cert, key, _ = pki.server_cert("prom-target")
    client_cert, client_key, _ = pki.client_cert("prometheus")
    doc = tls_doc(cert, key, client_auth_type="RequireAndVerifyClientCert", client_ca_file=str(pki.client_ca))
    doc["basic_auth_users"] = {"prometheus": hashed("scrape-secret")}
    config = write_web_config(tmp_path / "web.yml", doc)
    port, prom_port = free_port(), free_port()

    def daemon_ready() -> bool:
        auth = basic("prometheus", "scrape-secret")
        return https_get(port, pki.ca, "/healthz", headers=auth, cert=(client_cert, client_key))[0] == 200

    daemon = _start_daemon(tmp_path, config, port, daemon_ready)
    try:
        tls = {"ca_file": str(pki.ca), "cert_file": str(client_cert), "key_file": str(client_key)}

        def job(name: str, password: str) -> dict:
            return {
                "job_name": name,
                "scheme": "https",
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "tls_config": tls,
                "basic_auth": {"username": "prometheus", "password": password},
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
            }

        prom_config = tmp_path / "prometheus.yml"
        prom_config.write_text(
            yaml.safe_dump({"scrape_configs": [job("mailcode", "scrape-secret"), job("intruder", "guess")]})
        )
        with (tmp_path / "prometheus.log").open("wb") as out:
            prom = subprocess.Popen(
                [prometheus, f"--config.file={prom_config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                base = f"http://127.0.0.1:{prom_port}/api/v1"
                health: dict[str, tuple[str, str]] = {}
                up: list[str] = []
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline:
                    if prom.poll() is not None:
                        pytest.fail("prometheus exited:\n" + (tmp_path / "prometheus.log").read_text())
                    with contextlib.suppress(OSError, ValueError):
                        targets = _get_json(f"{base}/targets")["data"]["activeTargets"]
                        health = {t["labels"]["job"]: (t["health"], t["lastError"]) for t in targets}
                        result = _get_json(f"{base}/query?query=mail_exporter_source_up")["data"]["result"]
                        up = [r["value"][1] for r in result if r["metric"]["job"] == "mailcode"]
                        if up and health.get("intruder", ("",))[0] == "down":
                            break
                    time.sleep(0.5)
                assert health.get("mailcode", ("",))[0] == "up" and up == ["1"], health
                assert health["intruder"][0] == "down" and "401" in health["intruder"][1], health
            finally:
                prom.terminate()
                try:
                    prom.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    prom.kill()
                    prom.wait(timeout=15)
        auth = basic("prometheus", "scrape-secret")
        body = https_get(port, pki.ca, headers=auth, cert=(client_cert, client_key))[2].decode()
        assert value(samples(body), "mail_exporter_http_rejected_total", reason="auth") >= 1
    finally:
        _stop(daemon)
