"""Configuration: a YAML file, MAILCODE_* environment variables and flags (flags win), strictly checked."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from . import parsers

DEFAULT_PORT = 9841
DEFAULT_LISTEN = f":{DEFAULT_PORT}"
DEFAULT_FORMAT = "auto"
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")

Direction = Literal["inbound", "outbound"]


class ConfigError(Exception):
    """Configuration that cannot be used; str() is one line naming the key and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoOptions(_Strict):
    pass


class JsonlOptions(_Strict):
    field: str = "code"
    direction: Direction = "outbound"


class CsvOptions(_Strict):
    column: str = "code"
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","
    direction: Direction = "outbound"


class RegexOptions(_Strict):
    pattern: str
    direction: Direction = "outbound"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        if "code" not in compiled.groupindex:
            raise ValueError("the regular expression needs a named group (?P<code>...)")
        return value


OPTIONS: dict[str, type[BaseModel]] = {"jsonl": JsonlOptions, "csv": CsvOptions, "regex": RegexOptions}

SYSLOG_SCHEMES = ("syslog+udp", "syslog+tcp")
# The journal filter when none is given: every Postfix unit (postfix.service, postfix@-.service,
# postfix@postfix-out.service) and identifier (postfix/smtpd, postfix/submission/smtpd, postfix-out/smtp),
# whatever cgroup the program ran in (postdrop and sendmail run from cron or user sessions).
POSTFIX_UNITS = ("postfix*",)
POSTFIX_IDENTIFIERS = ("postfix*",)


def location_kind(path: str) -> str:
    """What a source's location names: "file" (a path or glob), "journal", "syslog" or "stdin"."""
    if path == "-":
        return "stdin"
    if path == "journal" or path.startswith("journal:"):
        return "journal"
    if "://" in path:
        return "syslog"
    return "file"


def split_syslog(path: str) -> tuple[str, str, int]:
    """`syslog+udp://HOST:PORT` -> ("udp", host, port); an empty HOST means loopback."""
    scheme, _, address = path.partition("://")
    if scheme not in SYSLOG_SCHEMES:
        raise ValueError(
            f"unknown location scheme {scheme!r}: use syslog+udp://HOST:PORT or syslog+tcp://HOST:PORT"
        )
    try:
        host, port = split_address(address)
    except ValueError:
        raise ValueError(
            f"{path!r} is not {scheme}://HOST:PORT (for example {scheme}://127.0.0.1:5140)"
        ) from None
    return scheme.removeprefix("syslog+"), host or "127.0.0.1", port


class JournalOptions(_Strict):
    """Where the journal is and which entries are the source's (shell-style globs, matched exactly)."""

    directory: str | None = None
    files: list[str] = Field(default_factory=list)
    units: list[str] | None = None
    identifiers: list[str] | None = None

    @model_validator(mode="after")
    def _one_location(self) -> JournalOptions:
        if self.directory and self.files:
            raise ValueError("give directory or files, not both")
        return self


class SyslogOptions(_Strict):
    max_message_bytes: Annotated[int, Field(ge=480, le=1024 * 1024)] = 8192
    max_connections: Annotated[int, Field(ge=1, le=4096)] = 64


def _location_options(source: SourceConfig) -> None:
    """Check the location and the options of its kind; fill in the defaults of that kind."""
    kind = location_kind(source.path)
    for key in ("journal", "syslog"):
        if getattr(source, key) is not None and kind != key:
            raise ValueError(f"{key}: options for a {key} location, but path is {source.path!r}")
    if kind == "syslog":
        split_syslog(source.path)
        source.syslog = source.syslog or SyslogOptions()
    elif kind == "journal":
        opts = source.journal or JournalOptions()
        unit = source.path.partition(":")[2]
        if unit and "." not in unit and not set("*?[") & set(unit):
            unit += ".service"  # as systemctl and journalctl -u complete a unit name
        if unit:
            opts.units = [unit, *(u for u in opts.units or [] if u != unit)]
            opts.identifiers = opts.identifiers or []
        elif opts.units is None and opts.identifiers is None:
            if source.format not in ("postfix", "auto"):
                raise ValueError(
                    f"journal: the default filter is Postfix's; for the {source.format} format give "
                    "journal:UNIT or journal.units / journal.identifiers"
                )
            opts.units, opts.identifiers = list(POSTFIX_UNITS), list(POSTFIX_IDENTIFIERS)
        source.journal = opts


class SourceConfig(_Strict):
    """One log source: a name (the `source` label), a format and a location."""

    name: str | None = None
    format: str = DEFAULT_FORMAT
    path: str
    options: dict[str, Any] = Field(default_factory=dict)
    journal: JournalOptions | None = None
    syslog: SyslogOptions | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not NAME_RE.match(value):
            raise ValueError("a source name is a letter or _ followed by letters, digits, _ . - (at most 64)")
        return value

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value not in parsers.available():
            raise ValueError(f"unknown format {value!r} (known: {', '.join(parsers.available())})")
        return value

    @model_validator(mode="after")
    def _options(self) -> SourceConfig:
        model = OPTIONS.get(self.format, NoOptions)
        try:
            self.options = model.model_validate(self.options).model_dump()
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"not an option of the {self.format} format"
            raise ValueError(f"options.{where}: {msg}") from None
        _location_options(self)
        if self.name is None:
            self.name = self.format
        return self


