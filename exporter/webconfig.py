"""The web configuration file (exporter-toolkit format): TLS, client certificates, basic auth, headers.

The same YAML that node_exporter reads with --web.config.file. It is checked strictly at start (a bad
file is a one-line error), and looked at again on each new connection and request: when it, or a
certificate or key it names, has changed, it is loaded again, so certificates rotate without a restart.
A reload that fails keeps the configuration in force and says why.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import ssl
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import bcrypt
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

log = logging.getLogger(__name__)

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

# The cipher suite names the toolkit accepts (Go's, which are the IANA names) -> OpenSSL's names.
# TLS 1.3 suites are accepted and, as in the toolkit, not configurable: they are always on.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
}
TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")

CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1", "X25519": "X25519"}

# Response headers the file may set, with the values allowed (None: any single-line value).
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}

_BCRYPT_RE = re.compile(r"^\$2[abxy]?\$([0-9]{2})\$[./A-Za-z0-9]{53}$")
_DURATION_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_MAX_CONFIG_BYTES = 1 << 20
AUTH_CACHE_SIZE = 64


class WebConfigError(Exception):
    """A web configuration that cannot be used; str() is one line naming the file, the key and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TLSServerConfig(_Strict):
    cert: str | None = None
    key: str | None = None
    client_ca: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    client_auth_type: Literal[
        "NoClientCert",
        "RequestClientCert",
        "RequireAnyClientCert",
        "RequireClientCert",
        "VerifyClientCertIfGiven",
        "RequireAndVerifyClientCert",
    ] = "NoClientCert"
    client_ca_file: str | None = None
    client_allowed_sans: list[str] | None = None
    min_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS12"
    max_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS13"
    cipher_suites: list[str] = Field(default_factory=list)
    prefer_server_cipher_suites: bool = True
    curve_preferences: list[str] = Field(default_factory=list)

    @field_validator("client_auth_type")
    @classmethod
    def _verifying(cls, value: str) -> str:
        if value in ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert"):
            raise ValueError(
                f"{value} (a client certificate that is not verified) is not supported; "
                "use RequireAndVerifyClientCert with client_ca_file"
            )
        return value

    @field_validator("cipher_suites")
    @classmethod
    def _ciphers(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in CIPHER_SUITES and name not in TLS13_SUITES:
                raise ValueError(f"unknown cipher suite {name!r} (known: {', '.join(CIPHER_SUITES)})")
        return value

    @field_validator("curve_preferences")
    @classmethod
    def _curves(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in CURVES:
                raise ValueError(f"unknown curve {name!r} (known: {', '.join(CURVES)})")
        if len(value) > 1:
            raise ValueError("only one curve can be given here (Python's ssl module sets a single curve)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TLSServerConfig:
        if not (self.cert or self.cert_file):
            raise ValueError("missing one of cert or cert_file")
        if not (self.key or self.key_file):
            raise ValueError("missing one of key or key_file")
        if self.cert and self.cert_file:
            raise ValueError("give cert or cert_file, not both")
        if self.key and self.key_file:
            raise ValueError("give key or key_file, not both")
        if self.client_ca and self.client_ca_file:
            raise ValueError("give client_ca or client_ca_file, not both")
        has_ca = bool(self.client_ca or self.client_ca_file)
        if has_ca and self.client_auth_type == "NoClientCert":
            raise ValueError("a client CA is given without client_auth_type (RequireAndVerifyClientCert)")
        if not has_ca and self.client_auth_type != "NoClientCert":
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file or client_ca")
        if self.client_allowed_sans is not None and self.client_auth_type != "RequireAndVerifyClientCert":
            raise ValueError("client_allowed_sans needs client_auth_type RequireAndVerifyClientCert")
        if TLS_VERSIONS[self.min_version] > TLS_VERSIONS[self.max_version]:
            raise ValueError(f"min_version {self.min_version} is above max_version {self.max_version}")
        return self


class HTTPServerConfig(_Strict):
    http2: bool = True  # accepted for compatibility; HTTP/1.1 is what this server speaks
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if name not in HEADERS:
                raise ValueError(f"header {name!r} cannot be configured (allowed: {', '.join(HEADERS)})")
            allowed = HEADERS[name]
            if allowed is not None and text not in allowed:
                raise ValueError(f"header {name}: {text!r} is not one of {', '.join(allowed)}")
            if any(c in text for c in "\r\n\0"):
                raise ValueError(f"header {name}: the value must be a single line")
        return value


class RateLimitConfig(_Strict):
    interval: str | int = 0
    burst: Annotated[int, Field(ge=0)] = 0

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str | int) -> str | int:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _burst(self) -> RateLimitConfig:
        if parse_duration(self.interval) > 0 and self.burst < 1:
            raise ValueError("burst must be at least 1 when interval is set (otherwise nothing is allowed)")
        return self


class WebConfigModel(_Strict):
    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = Field(default_factory=HTTPServerConfig)
    basic_auth_users: dict[str, str] | None = None
    rate_limit: RateLimitConfig | None = None

    @field_validator("basic_auth_users")
    @classmethod
    def _hashes(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for user, hashed in (value or {}).items():
            m = _BCRYPT_RE.match(hashed) if isinstance(hashed, str) else None
            if m is None or not 4 <= int(m.group(1)) <= 31:
                # Never echo the value: it is a secret.
                raise ValueError(
                    f"user {user!r}: not a bcrypt hash (make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')"
                )
        return value


def parse_duration(value: str | int) -> float:
    """A Go duration ("30s", "1m30s", "250ms") or a number of nanoseconds -> seconds; ValueError if not."""
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return value * 1e-9
    text = value.strip()
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration like 1s, 500ms or 1m30s")
    return total


# -- basic auth --------------------------------------------------------------------------------------

_dummy_hashes: dict[int, bytes] = {}
_dummy_lock = threading.Lock()


def bcrypt_cost(hashed: bytes) -> int:
    """The cost (log2 rounds) written in a bcrypt hash: b"$2y$10$..." -> 10."""
    return int(hashed.split(b"$")[2])


def dummy_hash(cost: int) -> bytes:
    """A bcrypt hash of a random password at this cost, made once per cost."""
    with _dummy_lock:
        hit = _dummy_hashes.get(cost)
        if hit is None:
            hit = bcrypt.hashpw(secrets.token_hex(16).encode(), bcrypt.gensalt(rounds=cost))
            _dummy_hashes[cost] = hit
        return hit


class BasicAuth:
    """Checks user and password against bcrypt hashes; an unknown user costs what a wrong password costs.

    Verified credentials are remembered (a keyed SHA-256 of user, password and hash, at most
    AUTH_CACHE_SIZE of them) so a scrape every few seconds does not pay for bcrypt each time. Failures
    are not remembered: a wrong password always pays the full price, one check at a time.
    """

    def __init__(self, users: dict[str, str], checker: Callable[[bytes, bytes], bool] = bcrypt.checkpw):
        self._users = {name: hashed.encode() for name, hashed in users.items()}
        self.cost = max(bcrypt_cost(h) for h in self._users.values())  # mixed costs: the dearest
        self._dummy = dummy_hash(self.cost)
        self._checker = checker
        self._key = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()  # a flood of bad passwords burns one core, not all of them

    def check(self, user: str, password: bytes) -> bool:
        stored = self._users.get(user)
        material = b"\0".join((user.encode("utf-8", "surrogateescape"), password, stored or b""))
        key = hmac.new(self._key, material, hashlib.sha256).digest()
        with self._cache_lock:
            if key in self._verified:
                self._verified.move_to_end(key)
                return True
        with self._bcrypt_lock:
            try:
                ok = self._checker(password, stored if stored is not None else self._dummy)
            except ValueError:  # a password bcrypt refuses (over 72 bytes): refused alike for every user
                ok = False
        if not ok or stored is None:
            return False
        with self._cache_lock:
            self._verified[key] = None
            while len(self._verified) > AUTH_CACHE_SIZE:
                self._verified.popitem(last=False)
        return True


class RateLimiter:
    """A token bucket: one token every `interval` seconds, at most `burst` saved up."""

    def __init__(self, interval: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self._interval, self._burst, self._clock = interval, burst, clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._last) / self._interval)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


# -- loading -----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class WebSettings:
    """What one version of the file means: a TLS context (or None for plain HTTP) and the checks."""

    tls: ssl.SSLContext | None
    auth: BasicAuth | None
    headers: tuple[tuple[str, str], ...]
    allowed_sans: frozenset[str] | None
    limiter: RateLimiter | None

    def describe(self) -> str:
        parts = ["TLS" if self.tls is not None else "plain HTTP"]
        if self.tls is not None and self.tls.verify_mode == ssl.CERT_REQUIRED:
            parts.append("client certificates required")
        elif self.tls is not None and self.tls.verify_mode == ssl.CERT_OPTIONAL:
            parts.append("client certificates verified if given")
        if self.auth is not None:
            parts.append(f"basic auth (bcrypt cost {self.auth.cost})")
        if self.limiter is not None:
            parts.append("rate limit")
        return ", ".join(parts)

    def san_allowed(self, cert: dict | None) -> bool:
        """True when no SAN list is configured or the verified client certificate carries one of them."""
        if self.allowed_sans is None:
            return True
        for kind, text in (cert or {}).get("subjectAltName", ()):
            if kind == "IP Address":
                text = _normal_ip(text)
            if text in self.allowed_sans:
                return True
        return False


def _normal_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return text


def _format_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(x) for x in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "literal_error":
        msg = f"must be one of {msg.removeprefix('Input should be ')}"
    extra = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
    return f"{where}: {msg}{extra}" if where else f"{msg}{extra}"


def read_model(path: Path) -> WebConfigModel:
    """Parse and check the YAML of the file (not the files it names); WebConfigError when unusable."""
    origin = f"web config file {path}"
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_CONFIG_BYTES + 1)
    except IsADirectoryError:
        raise WebConfigError(f"{origin}: is a directory, not a file") from None
    except OSError as exc:
        raise WebConfigError(f"{origin}: cannot read: {exc.strerror or exc}") from None
    if len(data) > _MAX_CONFIG_BYTES:
        raise WebConfigError(f"{origin}: larger than {_MAX_CONFIG_BYTES} bytes")
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{origin}: not valid YAML: {' '.join(str(exc).split())}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise WebConfigError(f"{origin}: expected a mapping (tls_server_config, basic_auth_users, ...)")
    try:
        return WebConfigModel.model_validate(doc)
    except ValidationError as exc:
        raise WebConfigError(f"{origin}: {_format_error(exc)}") from None


def named_files(model: WebConfigModel, base: Path) -> list[Path]:
    """The certificate, key and CA files the configuration reads (relative to the file's directory)."""
    t = model.tls_server_config
    if t is None:
        return []
    return [base / p for p in (t.cert_file, t.key_file, t.client_ca_file) if p]


def _tls_context(t: TLSServerConfig, base: Path, origin: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.minimum_version = TLS_VERSIONS[t.min_version]
        ctx.maximum_version = TLS_VERSIONS[t.max_version]
    except ValueError as exc:
        raise WebConfigError(f"{origin}: tls_server_config: TLS versions: {exc}") from None
    if t.prefer_server_cipher_suites:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_alpn_protocols(["http/1.1"])
    _load_certificate(ctx, t, base, origin)
    if t.client_auth_type != "NoClientCert":
        try:
            if t.client_ca_file:
                ctx.load_verify_locations(cafile=str(base / t.client_ca_file))
            else:
                ctx.load_verify_locations(cadata=t.client_ca)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise WebConfigError(f"{origin}: tls_server_config: client CA: {_reason(exc)}") from None
        required = t.client_auth_type == "RequireAndVerifyClientCert"
        ctx.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
    ciphers = [CIPHER_SUITES[name] for name in t.cipher_suites if name in CIPHER_SUITES]
    if ciphers:
        try:
            ctx.set_ciphers(":".join(ciphers))
        except ssl.SSLError as exc:
            raise WebConfigError(f"{origin}: tls_server_config.cipher_suites: {_reason(exc)}") from None
    if t.curve_preferences:
        ctx.set_ecdh_curve(CURVES[t.curve_preferences[0]])
    return ctx


def _load_certificate(ctx: ssl.SSLContext, t: TLSServerConfig, base: Path, origin: str) -> None:
    def no_password() -> bytes:
        return b""  # an encrypted key fails to load instead of prompting on the terminal

    for label, name in (("cert_file", t.cert_file), ("key_file", t.key_file)):
        if name:
            try:
                with open(base / name, "rb"):
                    pass
            except OSError as exc:
                where = f"tls_server_config.{label} {base / name}"
                raise WebConfigError(f"{origin}: {where}: {_reason(exc)}") from None
    # Inline PEM text goes through a private temporary file: load_cert_chain reads only files.
    with tempfile.TemporaryDirectory(prefix="mailcode-tls-") as tmp:
        cert_path = base / t.cert_file if t.cert_file else _private_file(Path(tmp) / "cert.pem", t.cert or "")
        key_path = base / t.key_file if t.key_file else _private_file(Path(tmp) / "key.pem", t.key or "")
        try:
            ctx.load_cert_chain(str(cert_path), str(key_path), password=no_password)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise WebConfigError(
                f"{origin}: tls_server_config: cannot load the certificate and key: {_reason(exc)}"
            ) from None


def _private_file(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split())


def build(model: WebConfigModel, base: Path, origin: str, checker=bcrypt.checkpw) -> WebSettings:
    """Turn a checked model into settings: read the certificates, hash the dummy password."""
    t = model.tls_server_config
    tls = _tls_context(t, base, origin) if t is not None else None
    auth = BasicAuth(model.basic_auth_users, checker) if model.basic_auth_users else None
    limiter = None
    if model.rate_limit is not None and parse_duration(model.rate_limit.interval) > 0:
        limiter = RateLimiter(parse_duration(model.rate_limit.interval), model.rate_limit.burst)
    sans = None
    if t is not None and t.client_allowed_sans is not None:
        sans = frozenset(_normal_ip(s) for s in t.client_allowed_sans)
    headers = tuple(model.http_server_config.headers.items())
    return WebSettings(tls, auth, headers, sans, limiter)


def load(path: Path, checker=bcrypt.checkpw) -> tuple[WebSettings, list[Path]]:
    """The settings of the file and the files it names; WebConfigError (one line) when unusable."""
    model = read_model(path)
    base = Path(path).resolve().parent
    return build(model, base, f"web config file {path}", checker), named_files(model, base)


class WebConfigFile:
    """The web configuration in force, reloaded when the file or a file it names changes."""

    def __init__(self, path: Path | str, checker: Callable[[bytes, bytes], bool] = bcrypt.checkpw):
        self.path = Path(path)
        self._checker = checker
        self._lock = threading.Lock()
        self._files = [self.path]
        self._signature: tuple = ()
        self.settings = self._load()
        self.reloads = {"ok": 0, "error": 0}
        self.last_reload_ok = 1
        if self.settings.tls is None and self.settings.auth is not None:
            log.warning("web config %s: basic auth over plain HTTP sends passwords in clear text", self.path)
        log.info("web config %s: %s", self.path, self.settings.describe())

    def _stat(self) -> tuple:
        return tuple(_identity(p) for p in self._files)

    def current(self) -> WebSettings:
        """The settings in force, after loading the file again if it (or a certificate) changed."""
        if self._stat() == self._signature:
            return self.settings
        with self._lock:
            if self._stat() != self._signature:
                self._reload()
            return self.settings

    def _load(self) -> WebSettings:
        """Read the file and the files it names; WebConfigError when they cannot be used.

        Each file's identity is taken before it is read, so a change made meanwhile is seen next time.
        """
        config_id = _identity(self.path)
        try:
            model = read_model(self.path)
        except WebConfigError:
            self._signature = (config_id, *(_identity(p) for p in self._files[1:]))
            raise
        base = self.path.resolve().parent
        self._files = [self.path, *named_files(model, base)]
        self._signature = (config_id, *(_identity(p) for p in self._files[1:]))
        return build(model, base, f"web config file {self.path}", self._checker)

    def _reload(self) -> None:
        try:
            new = self._load()
            if (new.tls is None) != (self.settings.tls is None):
                raise WebConfigError(
                    f"web config file {self.path}: switching between HTTP and HTTPS needs a restart"
                )
        except WebConfigError as exc:
            self.reloads["error"] += 1
            self.last_reload_ok = 0
            log.error("%s; keeping the web configuration in force", exc)
            return
        self.settings = new
        self.reloads["ok"] += 1
        self.last_reload_ok = 1
        log.info("web config %s reloaded: %s", self.path, new.describe())


def _identity(path: Path) -> tuple | int | None:
    """What tells a new version of a file: inode, size, modification and change times (or the errno)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return exc.errno
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
