"""Instructions per line of the compiled parser, counted by ``valgrind --tool=callgrind``.

Wall and even CPU times of one build move by 30% on a machine shared with other work;
instruction counts do not, so they are what a before/after of a parser change can quote.
Only ``Parser.feed`` and ``Parser.flush`` are counted (``--toggle-collect``): not the
corpus generation, the imports or the parser's construction. The workloads are
``bench_parse.py``'s, with ``multiline: auto`` and metrics on::

    python benchmarks/bench_parse_callgrind.py [--tree TREE] [--format python|plain|hdfs|loghub] [-n 30000]
        [--layout 0|1|2]

``--layout`` rewrites the python workload's lines into another of the layouts ``format:
python`` accepts (1: ``%(asctime)s %(levelname)s %(name)s: %(message)s``, 2:
``%(levelname)s:%(name)s:%(message)s``, logging's default), parsed with ``format: python``.

``--tree`` runs another source tree's built ``_fastparse`` (as ``bench_parse_tree.py``
does); its ``--out`` file can be read with ``callgrind_annotate``. Needs valgrind.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


_PY_LINE = re.compile(rb"^(\S+ \S+) - (\S+) - (\S+) - (.*)$", re.M)


def relayout(data: bytes, layout: int) -> bytes:
    """The python workload's ``asctime - name - levelname - message`` lines in ``layout``."""
    if layout == 1:
        return _PY_LINE.sub(lambda m: m[1] + b" " + m[3] + b" " + m[2] + b": " + m[4], data)
    if layout == 2:
        return _PY_LINE.sub(lambda m: m[3] + b":" + m[2] + b":" + m[4], data)
    return data


def _child(tree: str, fmt: str, n: int, layout: int = 0, ids: str = "v2") -> None:
    """Feed the workload once through ``tree``'s parser (runs under valgrind)."""
    spec = importlib.util.spec_from_file_location("bench_parse", os.path.join(HERE, "bench_parse.py"))
    assert spec is not None and spec.loader is not None
    bp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bp)
    for name in [m for m in sys.modules if m.startswith("_fastparse")]:
        del sys.modules[name]
    sys.path.insert(0, os.path.abspath(tree))
    import _fastparse._cparser as cp

    if not cp.__file__.startswith(os.path.abspath(tree)):
        raise SystemExit(f"imported {cp.__file__}, not the tree's parser")
    if fmt == "loghub":
        work = bp.loghub_workload(n, 256 * 1024)
    else:
        data = bp.generate_hdfs(n) if fmt == "hdfs" else relayout(bp.generate(n), layout)
        work = [(bp.FORMAT[fmt], None, bp.chunks(data, 256 * 1024))]
    for f, _rx, parts in work:
        p = cp.Parser(**bp.KW, timezone="UTC", multiline="auto", metrics="auto", format=f, **bp.id_kwargs(ids))
        for c in parts:
            p.feed(c, 1795591801123)
        p.flush(1795591801123)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", default=os.path.dirname(HERE), help="a source tree with a built _fastparse")
    ap.add_argument("--format", choices=["plain", "python", "hdfs", "loghub"], default="python")
    ap.add_argument("-n", "--lines", type=int, default=30_000)
    ap.add_argument("--layout", type=int, choices=[0, 1, 2], default=0,
                    help="--format python: the lines in this layout of the format (see above)")
    ap.add_argument("--ids", choices=["v1", "v2"], default="v2",
                    help="v2: the agent's per-event BLAKE2b `_id`s (default since session 7); v1: prefix.offset")
    ap.add_argument("--out", help="keep callgrind's output file here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        if args.layout and args.format != "python":
            raise SystemExit("--layout is for --format python")
        _child(args.tree, args.format, args.lines, args.layout, args.ids)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or os.path.join(tmp, "callgrind.out")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        "--toggle-collect=*Parser_*feed", "--toggle-collect=*Parser_*flush",
                        sys.executable, os.path.abspath(__file__), "--child", "--tree", args.tree,
                        "--format", args.format, "-n", str(args.lines), "--layout", str(args.layout),
                        "--ids", args.ids],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out) as f:
            m = re.search(r"^summary:\s+(\d+)", f.read(), re.M)
        if m is None:
            raise SystemExit("no summary line in callgrind's output")
        total = int(m.group(1))
    shown = args.format + (f" (layout {args.layout})" if args.layout else "") + f", {args.ids} ids"
    print(f"{args.tree}: format {shown}, {args.lines:,} lines: {total:,} instructions in feed/flush, "
          f"{total / args.lines:,.0f} a line")
    return 0


if __name__ == "__main__":
    sys.exit(main())
