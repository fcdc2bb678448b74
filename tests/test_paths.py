from __future__ import annotations

import os
from pathlib import Path

from shipper.tail.paths import PathMatcher, translate


def test_translate() -> None:
    r = translate("/srv/models/**/*.log")
    assert r.match("/srv/models/a.log")
    assert r.match("/srv/models/x/y/z.log")
    assert not r.match("/srv/models/x/y/z.log.1")
    assert translate("/a/*/b.log").match("/a/x/b.log")
    assert not translate("/a/*/b.log").match("/a/x/y/b.log")
    assert translate("/a/[!x]?.log").match("/a/yz.log")


def test_scan_excludes_and_nested(tmp_path: Path) -> None:
    (tmp_path / "m" / "r1").mkdir(parents=True)
    for name in ("m/a.log", "m/r1/b.log", "m/r1/c.log.gz", "m/r1/d.txt"):
        (tmp_path / name).write_text("x\n")
    os.symlink(tmp_path / "m" / "a.log", tmp_path / "m" / "r1" / "link.log")
    m = PathMatcher([f"{tmp_path}/m/**/*.log", f"{tmp_path}/m/**/*.gz"], ["**/*.gz", "link.log"])
    found = m.scan()
    assert sorted(os.path.relpath(p, tmp_path) for p in found) == ["m/a.log", "m/r1/b.log"]
    assert m.watch_roots() == [(f"{tmp_path}/m", True)]
