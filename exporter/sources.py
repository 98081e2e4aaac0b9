"""Where a source's lines come from: files (the Follower), the systemd journal, a syslog listener, stdin.

Every reader offers the Follower's interface to the pipeline: poll(sink, budget) -> more waiting,
positions() / restore(saved) for the state file, behind(), up, problem, watch_dirs(), close(),
and start(waker) for readers that run a thread or a subprocess and wake the pipeline themselves.
"""

from __future__ import annotations

from typing import Any

from .config import JournalOptions, Settings, SourceConfig, SyslogOptions, location_kind, split_syslog
from .tail import Follower


def open_reader(cfg: SourceConfig, settings: Settings) -> Any:
    """The reader for one configured source, chosen by its location."""
    kind = location_kind(cfg.path)
    if kind == "journal":
        from .journal import JournalReader

        opts = cfg.journal or JournalOptions()
        return JournalReader(
            units=opts.units or [],
            identifiers=opts.identifiers or [],
            directory=opts.directory,
            files=opts.files,
            from_beginning=settings.from_beginning,
            max_line=settings.max_line_bytes,
            location=cfg.path,
        )
    if kind == "syslog":
        from .syslog import SyslogReader

        transport, host, port = split_syslog(cfg.path)
        syslog = cfg.syslog or SyslogOptions()
        return SyslogReader(
            transport,
            host,
            port,
            max_message=syslog.max_message_bytes,
            max_connections=syslog.max_connections,
            max_line=settings.max_line_bytes,
            location=cfg.path,
        )
    if kind == "stdin":
        from .streams import StdinReader

        return StdinReader(max_line=settings.max_line_bytes)
    return Follower(
        cfg.path,
        from_beginning=settings.from_beginning,
        max_line=settings.max_line_bytes,
        rotate_wait=settings.rotate_wait,
    )
