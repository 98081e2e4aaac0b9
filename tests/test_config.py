"""Configuration: precedence (flags > environment > file), strict checks, one clear line per problem."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT

from exporter import config


def write(tmp_path, text: str):
    f = tmp_path / "config.yml"
    f.write_text(text)
    return f


def test_file_env_and_flags_precedence(tmp_path, monkeypatch):
    f = write(
        tmp_path,
        "web:\n  listen_address: ':1111'\npoll_interval: 3\nstate_file: st/state.json\n"
        "sources:\n  - path: logs/mail.log\n",
    )
    s = config.load(f, {})
    assert s.web.listen_address == ":1111" and s.poll_interval == 3
    assert s.state_file == tmp_path / "st" / "state.json"  # relative to the config file
    assert s.sources[0].path == str(tmp_path / "logs" / "mail.log")
    assert s.sources[0].name == "auto" and s.sources[0].format == "auto"  # the default format
    monkeypatch.setenv("MAILCODE_POLL_INTERVAL", "4")
    monkeypatch.setenv("MAILCODE_WEB__LISTEN_ADDRESS", ":2222")
    s = config.load(f, {})
    assert s.poll_interval == 4 and s.web.listen_address == ":2222"
    s = config.load(f, {"poll_interval": 5, "web": {"listen_address": ":3333"}})
    assert s.poll_interval == 5 and s.web.listen_address == ":3333"


def test_defaults_in_one_place():
    s = config.load(None, {})
    assert s.web.listen_address == ":9841"
    assert s.from_beginning is False and s.max_line_bytes == 65536
    assert str(config.default_state_file()).endswith("mailcode-exporter/state.json")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("bogus: 1\n", "bogus: unknown key"),
        ("poll_interval: soon\n", "poll_interval: Input should be a valid number"),
        ("poll_interval: -1\n", "poll_interval: Input should be greater than 0"),
        ("web:\n  listen_address: nowhere\n", "web.listen_address: 'nowhere' is not HOST:PORT"),
        ("web:\n  colour: red\n", "web.colour: unknown key"),
        ("sources:\n  - format: postfix\n", "sources.0.path: required key is missing"),
        ("sources:\n  - path: x\n    format: nope\n", "sources.0.format: unknown format 'nope'"),
        (
            "sources:\n  - path: x\n    format: regex\n    options: {pattern: '(unclosed'}\n",
            "options.pattern: invalid regular expression",
        ),
        ("sources:\n  - path: x\n    format: regex\n    options: {pattern: 'no group'}\n", "named group"),
        (
            "sources:\n  - path: x\n    format: jsonl\n    options: {colum: code}\n",
            "options.colum: not an option of the jsonl format",
        ),
        ("sources:\n  - path: x\n    options: {field: code}\n", "not an option of the auto format"),
        (
            "sources:\n  - path: x\n    format: postfix\n    options: {field: code}\n",
            "not an option of the postfix format",
        ),
        ("sources:\n  - path: a\n  - path: b\n", "two sources are named 'auto'"),
        ("sources:\n  - path: a\n    name: 'bad name'\n", "sources.0.name"),
        ("sources: [\n", "config file"),
    ],
)
def test_bad_configuration_is_one_clear_line(tmp_path, text, expected):
    f = write(tmp_path, text)
    with pytest.raises(config.ConfigError) as err:
        config.load(f, {})
    message = str(err.value)
    assert expected in message
    assert "\n" not in message


def test_unreadable_or_directory_config(tmp_path):
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(tmp_path / "missing.yml", {})
    with pytest.raises(config.ConfigError, match="is a directory"):
        config.load(tmp_path, {})


@pytest.mark.parametrize(
    "flag,expected",
    [
        ("/var/log/mail.log", {"path": "/var/log/mail.log"}),
        ("postfix:/var/log/mail.log", {"path": "/var/log/mail.log", "format": "postfix"}),
        (
            "edge=postfix:/var/log/mail-*.log",
            {"path": "/var/log/mail-*.log", "format": "postfix", "name": "edge"},
        ),
        ("plex=jsonl:logs/email.log", {"path": "logs/email.log", "format": "jsonl", "name": "plex"}),
        ("mx=/var/log/mail.log", {"path": "/var/log/mail.log", "name": "mx"}),
    ],
)
def test_source_flag(flag, expected):
    assert config.parse_source_flag(flag) == expected


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=30,
    )


def test_run_refuses_bad_configuration_with_exit_2(tmp_path):
    f = write(tmp_path, "sources:\n  - path: x\n    format: regex\n    options: {pattern: '['}\n")
    r = run_cli("run", "--config", str(f))
    assert r.returncode == 2
    assert "invalid regular expression" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run_cli("--source", "a=postfix:/x", "--source", "a=postfix:/y")
    assert r.returncode == 2 and "two sources are named 'a'" in r.stderr
    r = run_cli("run")
    assert r.returncode == 2 and "no source to follow" in r.stderr
    r = run_cli("--web.listen-address", "bad", "--source", "/x")
    assert r.returncode == 2 and "is not HOST:PORT" in r.stderr
    r = run_cli("--catalogue", str(tmp_path / "none.yml"), "--source", "/x")
    assert r.returncode == 2 and "cannot read" in r.stderr


def test_check_config(tmp_path):
    f = write(
        tmp_path, "sources:\n  - name: plex\n    format: csv\n    path: plex.csv\n    options: {column: rc}\n"
    )
    r = run_cli("check-config", str(f))
    assert r.returncode == 0, r.stderr
    assert "OK (1 source(s), 28 catalogue codes)" in r.stdout
    assert "does not exist yet" in r.stderr
    f.write_text("sources: 3\n")
    r = run_cli("check-config", str(f))
    assert r.returncode == 2 and "sources" in r.stderr and "Traceback" not in r.stderr


def test_help_explains_itself():
    r = run_cli("--help")
    assert r.returncode == 0
    for word in ("run", "replay", "demo", "catalogue", "check-config"):
        assert word in r.stdout
    r = run_cli("run", "--help")
    for flag in ("--source", "--web.listen-address", "--state-file", "--from-beginning", "--config"):
        assert flag in r.stdout
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("mailcode-exporter ")
    assert "Postfix scanner: " in r.stdout
