"""Rotation races forced deterministically: the agent's event loop is stopped (the
SHIPPER_TEST_STALL hook, shipper/tail/stall.py) while files are written, renamed, copied
and truncated "between two looks", as on a loaded machine; then it goes on. Watchdog's
thread keeps running meanwhile, as it does while a busy loop parses. Every line written
must be in Elasticsearch exactly once (found by `benchmarks/rotation_soak.py`)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import wait_for
from .test_durability import gen0_under_way
from .test_tailing import Run, holds

pytestmark = pytest.mark.integration


class Stall:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.marker = tmp_path / "stall"
        monkeypatch.setenv("SHIPPER_TEST_STALL", str(self.marker))

    @contextlib.contextmanager
    def loop_stopped(self) -> Iterator[None]:
        """The agent's loop blocked for the body's duration (no scan, no read, no send)."""
        ack = Path(str(self.marker) + ".stalled")
        self.marker.touch()
        wait_for(ack.exists, 30, "the agent's loop to stall")
        try:
            yield
        finally:
            self.marker.unlink()
        wait_for(lambda: not ack.exists(), 30, "the agent's loop to go on")

    @contextlib.contextmanager
    def armed(self, point: str) -> Iterator[None]:
        """Arm `stall.point(point)`: the agent's loop stops the next time it gets there."""
        marker = Path(f"{self.marker}.{point}")
        marker.touch()
        try:
            yield
        finally:
            marker.unlink(missing_ok=True)

    def stopped_at(self, point: str) -> None:
        wait_for(Path(f"{self.marker}.{point}.stalled").exists, 60, f"the agent's loop to stop at {point}")


def _run(r_args: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **inp: Any) -> tuple[Run, Stall]:
    stall = Stall(tmp_path, monkeypatch)
    r = Run(r_args["es_plain"], r_args["es_client"], r_args["agent_factory"], tmp_path, **inp)
    return r, stall


def _config(r: Run, **top: Any) -> None:
    cfg = yaml.safe_load(r.agent.config.read_text())
    cfg.update(top)
    r.agent.config.write_text(yaml.safe_dump(cfg))


def _copytruncate_run(env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Run, Stall]:
    """copies as app.log.*; app.log.0, an older rotation there before the file, must never
    be taken for a copy of it."""
    r, stall = _run(env, tmp_path, monkeypatch, rotated_paths=[f"{tmp_path}/logs/app.log.*"])
    (r.logs / "app.log.0").write_bytes(b"".join(b"decoy %d from an older rotation\n" % i for i in range(1000)))
    return r, stall


def _empty_app_registered(
    env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Run, Stall, Path]:
    """A copytruncate run whose app.log the agent has registered empty (fingerprinted on
    0 bytes): the start of every race of a generation begun empty."""
    r, stall = _copytruncate_run(env, tmp_path, monkeypatch)
    app = r.logs / "app.log"
    app.write_bytes(b"")
    r.agent.start()
    wait_for(lambda: "new file" in _agent_log(r), 60, "the agent to register the empty file")
    return r, stall, app


def copytruncate(r: Run, app: Path, copy: str, then: bytes) -> None:
    """logrotate copytruncate (copy, truncate), then the writer goes on with `then`."""
    shutil.copyfile(app, r.logs / copy)
    os.truncate(app, 0)
    with app.open("ab") as f:
        f.write(then)


def _live_name_only(r: Run) -> None:
    """paths: app.log alone: the rotated names are not matched (`rotation_soak.py --current-only`)."""
    cfg = yaml.safe_load(r.agent.config.read_text())
    cfg["inputs"][0]["paths"] = [str(r.logs / "app.log")]
    r.agent.config.write_text(yaml.safe_dump(cfg))


def pinned(r: Run, path: Path) -> None:
    """Wait until the agent process holds `path`'s inode open (watchdog's thread pinned it)."""
    ino = os.stat(path).st_ino
    wait_for(lambda: holds(r, ino), 30, f"the agent to open {path.name} (inode {ino})", interval=0.02)


def _agent_log(r: Run) -> str:
    return r.agent.log_path.read_text(errors="replace")


@pytest.fixture
def env(es_plain: dict[str, Any], es_client: Any, agent_factory: Any) -> dict[str, Any]:
    return {"es_plain": es_plain, "es_client": es_client, "agent_factory": agent_factory}


