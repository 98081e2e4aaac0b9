"""Restarts through the Pipeline with a real state file: resume, rotation while down, bad state files.

Each "restart" builds a new Pipeline (fresh Counts, fresh followers) on the same state file, as a new
process would; closing the old one without any shutdown step is what `kill -9` leaves behind, since
the pipeline saves its state after every batch and never at exit.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import pytest

from exporter import config, state
from exporter.app import Pipeline
from exporter.catalogue import Catalogue
from exporter.metrics import Counts

# Postfix delivery and reject lines in the shapes Postfix documents and logs (see test_parser_postfix).
H = "Dec  4 15:36:10 mx1 "
SENT = (
    H + "postfix/smtp[4123]: 7A1B82C3{n:02d}: to=<ann{n}@example.net>, relay=mx.example.net[192.0.2.10]:25, "
    "delay=1.2, delays=0.1/0.02/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4F2C1D)\n"
)
BOUNCED = (
    H + "postfix/smtp[4123]: 7A1B82D4{n:02d}: to=<bob{n}@example.net>, relay=mx.example.net[192.0.2.10]:25, "
    "delay=0.9, delays=0.1/0/0.3/0.5, dsn=5.1.1, status=bounced (host mx.example.net[192.0.2.10] said: "
    "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown in virtual mailbox table "
    "(in reply to RCPT TO command))\n"
)
K250 = ("mx", "250", "smtp", "success", "outbound")
K550 = ("mx", "550", "smtp", "failure", "outbound")


def sent(*ns: int) -> str:
    return "".join(SENT.format(n=n) for n in ns)


def bounced(*ns: int) -> str:
    return "".join(BOUNCED.format(n=n) for n in ns)


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def start(log: Path, state_file: Path, **settings) -> Pipeline:
    """A pipeline as `run --source mx=postfix:LOG --state-file STATE` would build it."""
    settings.setdefault("rotate_wait", 0)  # a rotated file is closed as soon as it was read to its end
    s = config.load(
        None,
        {
            "sources": [{"name": "mx", "format": "postfix", "path": str(log)}],
            "state_file": state_file,
            **settings,
        },
    )
    p = Pipeline(s, Catalogue.load(None), Counts(), state_file)
    p.setup()
    return p


def run(p: Pipeline) -> None:
    """What one wake-up does, repeated until nothing more is waiting (a rotated file may need two)."""
    for _ in range(20):
        if not p.step() and not p.step():
            return
    raise AssertionError("the pipeline never caught up")


def value(p: Pipeline, family: str, key: tuple) -> int:
    return p.counts.copy()[0][family].get(key, 0)


@pytest.fixture
def pipelines():
    made: list[Pipeline] = []

    def track(p: Pipeline) -> Pipeline:
        made.append(p)
        return p

    yield track
    for p in made:
        p.close()


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    log = tmp_path / "mail.log"
    log.write_text("")
    return log, tmp_path / "state" / "state.json"


@pytest.fixture(autouse=True)
def _state_dir(files) -> None:
    files[1].parent.mkdir()


def test_restart_resumes_counts_lines_written_while_down_and_keeps_counter_values(files, pipelines):
    log, st = files
    p1 = pipelines(start(log, st))
    run(p1)
    append(log, sent(1, 2) + bounced(1))
    run(p1)
    assert value(p1, "responses", K250) == 2 and value(p1, "responses", K550) == 1
    created = p1.counts.copy()[1]["responses"][K550]
    p1.close()
    append(log, sent(3) + bounced(2, 3) + SENT.format(n=4)[:50])  # a partial line is never parsed
    p2 = pipelines(start(log, st))
    assert value(p2, "responses", K250) == 2  # served at once: no reset seen by Prometheus
    assert value(p2, "responses", K550) == 1
    run(p2)
    assert value(p2, "responses", K250) == 3
    assert value(p2, "responses", K550) == 3
    assert p2.counts.copy()[1]["responses"][K550] == created  # _created survives the restart
    p2.close()
    append(log, SENT.format(n=4)[50:])
    p3 = pipelines(start(log, st))
    run(p3)
    assert value(p3, "responses", K250) == 4  # the line cut at the crash is counted once, whole
    assert value(p3, "lines", ("mx", "unparsed")) == 0


def test_a_file_rotated_while_down_is_found_beside_the_path_and_read(files, pipelines):
    log, st = files
    p1 = pipelines(start(log, st))
    run(p1)
    append(log, sent(1))
    run(p1)
    p1.close()
    append(log, sent(2, 3))  # the end of the file before its rotation
    log.rename(log.with_name("mail.log.1"))
    log.write_text(bounced(1))
    p2 = pipelines(start(log, st))
    run(p2)
    assert value(p2, "responses", K250) == 3 and value(p2, "responses", K550) == 1
    assert value(p2, "file_events", ("mx", "missing")) == 0


def test_saved_state_wins_over_from_beginning(files, pipelines):
    log, st = files
    log.write_text(sent(1, 2))  # there before the first start: not counted (read from the end)
    p1 = pipelines(start(log, st))
    run(p1)
    append(log, bounced(1))
    run(p1)
    p1.close()
    p2 = pipelines(start(log, st, from_beginning=True))
    run(p2)
    assert value(p2, "responses", K250) == 0 and value(p2, "responses", K550) == 1
    p3 = pipelines(start(log, st.with_name("other.json"), from_beginning=True))  # no state: it applies
    run(p3)
    assert value(p3, "responses", K250) == 2 and value(p3, "responses", K550) == 1


def test_published_counts_never_run_ahead_of_the_saved_state(files, pipelines, monkeypatch):
    """Group commit: a batch's counts are published only once the state holding them is saved."""
    log, st = files
    p = pipelines(start(log, st))
    saves: list[tuple[int, int]] = []
    real_save = state.StateWriter.save

    def spy(writer, sources, counters):
        doc = json.loads(counters) if isinstance(counters, str) else counters
        rows = {tuple(k): v for k, v, _ in doc["responses"]}
        saves.append((value(p, "responses", K250), rows.get(K250, 0)))  # (published now, being saved)
        real_save(writer, sources, counters)

    run(p)
    monkeypatch.setattr(state.StateWriter, "save", spy)
    for n in range(1, 6):
        append(log, sent(n))
        run(p)
    assert value(p, "responses", K250) == 5
    assert [saved for _, saved in saves if saved] == [1, 2, 3, 4, 5]
    assert all(published < saved for published, saved in saves if saved)
    doc = state.load(st)
    assert {tuple(k): v for k, v, _ in doc["counters"]["responses"]}[K250] == 5


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"\xff\xfe garbage", b"[1, 2]", b'{"version": 99, "sources": {}, "counters": {}}'],
    ids=["corrupt", "not-utf8", "not-an-object", "other-version"],
)
def test_an_unusable_state_file_is_a_warning_a_metric_and_a_safe_start(files, pipelines, caplog, content):
    log, st = files
    log.write_text(sent(1))
    st.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        p = pipelines(start(log, st))
    assert "starting without it" in caplog.text and str(st) in caplog.text
    assert p.counts.state_saves["error"] == 1
    assert st.with_name("state.json.unusable").read_bytes() == content  # kept for a look
    run(p)
    assert value(p, "responses", K250) == 0  # no state: files from their end, as on a first start
    append(log, sent(2))
    run(p)
    assert value(p, "responses", K250) == 1
    assert state.load(st)["version"] == state.FORMAT_VERSION  # a good state file again


