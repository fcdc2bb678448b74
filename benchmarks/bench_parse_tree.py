"""The compiled parser of another source tree on this tree's ``bench_parse`` workloads.

To compare with an older commit: extract it (``git archive <commit> _fastparse setup.py
pyproject.toml | tar -x -C /tmp/old``), build it there (``python setup.py build_ext
--inplace``), then::

    python benchmarks/bench_parse_tree.py /tmp/old [--format python|plain|hdfs|loghub] [-n N] [--cpu]

Only the arguments every version takes are passed (format, timezone, multiline auto), so
an old parser runs without the features it did not have.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tree", help="a source tree with a built _fastparse")
    ap.add_argument("-n", "--lines", type=int, default=320_000)
    ap.add_argument("--format", choices=["plain", "python", "hdfs", "loghub"], default="loghub")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--cpu", action="store_true", help="time by the thread's CPU time, not the wall clock")
    args = ap.parse_args(argv)
    clock = time.thread_time if args.cpu else time.perf_counter
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_parse.py")
    spec = importlib.util.spec_from_file_location("bench_parse", here)
    assert spec is not None and spec.loader is not None
    bp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bp)  # puts this tree first on sys.path: the other goes before it
    for name in [m for m in sys.modules if m.startswith("_fastparse")]:
        del sys.modules[name]
    sys.path.insert(0, os.path.abspath(args.tree))
    import _fastparse._cparser as other

    if not other.__file__.startswith(os.path.abspath(args.tree)):
        raise SystemExit(f"imported {other.__file__}, not the tree's parser")
    if args.format == "loghub":
        work = bp.loghub_workload(args.lines, 256 * 1024)
    else:
        data = bp.generate_hdfs(args.lines) if args.format == "hdfs" else bp.generate(args.lines)
        work = [(bp.FORMAT[args.format], None, bp.chunks(data, 256 * 1024))]
    n = sum(c.count(b"\n") for _, _, parts in work for c in parts)
    best = float("inf")
    for _ in range(args.repeat):
        gc.collect()
        t = clock()
        for fmt, _, parts in work:
            p = other.Parser(**bp.KW, format=fmt, timezone="UTC", multiline="auto")
            for c in parts:
                p.feed(c, 1795591801123)
            p.flush(1795591801123)
        best = min(best, clock() - t)
    print(f"{args.tree}: format {args.format}, {n:,} lines, cython {n / best:,.0f} lines/s"
          + (" (CPU time)" if args.cpu else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
