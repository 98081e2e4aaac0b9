"""The follower, driven by calling poll() directly (the injected wake-up) with an injected clock.

No test sleeps: each one writes to files, calls poll() the way a file event would, and moves a fake
clock past `rotate_wait` where the follower has to wait for a rotated file to fall idle.
"""

from __future__ import annotations

import logging
import os
import shutil
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from exporter.tail import Follower, TrackedFile

WAIT = 5.0  # rotate_wait of every follower here; the fake clock jumps past it


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingSink:
    """Records everything the follower hands on, and checks that each block is whole lines."""

    def __init__(self) -> None:
        self.got: list[bytes] = []  # every line, without its newline, in the order handed on
        self.blocks: list[int] = []  # size of each block handed on
        self.events: Counter[str] = Counter()
        self.opened_as: list[tuple[str, str]] = []
        self.lost_bytes: Counter[str] = Counter()
        self.oversized = 0
        self.errors = 0
        self.read = 0

    def opened(self, tf: TrackedFile, event: str) -> None:
        self.opened_as.append((os.path.basename(tf.path), event))
        tf.ctx = event

    def lines(self, tf: TrackedFile, data: bytes) -> None:
        assert data.endswith(b"\n"), data[-40:]
        assert tf.ctx is not None, "lines handed on before the sink was told about the file"
        self.blocks.append(len(data))
        self.got.extend(data.split(b"\n")[:-1])

    def event(self, name: str) -> None:
        self.events[name] += 1

    def oversize(self) -> None:
        self.oversized += 1

    def lost(self, reason: str, nbytes: int) -> None:
        self.lost_bytes[reason] += nbytes

    def read_error(self) -> None:
        self.errors += 1

    def read_bytes(self, nbytes: int) -> None:
        self.read += nbytes

    def take(self) -> list[bytes]:
        out, self.got = self.got, []
        return out


def line(i: int, tag: str = "m") -> bytes:
    return f"{tag} line {i:05d} status=sent (250 ok)\n".encode()


def lines(rng: range, tag: str = "m") -> bytes:
    return b"".join(line(i, tag) for i in rng)


def names(rng: range, tag: str = "m") -> list[bytes]:
    return [line(i, tag)[:-1] for i in rng]


