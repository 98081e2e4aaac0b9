"""Where a source's lines come from: files (the Follower), and later the journal, syslog and stdin.

Every reader offers the Follower's interface to the pipeline: poll(sink, budget) -> more waiting,
positions() / restore(saved) for the state file, behind(), up, problem, watch_dirs(), close(),
and start(waker) for readers that run a thread or a subprocess and wake the pipeline themselves.
"""

from __future__ import annotations

from typing import Any

from .config import Settings, SourceConfig
from .tail import Follower


def open_reader(cfg: SourceConfig, settings: Settings) -> Any:
    """The reader for one configured source, chosen by its location."""
    return Follower(
        cfg.path,
        from_beginning=settings.from_beginning,
        max_line=settings.max_line_bytes,
        rotate_wait=settings.rotate_wait,
    )