def test_a_new_file_renamed_away_before_the_scan_is_read_from_its_pin(
    env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rename rotation with only the live name matched: app.log is created, written and
    renamed to app.log.1 (not matched) before any scan ran; its lines, and lines written
    to it after the rename, are read from the descriptor watchdog's thread opened."""
    r, stall = _run(env, tmp_path, monkeypatch)
    _live_name_only(r)
    r.agent.start()
    wait_for(lambda: "shipping 1 input" in _agent_log(r), 60, "the agent to start")
    app = r.logs / "app.log"
    with stall.loop_stopped():
        fd = os.open(app, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(fd, r.lines("first life", 500))
        pinned(r, app)
        os.replace(app, r.logs / "app.log.1")
        os.write(fd, r.lines("after the rename", 50))  # the old descriptor, as RotatingFileHandler
        os.close(fd)
        app.write_bytes(r.lines("second life", 300))
        pinned(r, app)
    r.assert_exactly_once()
    assert "renamed away before the scan" in _agent_log(r)
    assert r.agent.stop() == 0


@pytest.mark.parametrize("then", [100, 0])
def test_copytruncate_before_the_first_read_of_a_generation_begun_empty(
    then: int, env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """app.log registered empty (fingerprint over 0 bytes), then written, copied and
    truncated before the reader's first read: the copy holds the generation (adopted as a
    generation of its own); an older copy there before the file is never taken for it.
    With nothing written after the truncation (then=0) the file shows nothing at all: only
    the copy's appearance tells."""
    r, stall, app = _empty_app_registered(env, tmp_path, monkeypatch)
    with stall.loop_stopped():
        app.write_bytes(r.lines("begun empty", 2000))
        copytruncate(r, app, "app.log.1", r.lines("after the truncation", then) if then else b"")
    r.assert_exactly_once()
    assert "holds a generation never read" in _agent_log(r)
    assert r.agent.stop() == 0


def test_copytruncate_before_the_scan_registered_the_file(
    env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new file written, copied and truncated before the scan registered it: pinned
    when it appeared, so the copy, made after, is known to hold its bytes."""
    r, stall = _copytruncate_run(env, tmp_path, monkeypatch)
    app = r.logs / "app.log"
    r.agent.start()
    wait_for(lambda: "shipping 1 input" in _agent_log(r), 60, "the agent to start")
    with stall.loop_stopped():
        app.write_bytes(r.lines("before the scan", 2000))
        pinned(r, app)
        copytruncate(r, app, "app.log.1", r.lines("after the truncation", 100))
    r.assert_exactly_once()
    assert r.agent.stop() == 0


def test_generations_copied_away_while_the_reader_waits_are_each_read(
    env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader is held mid-file by backpressure while the file is copied and truncated
    twice: the first copy finishes the generation it was reading, the second holds a
    generation it never saw, read whole as a generation of its own."""
    r, stall = _copytruncate_run(env, tmp_path, monkeypatch)
    _config(r, max_inflight_bytes="256KiB")  # a slow reader: the truncations come mid-file
    app = r.logs / "app.log"
    gen0_under_way(r, app)
    wait_for(lambda: 2_000 <= r.count() < 100_000, 90, "the reader to be part way through gen0")
    with stall.loop_stopped():
        copytruncate(r, app, "app.log.1", r.lines("gen1 never seen", 3000))
        copytruncate(r, app, "app.log.2", r.lines("gen2", 500))
    r.assert_exactly_once()
    log = _agent_log(r)
    assert "was copied to" in log and "holds a generation never read" in log
    assert r.agent.stop() == 0


def test_a_copy_of_what_the_file_still_holds_is_not_read_twice(
    env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copied, not truncated yet, when the reader first looks: the copy's first bytes are
    the file's own, so the file is read, and the copy is matched to it (nothing past the
    reader's position) once the truncation comes."""
    r, stall, app = _empty_app_registered(env, tmp_path, monkeypatch)
    with stall.loop_stopped():
        app.write_bytes(r.lines("copied, not yet truncated", 2000))
        shutil.copyfile(app, r.logs / "app.log.1")
    r.shipped(2000)
    os.truncate(app, 0)  # the truncation that copy was made for
    with app.open("ab") as f:
        f.write(r.lines("after the truncation", 100))
    r.assert_exactly_once()
    assert "holds a generation never read" not in _agent_log(r)
    assert r.agent.stop() == 0


def test_a_copy_read_by_a_file_is_not_read_again_by_its_successor(
    env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copied and truncated (the copy read under the file's own generation), then deleted
    and created anew: the new file does not take the old copy for a generation of its own."""
    r, _ = _copytruncate_run(env, tmp_path, monkeypatch)
    app = r.logs / "app.log"
    app.write_bytes(r.lines("first", 100))
    r.agent.start()
    r.shipped(100)
    with app.open("ab") as f:
        f.write(r.lines("then", 1000))
    copytruncate(r, app, "app.log.1", b"")
    r.shipped(1100)
    app.unlink()
    app.write_bytes(r.lines("a new file", 200))
    r.assert_exactly_once()
    assert "holds a generation never read" not in _agent_log(r)
    assert r.agent.stop() == 0


@pytest.mark.parametrize(
    ("lines", "begun_empty"),
    [(2000, False), (2000, True), (8, False)],
    ids=["long", "begun-empty", "shorter-than-the-fingerprint"],
)
def test_a_copy_that_ends_before_what_was_read_live_is_the_generations_own(
    lines: int, begun_empty: bool, env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader read live past the point where the copy was taken (the lines written
    between the copy and the truncation): the copy is shorter than the reader's position,
    yet its first bytes are the generation's own, so it holds nothing left to read; it is
    not a generation never seen (read whole, every line of it shipped twice: 4,099
    duplicates in `rotation_soak.py --copytruncate --full-speed` at e02b922). With 8 lines
    the copy is shorter than the fingerprint (1 KiB) too: matched by its whole content."""
    r, stall = _copytruncate_run(env, tmp_path, monkeypatch)
    app = r.logs / "app.log"
    if begun_empty:
        app.write_bytes(b"")
        r.agent.start()
        wait_for(lambda: "new file" in _agent_log(r), 60, "the agent to register the empty file")
        with app.open("ab") as f:
            f.write(r.lines("gen0", lines))
    else:
        app.write_bytes(r.lines("gen0", lines))
        r.agent.start()
    r.shipped(lines)
    shutil.copyfile(app, r.logs / "app.log.1")
    with app.open("ab") as f:
        f.write(r.lines("between the copy and the truncation, read live", 3))
    r.shipped(lines + 3)  # the reader's position is now past the copy's end
    with stall.loop_stopped():
        os.truncate(app, 0)
        with app.open("ab") as f:
            f.write(r.lines("gen1", 300))
    r.assert_exactly_once()
    log = _agent_log(r)
    assert "holds a generation never read" not in log
    assert "app.log.1 ends before what was already read" in log
    assert r.agent.stop() == 0


def test_a_short_fingerprint_grows_over_the_bytes_read_not_the_next_generations(
    env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A generation begun empty (fingerprint over 0 bytes) is read; right after that read
    (before its fingerprint is extended) the file is copied, truncated and written past
    the reader's position. The fingerprint extended over the file as it is then vouched
    for the next generation: the reader went on into it at its old position (its first
    bytes never shipped) and took the copy for a generation never seen (every line read
    twice): 18,730 duplicates and 7,027 missing in `rotation_soak.py --copytruncate
    --full-speed`. Extended over the bytes read, the next read sees the change."""
    r, stall, app = _empty_app_registered(env, tmp_path, monkeypatch)
    with stall.armed("read"):
        with app.open("ab") as f:
            f.write(r.lines("gen0", 2000))
        stall.stopped_at("read")  # gen0's bytes read, not parsed, fingerprint still over 0 bytes
        copytruncate(r, app, "app.log.1", r.lines("gen1, longer than gen0 was", 6000))
    r.assert_exactly_once()
    log = _agent_log(r)
    assert "holds a generation never read" not in log
    assert r.agent.stop() == 0


@pytest.mark.parametrize("then", [100, 0])
def test_a_copy_rewritten_in_place_with_a_generation_never_read_is_read(
    then: int, env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One copy name, copied over in place (same inode): gen0 read, copied to app.log.1
    and truncated (the copy read as gen0's, its inode accounted for); gen1, begun empty,
    is written, copied over app.log.1 and truncated before the reader's first read of it.
    Accounted for by inode alone, app.log.1 was skipped and gen1 lost; by what it holds,
    it is a generation never read, read whole once (gen0's lines not again)."""
    r, stall = _copytruncate_run(env, tmp_path, monkeypatch)
    app = r.logs / "app.log"
    app.write_bytes(r.lines("gen0", 500))
    r.agent.start()
    r.shipped(500)
    copytruncate(r, app, "app.log.1", b"")  # gen1 begins empty
    wait_for(lambda: "reading it from the start as a new generation" in _agent_log(r), 60, "gen1 to begin")
    copy = r.logs / "app.log.1"
    ino = os.stat(copy).st_ino
    with stall.loop_stopped():
        app.write_bytes(r.lines("gen1, never read", 2000))
        copytruncate(r, app, "app.log.1", r.lines("gen2", then) if then else b"")
        assert os.stat(copy).st_ino == ino  # rewritten in place
    r.assert_exactly_once()
    assert "holds a generation never read" in _agent_log(r)
    # rewritten in place again, with a generation read live: matched by its first bytes,
    # and its key replaces the inode's older ones (one per copy, not one per rotation)
    with app.open("ab") as f:
        f.write(r.lines("gen3, read live", 300))
    r.shipped(2500 + then + 300)
    copytruncate(r, app, "app.log.1", r.lines("gen4", 50))
    r.assert_exactly_once()
    assert os.stat(copy).st_ino == ino
    assert r.agent.stop() == 0
    body = (tmp_path / "data" / "registry.json").read_bytes().partition(b"\n")[2]
    (state,) = [f for f in json.loads(body)["files"] if f["path"] == str(app)]
    assert sorted(k[1] for k in state["copies"]) == sorted({k[1] for k in state["copies"]})