def append(path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def drain(f: Follower, sink: RecordingSink) -> None:
    """Poll until nothing more is waiting (what one wake-up of the pipeline does, bounded)."""
    for _ in range(100):
        if not f.poll(sink):
            return
    raise AssertionError("the follower never stopped reporting more input")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def follow(clock):
    made: list[Follower] = []

    def make(pattern, **kw) -> Follower:
        kw.setdefault("rotate_wait", WAIT)
        f = Follower(str(pattern), clock=clock, **kw)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


# -- starting ------------------------------------------------------------------------------------


def test_a_new_follower_starts_at_the_end_and_counts_a_line_in_progress_whole(tmp_path, follow):
    log = tmp_path / "mail.log"
    log.write_bytes(lines(range(3)) + b"m line 00003 sta")  # the writer is in the middle of a line
    f, sink = follow(log), RecordingSink()
    drain(f, sink)
    assert sink.take() == []
    append(log, b"tus=sent (250 ok)\n" + lines(range(4, 6)))
    drain(f, sink)
    assert sink.take() == names(range(3, 6))  # never a fragment such as b"tus=sent (250 ok)"
    assert sink.events == {"open": 1}


def test_from_beginning_reads_what_is_there(tmp_path, follow):
    log = tmp_path / "mail.log"
    log.write_bytes(lines(range(4)))
    f, sink = follow(log, from_beginning=True), RecordingSink()
    drain(f, sink)
    assert sink.take() == names(range(4))
    assert sink.read == log.stat().st_size


def test_a_file_that_appears_later_is_read_from_byte_0(tmp_path, follow):
    log = tmp_path / "mail.log"
    f, sink = follow(log), RecordingSink()
    drain(f, sink)
    assert not f.up and "does not exist" in f.problem
    log.write_bytes(lines(range(2)))
    drain(f, sink)
    assert f.up and f.problem is None
    assert sink.take() == names(range(2))


# -- lines -----------------------------------------------------------------------------------------


def test_lines_written_in_pieces_are_handed_on_whole_and_read_once(tmp_path, follow):
    log = tmp_path / "mail.log"
    log.write_bytes(b"")
    f, sink = follow(log), RecordingSink()
    drain(f, sink)
    whole = line(1) + line(2)
    for a, b in [(0, 5), (5, 17), (17, 40), (40, len(whole))]:
        append(log, whole[a:b])
        drain(f, sink)
        drain(f, sink)  # polling again while a partial line waits re-reads it, but counts it once
    assert sink.take() == names(range(1, 3))
    assert sink.read == len(whole)
    assert f.behind() == 0


def test_crlf_lines_keep_their_cr_and_split_at_lf(tmp_path, follow):
    log = tmp_path / "mail.log"
    log.write_bytes(b"")
    f, sink = follow(log), RecordingSink()
    drain(f, sink)
    append(log, b"first\r\nsecond\r")
    drain(f, sink)
    assert sink.take() == [b"first\r"]  # "second\r" waits: a CR alone does not end a line
    append(log, b"\nthird\r\n")
    drain(f, sink)
    assert sink.take() == [b"second\r", b"third\r"]


def test_nul_bytes_and_invalid_utf8_pass_through_without_stopping_the_reader(tmp_path, follow):
    log = tmp_path / "mail.log"
    log.write_bytes(b"")
    f, sink = follow(log), RecordingSink()
    drain(f, sink)
    junk = [b"\x00\x00\x00", b"bad \xff\xfe\xc3( utf8", b"\x00" * 4000 + b"x"]
    append(log, b"\n".join(junk) + b"\n" + line(1))
    drain(f, sink)
    assert sink.take() == [*junk, line(1)[:-1]]


def test_a_line_longer_than_max_line_is_counted_once_and_skipped_to_its_newline(tmp_path, follow):
    log = tmp_path / "mail.log"
    log.write_bytes(b"")
    f, sink = follow(log, max_line=1024), RecordingSink()
    drain(f, sink)
    append(log, line(1) + b"x" * 5000 + b"\n" + line(2))
    drain(f, sink)
    assert sink.take() == names(range(1, 3))
    assert sink.oversized == 1
    append(log, b"y" * 1500)  # too long before its newline is even there
    drain(f, sink)
    assert sink.oversized == 2
    append(log, b"y" * 700 + b"\n" + line(3))
    drain(f, sink)
    assert sink.take() == [line(3)[:-1]]  # the tail of the long line is dropped, not made a line
    assert sink.oversized == 2
    assert max(len(x) for x in sink.got + [b""]) <= 1024


def test_a_10_mb_line_without_newline_is_never_held_in_memory(tmp_path, follow):
    log = tmp_path / "mail.log"
    log.write_bytes(b"")
    f, sink = follow(log, max_line=4096, chunk=64 * 1024), RecordingSink()
    drain(f, sink)
    block = b"z" * (1 << 20)
    with open(log, "ab") as w:
        for _ in range(10):
            w.write(block)
    tracemalloc.start()
    try:
        drain(f, sink)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak  # the follower read 10 MiB through a 64 KiB window
    assert sink.oversized == 1 and sink.got == []
    assert f.files[0].offset == log.stat().st_size and f.files[0].skipping
    append(log, b"zz\n" + line(1))
    drain(f, sink)
    assert sink.take() == [line(1)[:-1]]
    assert sink.oversized == 1


# -- rotation by rename ----------------------------------------------------------------------------


def test_rename_and_create_reads_the_old_file_to_its_end_then_the_new_one(tmp_path, follow, clock):
    log, old = tmp_path / "mail.log", tmp_path / "mail.log.1"
    log.write_bytes(b"")
    f, sink = follow(log), RecordingSink()
    drain(f, sink)
    with open(log, "ab", buffering=0) as writer:  # a syslog daemon: keeps its descriptor across the rename
        writer.write(lines(range(0, 3)))
        drain(f, sink)
        os.rename(log, old)
        log.write_bytes(b"")  # logrotate's create
        writer.write(lines(range(3, 6)))  # not signalled yet: still appends to the renamed file
        drain(f, sink)
        writer.write(lines(range(6, 8)) + b"m line 00008 sta")  # ... and stops in the middle of a line
        log.write_bytes(lines(range(100, 102)))  # the new file, once reopened (written first here)
        drain(f, sink)
        got = sink.take()
        assert sorted(got) == sorted(names(range(0, 8)) + names(range(100, 102)))
        assert len(f.files) == 2  # the renamed file is kept: its last line is not finished yet
        clock.advance(WAIT - 1)
        writer.write(b"tus=sent")  # it grows: the wait for idleness starts again
        drain(f, sink)
        clock.advance(WAIT - 1)
        drain(f, sink)
        assert sink.take() == []
        clock.advance(1)
        drain(f, sink)
        assert sink.take() == [b"m line 00008 status=sent"]  # idle for rotate_wait: finished as a line
        drain(f, sink)
        assert [tf.path for tf in f.files] == [str(log)]  # and the renamed file is closed
        assert sink.events == {"open": 1, "rotate": 1}
        assert sink.lost_bytes == {}


def test_rotated_files_are_read_before_the_file_now_at_the_path(tmp_path, follow):
    log = tmp_path / "mail.log"
    log.write_bytes(b"")
    f, sink = follow(log), RecordingSink()
    drain(f, sink)
    append(log, lines(range(3), "old"))
    os.rename(log, tmp_path / "mail.log.1")
    log.write_bytes(lines(range(3), "new"))
    drain(f, sink)
    assert sink.take() == names(range(3), "old") + names(range(3), "new")


def test_delete_and_recreate(tmp_path, follow, clock):
    log = tmp_path / "mail.log"
    log.write_bytes(b"")
    f, sink = follow(log), RecordingSink()
    drain(f, sink)
    with open(log, "ab", buffering=0) as writer:
        writer.write(lines(range(2)))
        os.unlink(log)
        writer.write(lines(range(2, 4)))  # written to the deleted file: only our descriptor can read it
    log.write_bytes(lines(range(10, 12)))
    drain(f, sink)
    assert sorted(sink.take()) == sorted(names(range(4)) + names(range(10, 12)))
    clock.advance(WAIT)
    drain(f, sink)
    assert len(f.files) == 1 and f.files[0].path == str(log)
    assert sink.events["rotate"] == 1


def test_a_file_that_vanishes_and_comes_back_later(tmp_path, follow, clock):
    log = tmp_path / "mail.log"
    log.write_bytes(b"")
    f, sink = follow(log), RecordingSink()
    drain(f, sink)
    append(log, lines(range(2)))
    os.unlink(log)
    drain(f, sink)
    assert sink.take() == names(range(2))
    assert not f.up and "does not exist" in f.problem
    clock.advance(WAIT)
    drain(f, sink)
    assert f.files == []  # the deleted file was read to its end and closed
    log.write_bytes(lines(range(2, 4)))
    drain(f, sink)
    assert f.up and sink.take() == names(range(2, 4))
    assert sink.events == {"open": 1, "reopen": 1}


def test_a_symlink_whose_target_is_swapped(tmp_path, follow, clock):
    a, b, link = tmp_path / "a.log", tmp_path / "b.log", tmp_path / "mail.log"
    a.write_bytes(b"")
    link.symlink_to(a)
    f, sink = follow(link), RecordingSink()
    drain(f, sink)
    append(a, lines(range(2)))
    drain(f, sink)
    assert sink.take() == names(range(2))
    b.write_bytes(lines(range(10, 12)))
    tmp_link = tmp_path / "mail.log.tmp"
    tmp_link.symlink_to(b)
    os.replace(tmp_link, link)  # an atomic swap, as deployment tools do it
    append(a, lines(range(2, 4)))  # the writer has not switched yet
    drain(f, sink)
    assert sorted(sink.take()) == sorted(names(range(2, 4)) + names(range(10, 12)))
    assert sink.events == {"open": 1, "rotate": 1}
    clock.advance(WAIT)
    drain(f, sink)
    assert [tf.real for tf in f.files] == [str(b)]
    assert str(tmp_path) in f.watch_dirs()


def test_a_glob_whose_files_appear_and_disappear(tmp_path, follow, clock):
    d = tmp_path / "logs"
    d.mkdir()
    (d / "a.log").write_bytes(lines(range(3), "a"))  # there at start: read from its end
    (d / "ignored.txt").write_bytes(b"not matched\n")
    f, sink = follow(d / "*.log"), RecordingSink()
    drain(f, sink)
    assert f.up and sink.take() == []
    append(d / "a.log", line(3, "a"))
    (d / "b.log").write_bytes(lines(range(2), "b"))  # appears later: from byte 0
    drain(f, sink)
    assert sorted(sink.take()) == sorted(names(range(3, 4), "a") + names(range(2), "b"))
    append(d / "a.log", line(4, "a"))
    os.unlink(d / "a.log")  # disappears with a line not read yet
    drain(f, sink)
    assert sink.take() == names(range(4, 5), "a")
    clock.advance(WAIT)
    drain(f, sink)
    assert [os.path.basename(tf.path) for tf in f.files] == ["b.log"]
    os.unlink(d / "b.log")
    drain(f, sink)
    clock.advance(WAIT)
    drain(f, sink)
    assert not f.up and "no file matches" in f.problem and f.files == []
    (d / "c.log").write_bytes(line(0, "c"))
    drain(f, sink)
    assert f.up and sink.take() == names(range(1), "c")


# -- truncation ------------------------------------------------------------------------------------


def test_copytruncate_reads_the_unread_rest_from_the_copy(tmp_path, follow, clock):
    log, copy = tmp_path / "mail.log", tmp_path / "mail.log.1"
    log.write_bytes(b"")
    f, sink = follow(log), RecordingSink()
    drain(f, sink)
    append(log, lines(range(3)))
    drain(f, sink)
    assert sink.take() == names(range(3))
    append(log, lines(range(3, 6)))  # not read before logrotate copies and truncates
    shutil.copyfile(log, copy)
    os.truncate(log, 0)
    append(log, lines(range(6, 8)))
    drain(f, sink)
    drain(f, sink)
    assert sorted(sink.take()) == sorted(names(range(3, 8)))
    assert sink.lost_bytes == {}
    assert sink.events == {"open": 1, "truncate": 1}
    clock.advance(WAIT)
    drain(f, sink)
    assert [tf.path for tf in f.files] == [str(log)]  # the copy is closed once idle


def test_copytruncate_counts_as_lost_what_was_written_between_copy_and_truncate(tmp_path, follow):
    log, copy = tmp_path / "mail.log", tmp_path / "mail.log.1"
    log.write_bytes(b"")
    f, sink = follow(log), RecordingSink()
    drain(f, sink)
    append(log, lines(range(2)))
    shutil.copyfile(log, copy)
    late = b"m line 00002 status=sent (25"  # written after the copy, seen but not complete
    append(log, late)
    drain(f, sink)
    os.truncate(log, 0)
    append(log, b"0 ok)\n" + line(3))  # the writer finishes its line in the truncated file
    drain(f, sink)
    assert sink.take() == names(range(2)) + [b"0 ok)", line(3)[:-1]]
    assert sink.lost_bytes == {"truncated": len(late)}


def test_truncate_counts_the_bytes_seen_but_not_read_as_lost(tmp_path, follow):
    log = tmp_path / "mail.log"
    log.write_bytes(b"")
    f, sink = follow(log, max_line=256), RecordingSink()  # reads at least 258 bytes a poll
    drain(f, sink)
    append(log, lines(range(40)))
    f.poll(sink, budget=1)  # a small budget: one read, most of the file seen but not read
    got = sink.take()
    read = sum(len(x) + 1 for x in got)
    assert 0 < len(got) < 40
    os.truncate(log, 0)
    append(log, line(99))
    drain(f, sink)
    assert sink.take() == [line(99)[:-1]]
    assert sink.lost_bytes == {"truncated": len(lines(range(40))) - read}
    assert sink.events["truncate"] == 1


def test_a_truncated_file_that_regrew_past_the_offset_is_still_seen_as_truncated(tmp_path, follow):
    log = tmp_path / "mail.log"
    log.write_bytes(b"")
    f, sink = follow(log), RecordingSink()
    drain(f, sink)
    append(log, lines(range(3)))
    drain(f, sink)
    assert sink.take() == names(range(3))
    os.truncate(log, 0)
    append(log, lines(range(3), "x") + lines(range(3, 6), "x"))  # longer than before, other first bytes
    drain(f, sink)
    assert sink.take() == names(range(6), "x")
    assert sink.events["truncate"] == 1 and sink.lost_bytes == {}


# -- restart (restore) -----------------------------------------------------------------------------


def stopped_after(follow, path: Path, written: bytes, target: Path | None = None) -> tuple[list, list]:
    """Follow `path` from its end, read `written` appended to it (or to `target`, the file a symlink
    names), then stop as the exporter would: (the positions it saved, the names of the lines it read)."""
    f, sink = follow(path), RecordingSink()
    drain(f, sink)
    append(target or path, written)
    drain(f, sink)
    saved = f.positions()
    f.close()
    return saved, sink.take()


def restarted(follow, log, positions, sink) -> Follower:
    f = follow(log)
    f.restore(positions)
    drain(f, sink)
    return f


def test_restore_resumes_at_the_saved_offset_and_reads_what_was_written_meanwhile(tmp_path, follow):
    log = tmp_path / "mail.log"
    log.write_bytes(b"")
    saved, read = stopped_after(follow, log, lines(range(3)) + b"m line 00003 st")
    append(log, b"atus=sent (250 ok)\n" + lines(range(4, 6)))  # written while the exporter was down
    sink2 = RecordingSink()
    restarted(follow, log, saved, sink2)
    assert read == names(range(3))
    assert sink2.take() == names(range(3, 6))  # the partial line was not passed: it is read whole
    assert sink2.opened_as == [("mail.log", "resume")]


def test_restore_finds_a_file_rotated_while_down_beside_the_path_and_reads_its_rest_first(
    tmp_path, follow, clock
):
    log = tmp_path / "mail.log"
    log.write_bytes(b"")
    saved, _ = stopped_after(follow, log, lines(range(3)))
    append(log, lines(range(3, 5)))
    os.rename(log, tmp_path / "mail.log.1")
    log.write_bytes(lines(range(5, 7)))
    sink2 = RecordingSink()
    f2 = restarted(follow, log, saved, sink2)
    assert sink2.take() == names(range(3, 7))  # the old file's rest first, then the new file
    clock.advance(WAIT)
    drain(f2, sink2)
    assert [tf.path for tf in f2.files] == [str(log)]


def test_restore_follows_a_rotated_file_renamed_on_while_down(tmp_path, follow):
    log = tmp_path / "mail.log"
    log.write_bytes(lines(range(2)))
    f, sink = follow(log, from_beginning=True), RecordingSink()
    drain(f, sink)
    saved = f.positions()
    f.close()
    append(log, line(2))
    os.rename(log, tmp_path / "mail.log.1")
    os.rename(tmp_path / "mail.log.1", tmp_path / "mail.log.2")  # logrotate shifting its numbers
    log.write_bytes(line(3))
    sink2 = RecordingSink()
    restarted(follow, log, saved, sink2)
    assert sink2.take() == names(range(2, 4))


def test_restore_after_a_symlink_swap_while_down_finds_the_old_target(tmp_path, follow):
    targets = tmp_path / "targets"
    targets.mkdir()
    a, b, link = targets / "a.log", targets / "b.log", tmp_path / "mail.log"
    a.write_bytes(b"")
    link.symlink_to(a)
    saved, _ = stopped_after(follow, link, lines(range(2)), target=a)
    append(a, lines(range(2, 4)))
    b.write_bytes(lines(range(4, 6)))
    link.unlink()
    link.symlink_to(b)
    sink2 = RecordingSink()
    restarted(follow, link, saved, sink2)
    assert sink2.take() == names(range(2, 6))


def test_restore_after_copytruncate_while_down_reads_the_rest_from_the_copy(tmp_path, follow):
    log = tmp_path / "mail.log"
    log.write_bytes(b"")
    saved, _ = stopped_after(follow, log, lines(range(3)))
    append(log, lines(range(3, 5)))
    shutil.copyfile(log, tmp_path / "mail.log.1")
    os.truncate(log, 0)
    append(log, lines(range(5, 7), "n"))
    sink2 = RecordingSink()
    restarted(follow, log, saved, sink2)
    assert sorted(sink2.take()) == sorted(names(range(3, 5)) + names(range(5, 7), "n"))
    assert sink2.events["truncate"] == 1 and sink2.events["missing"] == 0


def test_bytes_seen_before_a_crash_and_truncated_while_down_are_counted_lost(tmp_path, follow, clock):
    log = tmp_path / "mail.log"
    log.write_bytes(b"")
    head = b"m line 00003 status=se"
    saved, _ = stopped_after(follow, log, lines(range(3)) + head)  # the writer is cut mid-line
    shutil.copyfile(log, tmp_path / "mail.log.1")  # holds the head: not lost
    append(log, b"nt (250 ok)\n")  # after the copy: lost, but never seen, so not counted
    os.truncate(log, 0)
    append(log, line(9))
    sink2 = RecordingSink()
    f2 = restarted(follow, log, saved, sink2)
    assert sink2.lost_bytes == {}
    assert sink2.take() == [line(9)[:-1]]
    clock.advance(WAIT)
    drain(f2, sink2)
    assert sink2.take() == [head]  # the copy's last line, finished once the copy is idle
    f2.close()

    (tmp_path / "mail.log.1").unlink()
    log.write_bytes(b"")
    saved, _ = stopped_after(follow, log, lines(range(3)) + head)
    os.truncate(log, 0)  # a bare truncate while down: the head, seen before the crash, is gone
    append(log, line(9))
    sink3 = RecordingSink()
    restarted(follow, log, saved, sink3)
    assert sink3.lost_bytes == {"truncated": len(head)}
    assert sink3.take() == [line(9)[:-1]]


def test_inode_reuse_same_identity_other_first_bytes_is_a_new_file(tmp_path, follow):
    log = tmp_path / "mail.log"
    log.write_bytes(b"")
    saved, _ = stopped_after(follow, log, lines(range(3)))
    ino = log.stat().st_ino
    with open(log, "r+b") as w:  # same device and inode, other content, longer than the offset
        w.truncate(0)
        w.write(lines(range(6), "other"))
    assert log.stat().st_ino == ino and saved[0]["ino"] == ino
    sink2 = RecordingSink()
    restarted(follow, log, saved, sink2)
    assert sink2.take() == names(range(6), "other")  # from byte 0, not from the old offset


def test_a_file_gone_while_down_is_reported_missing_and_the_new_one_read_from_0(tmp_path, follow, caplog):
    log = tmp_path / "mail.log"
    log.write_bytes(b"")
    saved, _ = stopped_after(follow, log, lines(range(2)))
    os.rename(log, tmp_path / "mail.log.1")
    log.write_bytes(line(7))
    (tmp_path / "mail.log.1").unlink()  # compressed away (delaycompress forgotten)
    sink2 = RecordingSink()
    restarted(follow, log, saved, sink2)
    assert sink2.take() == [line(7)[:-1]]
    assert sink2.events["missing"] == 1
    assert "cannot be counted" in caplog.text


def test_a_rotated_file_read_to_its_end_and_deleted_while_down_is_no_loss(tmp_path, follow, caplog):
    caplog.set_level(logging.INFO)
    log, old = tmp_path / "mail.log", tmp_path / "mail.log.1"
    log.write_bytes(b"")
    f, sink = follow(log), RecordingSink()
    drain(f, sink)
    append(log, lines(range(2)))
    os.rename(log, old)
    log.write_bytes(line(2) + b"m line 00003 st")  # a partial line: seen, not read
    drain(f, sink)
    assert sorted(f.positions(), key=lambda p: p["rotated"])[1]["rotated"]  # waits for rotate_wait
    saved = f.positions()
    f.close()
    old.unlink()  # read to its end: its loss is harmless
    os.rename(log, old)  # ... but this one had bytes not read yet
    log.write_bytes(line(4))
    old.unlink()
    sink2 = RecordingSink()
    restarted(follow, log, saved, sink2)
    assert sink2.take() == [line(4)[:-1]]
    assert sink2.events["missing"] == 1  # only the file that was live at the crash
    assert sink2.lost_bytes == {"missing": len(b"m line 00003 st")}
    assert "rotated and read to its end, is gone" in caplog.text


def test_restore_ignores_malformed_entries(tmp_path, follow):
    log = tmp_path / "mail.log"
    log.write_bytes(line(0))
    sink = RecordingSink()
    bad = [{"dev": "x"}, "not a dict", {"path": str(log)}, None]
    f = restarted(follow, log, bad, sink)
    assert sink.take() == [line(0)[:-1]]  # state wins: with a (broken) state, new files from 0
    assert f.up


def test_oversize_filter_shortcut_is_exact():
    """The fast check that lets a block through untouched agrees with the line-by-line filter."""
    import random

    class Oversize:
        n = 0

        def oversize(self) -> None:
            Oversize.n += 1

    follower = Follower("/nonexistent", max_line=64)
    rng = random.Random(7)
    for _ in range(5000):
        lines = [
            b"x" * rng.choice([0, 1, 31, 32, 33, 63, 64, 65, 100, 130]) for _ in range(rng.randint(1, 8))
        ]
        Oversize.n = 0
        got = follower._drop_oversize(b"\n".join(lines) + b"\n", Oversize())
        kept = [line for line in lines if len(line) <= 64]
        assert got == (b"\n".join(kept) + b"\n" if kept else b"")
        assert Oversize.n == len(lines) - len(kept)