def test_a_state_file_with_malformed_entries_does_not_stop_the_exporter(files, pipelines):
    log, st = files
    st.write_text(
        json.dumps(
            {
                "version": state.FORMAT_VERSION,
                "sources": {"mx": {"files": [{"dev": "x"}, 7, None]}, "gone": {"files": []}},
                "counters": {
                    "responses": [[["mx"], 1, 0], 5, [7, 1, 0], [list(K250), -3, 0], [list(K250), 4, 1]]
                },
            }
        )
    )
    p = pipelines(start(log, st))
    assert value(p, "responses", K250) == 4  # the one well-formed row
    append(log, sent(1))
    run(p)
    assert value(p, "responses", K250) == 5


def test_state_for_files_that_no_longer_exist_is_a_warning_and_a_metric(files, pipelines, caplog):
    log, st = files
    p1 = pipelines(start(log, st))
    run(p1)
    append(log, sent(1))
    run(p1)
    p1.close()
    log.rename(log.with_name("mail.log.1"))
    log.write_text(sent(2))  # the new file, read from byte 0 since it is not in the state
    log.with_name("mail.log.1").unlink()  # rotated and deleted (or compressed) while down
    with caplog.at_level(logging.WARNING):
        p2 = pipelines(start(log, st))
        run(p2)
    assert "cannot be counted" in caplog.text
    assert value(p2, "file_events", ("mx", "missing")) == 1
    assert value(p2, "responses", K250) == 2


