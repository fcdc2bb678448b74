"""Peak RSS of a backfill of many files at once: `shipper run --once` over --files copies of
the training corpus (--lines each) to the discarding endpoint, trees and configs alternating.
The parser keeps its buffers at the size the largest read grew them to, per open file, so
what one file's benchmark shows per reader is multiplied here.

    python benchmarks/backfill_memory.py --files 40 --lines 40000 --rounds 1 \\
        'loop=.|parse_threads: 0' 'threads=.|parse_threads: 1' ['main=/tmp/main|parse_threads: 1']

A variant is NAME=TREE[|YAML config lines, ';' between them].
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from agent_ab import agent_config  # noqa: E402
from bench_e2e import Bench, compile_tree, corpus, endpoint_docs  # noqa: E402
from loop_thread_ab import run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--lines", type=int, default=40_000, help="lines per file")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("variants", nargs="+", help="NAME=TREE[|YAML;YAML]")
    a = ap.parse_args()
    variants = [(v.partition("=")[0], *v.partition("=")[2].partition("|")[::2]) for v in a.variants]
    for _, tree, _ in variants:
        compile_tree(Path(tree))
    with Bench("training", 1000, prefix="shipper-backfill-") as b:
        data = corpus("training", a.lines)
        logs = b.work / "many"
        logs.mkdir()
        for i in range(a.files):
            (logs / f"f{i}.log").write_bytes(data)
        subprocess.run(["sh", "-c", f"cat {logs}/*.log > /dev/null"], check=True)  # the page cache
        for rnd in range(a.rounds):
            for name, tree, extra in variants if rnd % 2 == 0 else variants[::-1]:
                more = extra.replace(";", "\n")
                cfg = agent_config(b.work, f"{name}{rnd}", logs / "*.log", b.url, "python", True, more)
                load, before = os.getloadavg()[0], endpoint_docs(b.url)
                cmd = [sys.executable, "-m", "shipper", "run", "-c", str(cfg), "--once"]
                r = run(cmd, Path(tree).resolve(), dict(os.environ))
                print(
                    f"round {rnd} {name:10s} peak {r['peak_rss_mib']:.1f} MiB  CPU {r['cpu_s']:.2f} s  "
                    f"minflt {r['minflt']}  docs {endpoint_docs(b.url) - before}  load {load:.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
