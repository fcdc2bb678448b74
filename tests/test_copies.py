"""Which copytruncate copies hold a generation never read (shipper/tail/copies.py): the
guards that keep a wrong file from being read as one."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from shipper.tail import copies

Ident = tuple[int, int]


def _unseen(
    tmp_path: Path, accounted: frozenset[copies.Key] = frozenset(), tailed: frozenset[Ident] = frozenset()
) -> list[str]:
    live = tmp_path / "app.log"
    fd = os.open(live, os.O_RDONLY)
    try:
        found = copies.listing([f"{tmp_path}/*.log.*", f"{tmp_path}/other*"])
        got = copies.unseen(found, accounted=accounted, tailed=tailed, name=str(live), live_fd=fd)
    finally:
        os.close(fd)
    return [os.path.basename(p) for p, _ in got]


def _ident(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def test_only_new_plain_copies_of_this_file_that_it_no_longer_holds(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_bytes(b"the live generation's first line\n")
    (tmp_path / "app.log.1").write_bytes(b"a generation never read\n")
    (tmp_path / "app.log.2").write_bytes(b"an old rotation, there before\n")
    (tmp_path / "app.log.3").write_bytes(b"the live generation's first line\nand more\n")  # not truncated yet
    (tmp_path / "app.log.4").write_bytes(b"")  # a copy just begun
    (tmp_path / "app.log.5").write_bytes(b"a renamed file the agent tails\n")
    (tmp_path / "app.log.6.gz").write_bytes(gzip.compress(b"compressed by logrotate\n"))
    (tmp_path / "other.log.1").write_bytes(b"another file's copy\n")
    old, renamed = _ident(tmp_path / "app.log.2"), _ident(tmp_path / "app.log.5")
    got = _unseen(tmp_path, accounted=frozenset({old}), tailed=frozenset({renamed}))
    assert got == ["app.log.1"]


def test_copies_come_oldest_first(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_bytes(b"")  # empty: nothing of it can be in a copy
    for i, name in enumerate(["app.log.3", "app.log.1", "app.log.2"]):
        (tmp_path / name).write_bytes(b"generation %d\n" % i)
        os.utime(tmp_path / name, ns=(10**18 + i, 10**18 + i))
    assert _unseen(tmp_path) == ["app.log.3", "app.log.1", "app.log.2"]
    (key,) = copies.keys(copies.listing([f"{tmp_path}/app.log.1"]))
    assert tuple(key[:2]) == _ident(tmp_path / "app.log.1")


def test_a_copy_rewritten_in_place_is_accounted_for_by_what_it_holds(tmp_path: Path) -> None:
    """One name copied over each time keeps its inode (and `rotate N` may give a new copy
    a freed inode): an inode accounted for holds a generation never read once its content
    is another; a copy still being written (grown since) is the one accounted for."""
    (tmp_path / "app.log").write_bytes(b"")
    copy = tmp_path / "app.log.1"
    copy.write_bytes(b"generation 1, read\n" * 100)
    (key,) = copies.keys(copies.listing([str(copy)]))
    with copy.open("ab") as f:
        f.write(b"generation 1, the rest of its copy\n" * 100)
    assert _unseen(tmp_path, accounted=frozenset({tuple(key)})) == []  # grown: the same copy
    ino = _ident(copy)
    with copy.open("wb") as f:  # copied over in place: O_TRUNC, the same inode
        f.write(b"generation 2, never read, longer than the copy was\n" * 500)
    assert _ident(copy) == ino
    assert _unseen(tmp_path, accounted=frozenset({tuple(key)})) == ["app.log.1"]
    assert _unseen(tmp_path, accounted=frozenset({ino})) == []  # a format-3 key: any content