def test_reset_state_starts_over(files, pipelines):
    log, st = files
    p1 = pipelines(start(log, st))
    run(p1)
    append(log, sent(1, 2))
    run(p1)
    assert value(p1, "responses", K250) == 2
    p1.close()
    append(log, sent(3))
    p2 = pipelines(start(log, st, reset_state=True))
    assert value(p2, "responses", K250) == 0
    run(p2)
    assert value(p2, "responses", K250) == 0  # from the end, as on a first start
    assert not st.exists() or state.load(st)["counters"]  # the old state is gone, not reloadable
    p2.close()
    p3 = pipelines(start(log, st))  # a crash right after --reset-state must not bring it back
    assert value(p3, "responses", K250) == 0


def test_stale_temporary_files_of_an_interrupted_save_are_removed(files, pipelines):
    log, st = files
    stale = st.parent / ".state.json.k1ll3d.tmp"
    stale.write_text("half a save")
    other = st.parent / ".unrelated.tmp"
    other.write_text("")
    pipelines(start(log, st))
    assert not stale.exists() and other.exists()


def test_a_state_file_that_cannot_be_written_keeps_the_exporter_counting(tmp_path, pipelines, caplog):
    log = tmp_path / "mail.log"
    log.write_text("")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")  # its "directory" is a file: nothing can be created there
    st = blocker / "state.json"
    with caplog.at_level(logging.ERROR):
        p = pipelines(start(log, st))
        run(p)
        append(log, sent(1))
        run(p)
    assert value(p, "responses", K250) == 1  # counted and published without the guarantee
    assert p.counts.state_durable == 0
    assert p.counts.state_saves["error"] >= 1 and p.counts.state_saves["ok"] == 0
    assert "running without the no-loss guarantee" in caplog.text


def _chattr(flag: str, path: Path) -> bool:
    r = subprocess.run(["chattr", flag, str(path)], capture_output=True)
    return r.returncode == 0


def test_a_state_file_turned_read_only_is_reported_and_recovered_from(files, pipelines, caplog):
    log, st = files
    if os.geteuid() != 0 or not _chattr("+i", st.parent):
        pytest.skip("needs root and chattr +i to make a directory read-only for root")
    _chattr("-i", st.parent)
    p = pipelines(start(log, st))
    run(p)
    append(log, sent(1))
    run(p)
    assert p.counts.state_durable == 1
    caplog.set_level(logging.INFO)
    # Both the file (saves write it in place) and its directory (a save that makes it anew renames)
    assert _chattr("+i", st) and _chattr("+i", st.parent)
    try:
        append(log, sent(2))
        run(p)
        assert p.counts.state_durable == 0 and p.counts.state_saves["error"] >= 1
        assert value(p, "responses", K250) == 2
    finally:
        _chattr("-i", st.parent)
        _chattr("-i", st)
    assert "Operation not permitted" in caplog.text
    append(log, sent(3))
    run(p)
    assert p.counts.state_durable == 1 and "saved again" in caplog.text
    assert {tuple(k): v for k, v, _ in state.load(st)["counters"]["responses"]}[K250] == 3


# -- the state module itself -------------------------------------------------------------------------


def test_save_is_atomic_and_leaves_no_temporary_file(files):
    st = files[1]
    state.save(st, {"a": {"files": []}}, {"responses": []})
    state.save(st, {"b": {"files": []}}, {"responses": []})
    assert state.load(st)["sources"] == {"b": {"files": []}}
    assert sorted(p.name for p in st.parent.iterdir()) == ["state.json"]


def test_load_of_a_missing_file_is_none_and_errors_name_the_file(tmp_path):
    assert state.load(tmp_path / "none.json") is None
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "sources": [], "counters": {}}')
    with pytest.raises(state.StateError, match="bad.json"):
        state.load(bad)


# -- in-place saves: two copies, one flush ------------------------------------------------------------


def _saves(path: Path, names: list[str], fsync: bool = True) -> state.StateWriter:
    """A writer that has saved one state per name (sources {name: ...}), in that order."""
    writer = state.StateWriter(path, fsync=fsync)
    for name in names:
        writer.save({name: {"files": []}}, {"responses": [[list(K250), len(name), 1.0]]})
    return writer


def _slot_offsets(path: Path) -> tuple[int, int]:
    size = int(path.read_bytes()[:256].split(b"slots of ")[1].split(b" ")[0])
    return state.HEADER_SIZE, state.HEADER_SIZE + size


