"""The pure-Python twin against the naive loop, alternately, in CPU seconds (issue 4: the
twin within 2x of naive). On a shared machine whose load moves between contenders,
process CPU time, best of --repeat alternate runs, is steadier than wall time.

    python benchmarks/twin_vs_naive.py [--tree DIR] [--format python|plain|hdfs|loghub] [-n 60000]
                                       [--multiline auto|none] [--repeat 3] [--ids v2|v1]

``--tree`` runs another checkout's twin (and its bench_parse workload), e.g. an older
commit extracted with ``git archive`` (the LogHub corpus is looked up next to that tree).
``--ids`` as in ``bench_parse.py``: v2 (the agent's per-event BLAKE2b `_id`s, the default
there since session 7, so here too since the twin6 branch; before it this script ran v1).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--format", default="python", choices=["python", "plain", "hdfs", "loghub"])
    ap.add_argument("-n", "--lines", type=int, default=60000)
    ap.add_argument("--multiline", default="auto", choices=["auto", "none"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ids", choices=["v1", "v2"], default="v2",
                    help="the twin's `_id`s (bench_parse.py's --ids); the naive loop keeps prefix.offset ids")
    args = ap.parse_args(argv)
    root = os.path.abspath(args.tree)
    sys.path.insert(0, root)
    from _fastparse import _pyparser
    from benchmarks import bench_parse as b  # the tree's own workload and naive loop
    if not _pyparser.__file__.startswith(root):
        raise SystemExit(f"imported {_pyparser.__file__}, not from {root}")
    b.EXTRA.update(timezone="UTC", multiline=args.multiline, metrics="auto", **b.id_kwargs(args.ids))
    if args.format == "loghub":
        b.WORKLOAD.extend(b.loghub_workload(args.lines, 262144))
    else:
        data = b.generate_hdfs(args.lines) if args.format == "hdfs" else b.generate(args.lines)
        b.WORKLOAD.append((b.FORMAT[args.format], b.HDFS_RE if args.format == "hdfs" else b.LOG_RE,
                           b.chunks(data, 262144)))
    twin = b.run_parser(_pyparser)
    lines = sum(c.count(b"\n") for _, _, parts in b.WORKLOAD for c in parts)
    best = {"twin": float("inf"), "naive": float("inf")}
    for _ in range(args.repeat):
        for name, fn in (("twin", twin), ("naive", b.run_naive)):
            gc.collect()
            t = time.process_time()
            fn([], 1795591801123)
            best[name] = min(best[name], time.process_time() - t)
    print(f"{args.format}, multiline {args.multiline}, {args.ids} ids, {lines:,} lines: "
          f"twin {lines / best['twin']:,.0f} lines/CPU-s, naive {lines / best['naive']:,.0f}, "
          f"twin/naive {best['naive'] / best['twin']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
