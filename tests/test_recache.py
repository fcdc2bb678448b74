"""The compiled-pattern cache of start-up (shipper/_recache.py): what it gives back is the
pattern ``re`` would compile (same program: CPython's Pattern equality compares it)."""

from __future__ import annotations

import marshal
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shipper import _recache

ROOT = Path(__file__).resolve().parent.parent

PATTERNS: list[tuple[str | bytes, int]] = [
    (r"^(?P<scheme>https?)://(?P<host>[^/:\s]+)(?::(?P<port>\d+))?(?P<path>/.*)?$", 0),
    (r"(?i)error|warn(ing)?", 0),
    (r"\d+(?:\.\d+)?", re.ASCII),
    (r"^\s*#.*$", re.MULTILINE | re.VERBOSE),
    (r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]", 0),
    (b"^(\\d{4})-(\\d{2})-(\\d{2})", 0),
    ("^(\\d{4})-(\\d{2})-(\\d{2})", 0),  # the same text as str: another pattern
    (r"(a)(?P<b>b)(?:c)(?P=b)", re.IGNORECASE),
]


def _compile_all(cache: _recache.ReCache) -> list[re.Pattern]:  # type: ignore[type-arg]
    cache.install()
    try:
        return [cache.compile(p, f) for p, f in PATTERNS]
    finally:
        cache.finish()


def test_a_second_start_gets_the_same_patterns_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "re.marshal"
    original = _recache._compiler.compile
    first = _compile_all(_recache.ReCache(path))
    assert _recache._compiler.compile is original  # finish put re back
    assert path.exists()
    second = _recache.ReCache(path)
    again = _compile_all(second)
    assert second.hits == len(PATTERNS) and not second.new
    for (p, f), a, b in zip(PATTERNS, first, again, strict=True):
        want = original(p, f)
        assert a == want and b == want  # flags, bytes or str, and the whole program
        assert (b.pattern, b.flags, b.groups, dict(b.groupindex)) == (
            want.pattern,
            want.flags,
            want.groups,
            dict(want.groupindex),
        )
    m = again[0].match("https://example.org:9200/x")
    assert m is not None and m.group("port") == "9200" and m.group("path") == "/x"
    assert again[5].match(b"2026-12-08").groups() == (b"2026", b"12", b"08")  # type: ignore[union-attr]


def test_a_bad_file_or_entry_is_compiled_the_usual_way(tmp_path: Path) -> None:
    path = tmp_path / "re.marshal"
    _compile_all(_recache.ReCache(path))
    header, entries = marshal.loads(path.read_bytes())
    key = (True, PATTERNS[0][0], 0)
    args = list(entries[key])
    args[2] = [1, 2, 3]  # a program _sre refuses
    entries[key] = tuple(args)
    path.write_bytes(marshal.dumps((header, entries)))
    cache = _recache.ReCache(path)
    got = _compile_all(cache)
    assert got[0] == _recache._compiler.compile(*PATTERNS[0]) and cache.hits == len(PATTERNS) - 1
    for junk in (b"", b"not marshal", marshal.dumps((("other", 0), entries)), marshal.dumps([1, 2])):
        path.write_bytes(junk)
        cache = _recache.ReCache(path)
        assert cache.entries == {}
        assert _compile_all(cache)[1] == re.compile(PATTERNS[1][0])


def test_an_unwritable_place_costs_nothing_but_the_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    cache = _recache.ReCache(blocker / "sub" / "re.marshal")  # a directory under a file
    assert _compile_all(cache)[0] == re.compile(PATTERNS[0][0])


def test_the_agent_starts_from_the_cache_and_leaves_re_as_it_was(tmp_path: Path) -> None:
    """Two `shipper check` processes with the cache in a file of the test's: the second
    compiles almost nothing at start (the library patterns from the file; a few differ
    with the hash seed), and once start-up is over, ``re`` compiles with its own compiler
    again."""
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        f"data_dir: {tmp_path}/data\ninputs: [{{id: t, paths: ['{tmp_path}/*.log'], format: python}}]\n"
        "output: {elasticsearch: {hosts: ['http://127.0.0.1:9']}}\n"
    )
    code = (
        "import sys\n"
        "from shipper import _recache\n"
        "_recache.start()\n"
        "import shipper.app, shipper.cli\n"
        "shipper.cli.main(['check', '-c', sys.argv[1]])\n"
        "a = _recache._active\n"
        "print(a.hits, len(a.new))\n"
        "_recache.finish()\n"
        "import re\n"
        "assert re._compiler.compile.__module__ == 're._compiler'\n"
    )
    env = {"SHIPPER_RE_CACHE": str(tmp_path / "re.marshal"), "PATH": "/usr/bin:/bin"}
    runs = []
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", code, str(cfg)], capture_output=True, cwd=ROOT, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        runs.append([int(x) for x in r.stdout.split()[-2:]])
    (hits1, new1), (hits2, new2) = runs
    assert new1 > 100 and hits2 >= new1 + hits1 - _recache._MIN_NEW and new2 < _recache._MIN_NEW


def test_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHIPPER_RE_CACHE", "0")
    assert _recache.default_path() is None
    monkeypatch.setenv("SHIPPER_RE_CACHE", str(tmp_path / "x"))
    assert _recache.default_path() == tmp_path / "x"
    monkeypatch.delenv("SHIPPER_RE_CACHE")
    assert _recache.default_path().parent.name == "__pycache__"  # type: ignore[union-attr]
