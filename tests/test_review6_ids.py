"""Review of ids6 (v2 `_id`s written four or eight at a time, blake2b_id4.h) through the
parser, on every BLAKE2b path the CPU has (a fresh process per path: the parser module picks
its path at its first id): multiline python events (tracebacks), lines cut at
``max_line_bytes``, CRLF, ANSI, progress bars, invalid UTF-8, feeds cut anywhere,
``expire`` between feeds and the final ``flush``, key lengths around the one-block edges.
Every event's id in the body is hashlib's ``base64url(blake2b(key || le64(offset), 16))``
of the offset in its document, the per-item slices the sink resends or dead-letters (by
``item_ends``) carry the id of ``item_offsets``, and the compiled parser's bytes are the
twin's. (The review's throw-away run: 3,300 cases on each of portable, sse41, avx2 and
avx512, no difference.)"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from typing import Any

import pytest

try:  # built by setup.py with the Cython extension
    _idcheck: Any = importlib.import_module("_fastparse._idcheck")
except ImportError:  # pragma: no cover - a build without the C extension
    _idcheck = None

CHECK = r"""
import base64, hashlib, random, sys
from _fastparse import _cparser, _pyparser

def want(key, off):
    d = hashlib.blake2b(key + off.to_bytes(8, "little"), digest_size=16).digest()
    return base64.urlsafe_b64encode(d).rstrip(b"=")

LINES = [b"2026-11-25 10:00:00,123 - t - INFO - step=1 loss=0.5", b"2026-11-25 10:00:01,000 - t - ERROR - failed",
         b"Traceback (most recent call last):", b'  File "x.py", line 1, in <module>', b"ValueError: bad",
         b"", b"plain words \xff", b"\x1b[31mred\x1b[0m", b"bar 50%|#####     | 5/10\rbar 100%|##########| 10/10",
         b"x" * 300, b"INFO:root:hello", b"2026-11-25 10:00:02,000 WARNING t: loss=nan",
         b"During handling of the above exception, another exception occurred:", b"\tat a.b.C(C.java:1)"]
rng = random.Random(int(sys.argv[1]))
problems = []
for case in range(int(sys.argv[2])):
    keylen = rng.choice([1, 8, 71, 72, 73, 120, 121])
    key = rng.randbytes(keylen)
    fmt, ml = rng.choice([("plain", "none"), ("python", "auto"), ("python", "none"), ("plain", "auto")])
    lines = [rng.choice(LINES) if rng.random() < 0.8 else rng.randbytes(rng.randrange(0, 50)).replace(b"\n", b"")
             for _ in range(rng.randrange(1, 40))]
    sep = rng.choice([b"\n", b"\r\n"])
    data = sep.join(lines) + (sep if rng.random() < 0.8 else b"")
    cuts = sorted(rng.randrange(0, len(data) + 1) for _ in range(rng.randrange(0, 8)))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    expire = [rng.random() < 0.3 for _ in chunks]
    kw = dict(input_id="t", path="/l", host_name="h", id_prefix="", index_pattern="i", format=fmt, multiline=ml,
              id_key=key, max_line_bytes=rng.choice([40, 100, 4096]))
    bodies = []
    for mod in (_cparser, _pyparser):
        p = mod.Parser(**kw)
        t = 1_795_000_000_000
        batches = []
        for chunk, e in zip(chunks, expire):
            batches.append(p.feed(chunk, t))
            if e:
                t += 60_000
                batches.append(p.expire(t))
        batches.append(p.flush(t))
        bodies.append(b"".join(b.body for b in batches))
        for b in batches:
            rows = b.body.splitlines()
            for action, doc in zip(rows[::2], rows[1::2]):
                off = int(doc.split(b'"offset":')[1].split(b",")[0].split(b"}")[0])
                if action.split(b'"_id":"')[1][:22] != want(key, off):
                    problems.append(("body id", mod.__name__, case, off))
            ends = memoryview(b.item_ends).cast("q").tolist()
            offs = memoryview(b.item_offsets).cast("q").tolist()
            start = 0
            for end, off in zip(ends, offs):
                if b'"_id":"' + want(key, off) + b'"' not in b.body[start:end].split(b"\n", 1)[0]:
                    problems.append(("item id", mod.__name__, case, off))
                start = end
    if bodies[0] != bodies[1]:
        problems.append(("compiled != twin", case))
sys.stdout.write(repr(problems[:5]) if problems else "ok")
"""


@pytest.mark.skipif(_idcheck is None, reason="the compiled parser is not built")
def test_parser_ids_every_path_multiline_truncation_chunking() -> None:
    assert _idcheck is not None
    for path in _idcheck.blake2b_impls():
        env = dict(os.environ, SHIPPER_BLAKE2B=path)
        got = subprocess.run([sys.executable, "-c", CHECK, "6", "150"], env=env, capture_output=True, text=True,
                             check=False)
        assert got.stdout == "ok", (path, got.stdout[-2000:], got.stderr[-2000:])
