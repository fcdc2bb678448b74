"""Durable tailing (issue 5): copytruncate, inode reuse, delete and recreate, files shorter
than the fingerprint across a crash, closing inactive files, bounded descriptors and
watches, poll mode, two hosts with identical files."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import wait_for
from .test_tailing import Run, holds

pytestmark = pytest.mark.integration


def test_copytruncate_reads_the_copy_first(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    r = Run(es_plain, es_client, agent_factory, tmp_path, rotated_paths=[f"{tmp_path}/logs/app.log.1"])
    app = r.logs / "app.log"
    app.write_bytes(r.lines("early", 10))
    r.agent.start()
    r.shipped(10)
    for gen in range(3):
        with app.open("ab") as f:
            f.write(r.lines(f"g{gen}a", 100))
        # the agent has seen this generation begin (a file copied and truncated before the agent
        # ever looked at it is out of anyone's reach) ...
        r.shipped(len(r.written) - 1)
        with app.open("ab") as f:
            f.write(r.lines(f"g{gen}b", 20_000))  # ... and has not read these yet, usually
        shutil.copyfile(app, r.logs / "app.log.1")  # logrotate copytruncate: copy, then truncate
        with app.open("r+b") as f:
            f.truncate(0)
        r.shipped(len(r.written))  # the lines the agent had not read yet came from the copy
    with app.open("ab") as f:
        f.write(r.lines("after", 100))
    r.assert_exactly_once()
    assert r.agent.log().count("was copied to") >= 1
    assert r.agent.stop() == 0


def test_inode_reuse_and_delete_recreate(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    """Delete and recreate on the file system at hand (ext4 here: whether it reuses the
    inode is its choice, a freed inode may wait for its journal commit, so not asserted;
    `test_inode_reuse_on_ext2` proves reuse itself)."""
    r = Run(es_plain, es_client, agent_factory, tmp_path, close_removed="0s")
    r.agent.start()
    app = r.logs / "app.log"
    inodes = []
    for i in range(4):
        app.write_bytes(r.lines(f"incarnation{i}", 200))
        inodes.append(os.stat(app).st_ino)
        r.shipped(200 * (i + 1))
        app.unlink()  # deleted, then a new file under the same name
        # the agent closes it (read to its end): the inode is free for the next file
        wait_for(lambda: not holds(r, inodes[-1]), 30, "the agent to close the deleted file")
    r.assert_exactly_once()
    assert r.agent.stop() == 0


@contextlib.contextmanager
def ext2_mounted(image: Path, where: Path) -> Iterator[str]:
    """An 8 MiB ext2 file system (no journal) loop-mounted at `where` (yields its loop
    device); skips the test where that is impossible (not root, no loop device, no tools).

    A new file takes the lowest free inode of its directory's group. But the kernel's
    driver (ext4's, which serves ext2 here) skips an inode deleted over a second ago while
    its inode-table block is still cached (`recently_deleted()` in fs/ext4/ialloc.c: 60 s,
    360 s when the block is dirty); `reusable()` writes and drops that device's buffers
    (`blockdev --flushbufs`: this loop device only), after which the deleted file's inode
    is the next file's."""
    if os.geteuid() != 0:
        pytest.skip("mounting a loop device needs root")
    mkfs = shutil.which("mkfs.ext2") or shutil.which("mke2fs")
    if mkfs is None or shutil.which("mount") is None or shutil.which("blockdev") is None:
        pytest.skip("mkfs.ext2, mount or blockdev is not installed")
    with image.open("wb") as f:
        f.truncate(8 << 20)
    made = subprocess.run([mkfs, "-q", "-F", "-t", "ext2", str(image)], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"mkfs.ext2 failed: {made.stderr.strip()}")
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(where)], capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot loop-mount an ext2 image here: {mounted.stderr.strip()}")
    source = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(where)], capture_output=True, text=True)
    try:
        yield source.stdout.strip()
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)  # lazily, if still busy