class WebConfig(_Strict):
    listen_address: str = DEFAULT_LISTEN
    config_file: Path | None = None

    @field_validator("listen_address")
    @classmethod
    def _address(cls, value: str) -> str:
        split_address(value)
        return value


class Settings(BaseSettings):
    """Everything the daemon needs; defaults live here and nowhere else."""

    model_config = SettingsConfigDict(
        env_prefix="MAILCODE_", env_nested_delimiter="__", extra="forbid", yaml_file=None
    )

    sources: list[SourceConfig] = Field(default_factory=list)
    catalogue_file: Path | None = None
    web: WebConfig = Field(default_factory=WebConfig)
    state_file: Path | None = None
    reset_state: bool = False
    from_beginning: bool = False
    poll: bool = False
    poll_interval: Annotated[float, Field(gt=0, le=60)] = 1.0
    rotate_wait: Annotated[float, Field(ge=0, le=3600)] = 5.0
    max_line_bytes: Annotated[int, Field(ge=256, le=16 * 1024 * 1024)] = 64 * 1024
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls))

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        seen: set[str] = set()
        for i, source in enumerate(self.sources):
            if source.name in seen:
                raise ValueError(f"sources.{i}.name: two sources are named {source.name!r}; give each a name")
            seen.add(source.name)
        return self


def default_state_file() -> Path:
    """Where the state lives when no --state-file is given: the XDG state directory of the user."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "mailcode-exporter" / "state.json"


def split_address(value: str) -> tuple[str, int]:
    """HOST:PORT (HOST may be empty for all interfaces, or [v6]) -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(
            f"{value!r} is not HOST:PORT (for example :{DEFAULT_PORT} or 127.0.0.1:{DEFAULT_PORT})"
        )
    host = host.strip("[]")
    return host, int(port)


_SOURCE_RE = re.compile(r"^(?:(?P<name>[^=:/]+)=)?(?:(?P<format>[a-z][a-z0-9]*):(?!//))?(?P<loc>.+)$")


def parse_source_flag(text: str) -> dict[str, Any]:
    """`[NAME=][FORMAT:]LOCATION` -> a source mapping (validated later with the rest)."""
    m = _SOURCE_RE.match(text)
    if m is None:
        raise ConfigError(
            f"--source {text!r}: expected [NAME=][FORMAT:]LOCATION, for example postfix:/var/log/mail.log"
        )
    out: dict[str, Any] = {"path": m.group("loc")}
    if m.group("format") == "journal":  # journal:UNIT is a location, not a format
        out["path"] = f"journal:{m.group('loc')}"
    elif m.group("format"):
        out["format"] = m.group("format")
    if m.group("name"):
        out["name"] = m.group("name")
    return out


def _format_error(exc: ValidationError, origin: str) -> str:
    err = exc.errors()[0]
    where = ".".join(str(x) for x in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "required key is missing"
    extra = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
    return f"{origin}: {where}: {msg}{extra}" if where else f"{origin}: {msg}{extra}"


def load(config_file: Path | None, overrides: dict[str, Any]) -> Settings:
    """Build the settings from the file, the environment and the flags; ConfigError on any problem."""
    origin = f"config file {config_file}" if config_file else "configuration"
    if config_file is not None:
        path = Path(config_file)
        if path.is_dir():
            raise ConfigError(f"{origin}: is a directory, not a file")
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise ConfigError(f"{origin}: cannot read: {exc.strerror or exc}") from None
    cls: type[Settings] = Settings
    if config_file is not None:

        class FileSettings(Settings):
            model_config = SettingsConfigDict(yaml_file=str(config_file), yaml_file_encoding="utf-8")

        cls = FileSettings
    try:
        settings = cls(**overrides)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, origin)) from None
    except Exception as exc:  # a YAML syntax error or a bad environment variable surfaces here
        text = " ".join(str(exc).split())
        raise ConfigError(f"{origin}: {text}") from None
    if config_file is not None:
        _resolve_paths(settings, Path(config_file).resolve().parent, from_file=overrides)
    return settings


def _resolve_paths(settings: Settings, base: Path, from_file: dict[str, Any]) -> None:
    """Relative paths written in the config file are relative to the file, not to the working directory."""
    if (
        settings.catalogue_file
        and not settings.catalogue_file.is_absolute()
        and "catalogue_file" not in from_file
    ):
        settings.catalogue_file = base / settings.catalogue_file
    if settings.state_file and not settings.state_file.is_absolute() and "state_file" not in from_file:
        settings.state_file = base / settings.state_file
    web_file = settings.web.config_file
    if web_file and not web_file.is_absolute() and "config_file" not in from_file.get("web", {}):
        settings.web.config_file = base / web_file
    if "sources" not in from_file:
        for source in settings.sources:
            if location_kind(source.path) == "file" and not os.path.isabs(source.path):
                source.path = str(base / source.path)
            if source.journal is not None:
                if source.journal.directory:
                    source.journal.directory = str(base / source.journal.directory)
                source.journal.files = [str(base / f) for f in source.journal.files]
