"""Waking the reader: the self-pipe Waker and the DirectoryWatcher's file events (inotify, observer)."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from exporter.tail import DirectoryWatcher, Waker

# Generous: a wake-up is expected within milliseconds; only a missing one may take this long.
PATIENCE = 5.0


@pytest.fixture
def waker():
    w = Waker()
    yield w
    w.close()


def test_wait_times_out_without_a_wake_up(waker):
    t = time.monotonic()
    assert waker.wait(0.05) is False
    assert time.monotonic() - t >= 0.04


def test_set_from_another_thread_wakes_a_waiting_thread_once(waker):
    threading.Timer(0.05, waker.set).start()
    assert waker.wait(PATIENCE) is True
    assert waker.wait(0.05) is False  # consumed: no second wake-up for the same set()


def test_many_sets_before_a_wait_are_one_wake_up_and_never_block(waker):
    for _ in range(200_000):  # far more than a pipe holds: set() must not block when it is full
        waker.set()
    assert waker.wait(0) is True
    assert waker.wait(0.05) is False


@pytest.fixture
def watched(tmp_path: Path, waker):
    d = tmp_path / "logs"
    d.mkdir()
    log = d / "mail.log"
    log.write_text("")
    watcher = DirectoryWatcher(waker)
    watcher.start([str(d)])
    waker.wait(0.05)  # nothing pending
    yield d, log, watcher
    watcher.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
def test_an_append_wakes_the_reader_through_inotify(watched, waker):
    d, log, watcher = watched
    assert watcher._fd is not None and watcher._observer is None  # no thread between inotify and reader
    with log.open("a") as f:
        f.write("one line\n")
    assert waker.wait(PATIENCE) is True
    assert waker.wait(0.05) is False  # the events were read, not left to wake it again and again


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
def test_reading_a_file_is_not_a_wake_up(watched, waker):
    d, log, watcher = watched
    log.read_text()  # opens and closes without writing: nothing new to read
    assert waker.wait(0.1) is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
@pytest.mark.parametrize("change", ["rename", "create", "delete", "truncate"])
def test_rotation_steps_wake_the_reader(watched, waker, change):
    d, log, watcher = watched
    if change == "rename":
        log.rename(d / "mail.log.1")
    elif change == "create":
        (d / "mail.log.new").write_text("")
    elif change == "delete":
        log.unlink()
    else:
        os.truncate(log, 0)
    assert waker.wait(PATIENCE) is True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
def test_a_directory_removed_and_made_again_is_watched_again(watched, waker):
    d, log, watcher = watched
    log.unlink()
    d.rmdir()
    deadline = time.monotonic() + PATIENCE
    while not watcher.lost and time.monotonic() < deadline:
        waker.wait(0.05)
    assert watcher.lost  # the kernel dropped the watch with the directory
    d.mkdir()
    watcher.update([str(d)])  # what the pipeline does when `lost` is set
    assert not watcher.lost
    waker.wait(0.05)
    (d / "mail.log").write_text("back\n")
    assert waker.wait(PATIENCE) is True


def test_the_observer_fallback_wakes_the_reader_too(tmp_path, waker, monkeypatch):
    """Where watchdog has no inotify binding (not Linux), its platform observer calls set()."""
    import watchdog.observers
    from watchdog.observers.polling import PollingObserver

    import exporter.tail

    monkeypatch.setattr(exporter.tail, "_inotify", lambda: None)  # as where there is no inotify
    monkeypatch.setattr(watchdog.observers, "Observer", lambda: PollingObserver(timeout=0.05))
    d = tmp_path / "logs"
    d.mkdir()
    watcher = DirectoryWatcher(waker)
    watcher.start([str(d)])
    try:
        assert watcher._fd is None and watcher._observer is not None
        time.sleep(0.1)
        waker.wait(0.05)
        (d / "mail.log").write_text("one line\n")
        assert waker.wait(PATIENCE) is True
    finally:
        watcher.stop()


def test_poll_mode_watches_nothing(tmp_path, waker):
    watcher = DirectoryWatcher(waker, poll=True)
    watcher.start([str(tmp_path)])
    (tmp_path / "mail.log").write_text("x\n")
    assert waker.wait(0.1) is False  # only the pipeline's timer wakes it
    watcher.stop()