@pytest.mark.parametrize(
    ("same_start", "mode"),
    [(False, "inotify"), (True, "inotify"), (True, "poll")],
    ids=["other-first-bytes", "same-first-bytes", "same-first-bytes-poll"],
)
def test_inode_reuse_on_ext2(
    same_start: bool, mode: str, es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    """Inode reuse (issue 5's proof: delete, create, same inode): on an ext2 file system of
    the test's own the inode IS reused (asserted), and every line of every incarnation is
    in Elasticsearch once. Each incarnation is longer than the one before, so a new file
    taken for the old one would be continued at the old offset and lose its first lines.
    same_start: every incarnation begins with the same header, longer than the
    fingerprint: device, inode and fingerprint all equal the deleted file's. The agent
    closed that one deleted (read to its end), so it forgot it: the new one is a new file.
    poll: watchdog's polling observer reports a deleted file whose inode the next file
    reuses as a move (issue 5): the agent's own identity checks decide."""
    import yaml

    r = Run(es_plain, es_client, agent_factory, tmp_path, close_removed="0s", fingerprint_bytes="64B")
    if mode == "poll":
        cfg = yaml.safe_load(r.agent.config.read_text())
        cfg["watch"] = {"mode": "poll", "poll_interval": "500ms"}
        r.agent.config.write_text(yaml.safe_dump(cfg))
    header = b"# service log, format 3, fields: time level message; written by app.py\n"
    assert len(header) > 64
    with ext2_mounted(tmp_path / "ext2.img", r.logs) as device:
        (r.logs / "sub").mkdir()  # the files' directory (recursive watches), on the ext2
        app = r.logs / "sub" / "app.log"
        r.agent.start()
        inodes = []
        for i in range(5):
            app.write_bytes((header if same_start else b"") + r.lines(f"incarnation{i}", 100 * (i + 1)))
            inodes.append(os.stat(app).st_ino)
            r.shipped(len(r.written))
            app.unlink()
            wait_for(lambda: not holds(r, inodes[-1]), 30, "the agent to close the deleted file")
            subprocess.run(["blockdev", "--flushbufs", device], check=True)  # see ext2_mounted
        if same_start:
            r.written.append(header.decode().rstrip("\n"))  # the header line, once per incarnation
        try:
            r.shipped(len(r.written) + (4 if same_start else 0))
            time.sleep(1.5)  # anything doubled would have arrived by now
            got = r.messages()
        finally:
            assert r.agent.stop() == 0
        if same_start:
            assert got.pop(header.decode().rstrip("\n")) == 5
        assert set(got.values()) == {1} and set(got) == set(r.written) - {header.decode().rstrip("\n")}, (
            sorted(set(r.written) - set(got))[:3]
        )
    assert len(set(inodes)) == 1, f"ext2 did not reuse the inode: {inodes}"
    assert r.agent.log().count("deleted and read to its end") >= 4


def test_file_shorter_than_fingerprint_across_sigkill(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    r = Run(es_plain, es_client, agent_factory, tmp_path, fingerprint_bytes="1KiB")
    app = r.logs / "app.log"
    app.write_bytes(r.lines("tiny", 2))  # far below 1 KiB
    r.agent.start()
    r.shipped(2)
    time.sleep(1.5)  # a checkpoint
    r.agent.signal(signal.SIGKILL)
    r.agent.proc.wait(10)
    with app.open("ab") as f:
        f.write(r.lines("grown", 300))  # now well past the fingerprint size
    r.agent.start()
    r.assert_exactly_once()
    assert r.agent.stop() == 0


def test_inactive_files_close_and_reopen_within_bounds(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    r = Run(es_plain, es_client, agent_factory, tmp_path, close_inactive="1s")
    for i in range(12):
        d = r.logs / f"m{i % 3}" / f"run{i}"
        d.mkdir(parents=True)
        (d / "train.log").write_bytes(r.lines(f"file{i}", 50))
    r.agent.config.write_text(r.agent.config.read_text() + "max_open_files: 4\n")
    r.agent.start()
    r.shipped(600)
    wait_for(lambda: r.agent.log().count("inactive for") >= 12, 60, "all twelve closed as inactive")
    with (r.logs / "m0" / "run0" / "train.log").open("ab") as f:
        f.write(r.lines("again", 30))  # a closed file that changes is opened again
    r.assert_exactly_once()
    assert "max_open_files (4) reached" in r.agent.log()
    assert r.agent.stop() == 0


@pytest.mark.parametrize("watch", [{"max_watches": 1}, {"mode": "poll"}])
def test_watch_limit_and_poll_mode_still_ship(
    watch: dict[str, Any], es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    r = Run(es_plain, es_client, agent_factory, tmp_path)
    (r.logs / "a" / "b").mkdir(parents=True)
    import yaml

    cfg = yaml.safe_load(r.agent.config.read_text())
    cfg["watch"] = {**watch, "poll_interval": "500ms"}
    r.agent.config.write_text(yaml.safe_dump(cfg))
    r.agent.start()
    time.sleep(1)
    (r.logs / "a" / "b" / "x.log").write_bytes(r.lines("polled", 100))
    r.shipped(100)
    with (r.logs / "a" / "b" / "x.log").open("ab") as f:
        f.write(r.lines("more", 50))
    r.assert_exactly_once()
    if watch.get("max_watches"):
        assert "would pass max_watches 1" in r.agent.log()
    assert r.agent.stop() == 0


@contextlib.contextmanager
def kernel_knob(name: str, value: int) -> Iterator[None]:
    """Lower an inotify limit of the kernel for as long as the agent takes to start with it
    (root only). A queue's size is fixed when its inotify instance is made, so the agent
    keeps the small one after the knob is restored; watches are refused while it is low."""
    knob = Path("/proc/sys/fs/inotify") / name
    try:
        old = knob.read_text()
        knob.write_text(f"{value}\n")
    except OSError as e:
        pytest.skip(f"cannot set fs.inotify.{name} ({e}): needs root and a writable /proc/sys")
    try:
        yield
    finally:
        knob.write_text(old)


@pytest.mark.kernel_knob
def test_inotify_queue_overflow_loses_nothing(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    r = Run(es_plain, es_client, agent_factory, tmp_path)
    with kernel_knob("max_queued_events", 4):  # the agent's inotify queue holds 4 events
        (r.logs / "first.log").write_bytes(r.lines("first", 10))
        r.agent.start()
        r.shipped(10)  # its observer runs: its queue was made while the knob was low
    for i in range(40):  # hundreds of events at once: the queue overflows, watchdog says nothing
        d = r.logs / f"run{i}"
        d.mkdir()
        (d / "train.log").write_bytes(r.lines(f"burst{i}", 50))
    r.assert_exactly_once()  # the rescan found what the lost events announced
    assert r.agent.stop() == 0


@pytest.mark.kernel_knob
def test_the_kernels_watch_limit_falls_back_to_polling(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    r = Run(es_plain, es_client, agent_factory, tmp_path)
    with kernel_knob("max_user_watches", 0):  # every new watch of the user is refused (ENOSPC)
        r.agent.start()
        wait_for(lambda: "polling it on the rescan timer instead" in r.agent.log(), 30, "the agent's warning")
    log = r.agent.log()
    assert "the kernel allows 0 inotify watches per user" in log and "cannot watch" in log
    (r.logs / "late").mkdir()
    (r.logs / "late" / "x.log").write_bytes(r.lines("polled", 100))
    r.assert_exactly_once()
    assert r.agent.stop() == 0


def test_two_hosts_with_identical_files_both_arrive(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    input_id = f"twin-{secrets.token_hex(3)}"
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(b"".join(b"same line %d\n" % i for i in range(500)))
    agents = []
    for host in ("a", "b"):  # at the same time: two hosts shipping identical files
        agent = agent_factory(
            {
                "data_dir": str(tmp_path / f"data-{host}"),
                "host_name": f"host-{host}",
                "inputs": [{"id": input_id, "paths": [f"{logs}/*.log"]}],
                "output": {"elasticsearch": {"hosts": [es_plain["url"]]}},
                "http": {"listen": None},
            },
            name=f"agent-{host}",
        )
        agents.append(agent.start("--once"))
    assert [a.wait(60) for a in agents] == [0, 0]
    index = f"shipper-logs-{input_id}-*"
    es_client.indices.refresh(index=index)
    assert es_client.count(index=index)["count"] == 1000
    per_host = es_client.search(index=index, size=0, aggs={"h": {"terms": {"field": "host.name"}}})
    assert {b["key"]: b["doc_count"] for b in per_host["aggregations"]["h"]["buckets"]} == {
        "host-a": 500, "host-b": 500}


def test_truncation_then_a_rewrite_of_the_same_bytes(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    """The same bytes written again after a truncation are new events (a new generation,
    new `_id`s), not replays of the old ones: every line arrives twice, no more."""
    r = Run(es_plain, es_client, agent_factory, tmp_path)
    r.agent.start()
    app = r.logs / "app.log"
    body = r.lines("same bytes", 300)
    app.write_bytes(body)
    r.shipped(300)
    with app.open("r+b") as f:
        f.truncate(0)
    wait_for(lambda: "truncated" in r.agent.log(), 30, "the agent to see the truncation")
    app.write_bytes(body)  # identical content, identical fingerprint, identical size
    r.shipped(600)
    time.sleep(1.5)  # anything more would have arrived by now
    got = r.messages()
    assert set(got) == set(r.written) and set(got.values()) == {2}, got.most_common(3)
    assert r.agent.stop() == 0


def _slow_copytruncate_run(es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path) -> Run:
    """copytruncate with copies as app.log.*, and a small in-flight budget: a slow reader,
    so that a truncation comes while it is in the middle of the file."""
    import yaml

    r = Run(es_plain, es_client, agent_factory, tmp_path, rotated_paths=[f"{tmp_path}/logs/app.log.*"])
    cfg = yaml.safe_load(r.agent.config.read_text())
    cfg["max_inflight_bytes"] = "256KiB"
    r.agent.config.write_text(yaml.safe_dump(cfg))
    return r


def gen0_under_way(r: Run, app: Path) -> None:
    """Start the agent on 10 lines, then give it 150,000 more (gen0) to read slowly."""
    app.write_bytes(r.lines("first", 10))
    r.agent.start()
    r.shipped(10)
    with app.open("ab") as f:
        f.write(r.lines("gen0", 150_000))


def _copy_and_truncate_mid_read(r: Run, app: Path, shipped: int, then: bytes) -> None:
    """Once `shipped` documents are in (the reader still far from the end): copy to
    app.log.1, truncate, write `then`."""
    r.shipped(shipped)
    assert r.count() < 100_000, "the agent read the whole file before the truncation: no test"
    shutil.copyfile(app, r.logs / "app.log.1")
    with app.open("r+b") as f:
        f.truncate(0)
        f.write(then)


def test_copytruncate_mid_read_of_a_generation_begun_empty_takes_the_right_copy(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    """A generation that began empty is fingerprinted on 0 bytes until the fingerprint is
    extended; copied and truncated before that, any copy "matched" it and the first in
    sorted order (here an older, larger one) was read in its place. Found by
    `benchmarks/rotation_soak.py --copytruncate --full-speed`."""
    r = _slow_copytruncate_run(es_plain, es_client, agent_factory, tmp_path)
    app = r.logs / "app.log"
    app.write_bytes(b"")
    (r.logs / "app.log.0").write_bytes(b"".join(b"decoy %d from an older rotation\n" % i for i in range(300_000)))
    r.agent.start()
    wait_for(lambda: (tmp_path / "data" / "registry.json").exists(), 30, "the agent to register the empty file")
    time.sleep(1.5)
    app.write_bytes(r.lines("gen0", 150_000))
    _copy_and_truncate_mid_read(r, app, 2_000, r.lines("gen1", 100))
    r.assert_exactly_once()
    assert r.agent.stop() == 0


def test_copytruncate_and_regrowth_while_the_reader_waits_mid_file(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    """A reader held by backpressure in the middle of a long read must not go on reading
    the next generation's bytes as if they were this one's: copied, truncated and written
    past the reader's position in the meantime, the file's first bytes tell. Found by
    `benchmarks/rotation_soak.py --copytruncate --full-speed` (whole generations lost)."""
    r = _slow_copytruncate_run(es_plain, es_client, agent_factory, tmp_path)
    app = r.logs / "app.log"
    gen0_under_way(r, app)
    _copy_and_truncate_mid_read(r, app, 5_000, r.lines("gen1", 200_000))  # past the reader at once
    r.assert_exactly_once()
    assert r.agent.stop() == 0


def test_start_at_end_skips_what_files_held_at_the_first_start(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    r = Run(es_plain, es_client, agent_factory, tmp_path, start_at="end")
    app = r.logs / "app.log"
    app.write_bytes(b"".join(b"there before the first start %d\n" % i for i in range(100)))  # not expected
    r.agent.start()
    wait_for(lambda: "from offset" in r.agent.log(), 60, "the agent to register the file")
    with app.open("ab") as f:
        f.write(r.lines("after the start", 50))
    r.assert_exactly_once()
    assert r.agent.stop() == 0


def test_ignore_older_skips_stale_files_to_their_end(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    r = Run(es_plain, es_client, agent_factory, tmp_path, ignore_older="1h")
    old = r.logs / "old.log"
    old.write_bytes(b"".join(b"stale %d\n" % i for i in range(100)))  # not expected
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    (r.logs / "fresh.log").write_bytes(r.lines("fresh", 100))
    r.agent.start()
    r.shipped(100)
    with old.open("ab") as f:
        f.write(r.lines("the stale file written again", 30))  # from where it was skipped to
    r.assert_exactly_once()
    assert r.agent.stop() == 0


def test_entries_of_files_gone_are_forgotten_after_clean_removed_after(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    import orjson

    r = Run(es_plain, es_client, agent_factory, tmp_path, clean_removed_after="2s", close_removed="500ms")
    (r.logs / "gone.log").write_bytes(r.lines("gone", 50))
    (r.logs / "stays.log").write_bytes(r.lines("stays", 50))
    r.agent.start()
    r.shipped(100)
    (r.logs / "gone.log").unlink()

    def paths() -> set[str]:
        body = (tmp_path / "data" / "registry.json").read_bytes().split(b"\n", 1)[1]
        return {os.path.basename(f["path"]) for f in orjson.loads(body)["files"]}

    wait_for(lambda: paths() == {"stays.log"}, 60, "the registry to forget gone.log only")
    assert "forgetting" in r.agent.log()
    r.assert_exactly_once()
    assert r.agent.stop() == 0


def test_a_copy_is_found_under_rotated_paths_even_where_exclude_matches_it(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    """Issue 5: the rotated copy is found under `rotated_paths` even if `exclude` matches
    it (it is excluded from tailing, so its lines would otherwise be read by nobody)."""
    import yaml

    r = Run(es_plain, es_client, agent_factory, tmp_path, rotated_paths=[f"{tmp_path}/logs/app.log.*"])
    cfg = yaml.safe_load(r.agent.config.read_text())
    cfg["inputs"][0]["paths"] = [f"{r.logs}/app.log*"]
    cfg["inputs"][0]["exclude"] = [f"{r.logs}/app.log.*"]
    cfg["max_inflight_bytes"] = "256KiB"  # a slow reader: the truncation comes mid-file
    r.agent.config.write_text(yaml.safe_dump(cfg))
    app = r.logs / "app.log"
    gen0_under_way(r, app)
    _copy_and_truncate_mid_read(r, app, 2_000, r.lines("after", 100))
    r.assert_exactly_once()
    assert "was copied to" in r.agent.log()
    assert r.agent.stop() == 0


@pytest.mark.parametrize("handler", ["RotatingFileHandler", "TimedRotatingFileHandler"])
def test_pythons_own_rotating_handlers(
    handler: str, es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    """Rotation by rename as Python's logging does it (issue 5 names both handlers): a
    writer process logs through the real handler (size: 16 KiB per file; time: a new file
    every second) while the agent runs; the rotated names are matched too (`app.log*`), as
    rename rotation is deployed. Every line once."""
    import yaml

    r = Run(es_plain, es_client, agent_factory, tmp_path)
    cfg = yaml.safe_load(r.agent.config.read_text())
    cfg["inputs"][0]["paths"] = [f"{r.logs}/app.log*"]
    r.agent.config.write_text(yaml.safe_dump(cfg))
    r.agent.start()
    wait_for(lambda: "shipping 1 input" in r.agent.log(), 60, "the agent to start")
    n = 6000
    make = (
        "logging.handlers.RotatingFileHandler(sys.argv[1], maxBytes=16384, backupCount=10000)"
        if handler == "RotatingFileHandler"
        else "logging.handlers.TimedRotatingFileHandler(sys.argv[1], when='S', interval=1, backupCount=0)"
    )
    script = (
        "import logging, logging.handlers, sys, time\n"
        f"h = {make}\n"
        "h.setFormatter(logging.Formatter('%(message)s'))\n"
        "log = logging.getLogger('w'); log.addHandler(h); log.setLevel(logging.INFO)\n"
        f"for i in range({n}):\n"
        "    log.info('%s %d', sys.argv[2], i)\n"
        "    if i % 20 == 0: time.sleep(0.01)\n"
    )
    tag = f"{handler} {secrets.token_hex(4)}"
    subprocess.run([sys.executable, "-c", script, str(r.logs / "app.log"), tag], check=True, timeout=120)
    r.written += [f"{tag} {i}" for i in range(n)]
    assert len(list(r.logs.glob("app.log.*"))) >= 3, "the handler did not rotate: no test"
    r.assert_exactly_once()
    assert r.agent.stop() == 0