def test_saves_after_the_first_overwrite_the_file_in_place(tmp_path):
    st = tmp_path / "lib" / "state.json"
    st.parent.mkdir()
    writer = _saves(st, ["a"])
    first = os.stat(st)
    for name in ["bb", "c", "dddd", "e"]:
        writer.save({name: {"files": []}}, {"responses": []})
        now = os.stat(st)
        assert (now.st_ino, now.st_size) == (first.st_ino, first.st_size)  # no rename, no growth
        assert state.load(st)["sources"] == {name: {"files": []}}
    writer.close()
    assert sorted(p.name for p in st.parent.iterdir()) == ["state.json"]


def test_a_save_torn_by_a_crash_leaves_the_previous_state(tmp_path):
    st = tmp_path / "state.json"
    _saves(st, ["one", "two", "three"]).close()  # slots: 0 = "three", 1 = "two"
    data = bytearray(st.read_bytes())
    newest, older = _slot_offsets(st)
    body = data.index(b"three", newest)
    data[body : body + 5] = b"thre\x00"  # half-written: its checksum fails
    st.write_bytes(bytes(data))
    assert state.load(st)["sources"] == {"two": {"files": []}}
    data[older + 2 : older + 6] = b"XXXX"  # and the other copy's head line as well
    st.write_bytes(bytes(data))
    with pytest.raises(state.StateError, match="neither of its two copies"):
        state.load(st)
    st.write_bytes(b"# mailcode-exporter state file, torn" + bytes(data[40:]))
    with pytest.raises(state.StateError, match="header line is damaged"):
        state.load(st)


def test_the_newer_valid_copy_wins_whichever_slot_it_is_in(tmp_path):
    for names, current in ((["a"], "a"), (["a", "b"], "b"), (["a", "b", "c"], "c"), (list("abcd"), "d")):
        st = tmp_path / f"{len(names)}.json"
        _saves(st, names).close()
        assert state.load(st)["sources"] == {current: {"files": []}}


def test_a_state_that_outgrows_its_slots_is_written_to_a_new_file(tmp_path):
    st = tmp_path / "state.json"
    writer = _saves(st, ["small"])
    before = os.stat(st)
    big = {f"source-{i}": {"files": [{"path": "x" * 200}]} for i in range(400)}  # about 90 KB
    writer.save(big, {"responses": []})
    after = os.stat(st)
    assert after.st_ino != before.st_ino and after.st_size > 2 * 90_000
    assert state.load(st)["sources"] == big
    writer.save({"small": {"files": []}}, {"responses": []})  # in place again, in the bigger file
    assert os.stat(st).st_ino == after.st_ino
    assert state.load(st)["sources"] == {"small": {"files": []}}
    writer.close()


def test_a_state_file_removed_or_replaced_under_the_writer_is_made_again(tmp_path):
    st = tmp_path / "state.json"
    writer = _saves(st, ["a"])
    st.unlink()
    writer.save({"b": {"files": []}}, {"responses": []})
    assert state.load(st)["sources"] == {"b": {"files": []}}
    st.write_text("{}")  # rewritten by someone else (same inode): not written into through the old descriptor
    writer.save({"c": {"files": []}}, {"responses": []})
    assert state.load(st)["sources"] == {"c": {"files": []}}
    replacement = tmp_path / "copy.json"
    state.save(replacement, {"d": {"files": []}}, {"responses": []})
    os.replace(replacement, st)  # another file renamed over it
    writer.save({"e": {"files": []}}, {"responses": []})
    assert state.load(st)["sources"] == {"e": {"files": []}}
    writer.close()


def test_a_shorter_save_leaves_no_stale_bytes_behind(tmp_path):
    st = tmp_path / "state.json"
    writer = _saves(st, ["x" * 3000, "y" * 3000, "z", "w"])
    writer.close()
    text = st.read_text()
    assert "x" * 100 not in text and "y" * 100 not in text  # overwritten with spaces, not left over
    assert state.load(st)["sources"] == {"w": {"files": []}}


def test_a_state_file_of_the_single_document_layout_still_loads(tmp_path):
    st = tmp_path / "state.json"
    doc = {"version": state.FORMAT_VERSION, "sources": {"a": {"files": []}}, "counters": {}}
    st.write_text(json.dumps(doc))
    assert state.load(st)["sources"] == {"a": {"files": []}}
    _saves(st, ["b"]).close()  # the next save writes the two-copy layout
    assert st.read_bytes().startswith(state.MAGIC)
    assert state.load(st)["sources"] == {"b": {"files": []}}
