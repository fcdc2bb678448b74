"""Instructions of whole agents (`run --once` of the training corpus to the discarding
endpoint) under callgrind, trees alternating: a before/after the machine's load does not move.

    python benchmarks/agent_instructions.py --a BEFORE_TREE [--b AFTER_TREE] [-n 300000] [--rounds 2]

Same corpus, config and endpoint as `agent_ab.py` (`python` format, multiline, metrics, the
anomaly watch on). Under callgrind the agent runs ~50x slower, so its requests are fuller
than at full speed (the flush interval is wall time); the socket's copies into the kernel
and the endpoint are not counted. Two sizes give the cost per line without start-up:
(I(n2) - I(n1)) / (n2 - n1).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from agent_ab import agent_config  # noqa: E402
from bench_e2e import Bench, compile_tree  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", type=Path, required=True, help="tree A (before)")
    ap.add_argument("--b", type=Path, default=HERE.parent, help="tree B (after; default this tree)")
    ap.add_argument("-n", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    trees = {"A": a.a.resolve(), "B": a.b.resolve()}
    for t in trees.values():
        compile_tree(t)
    with Bench("training", a.n, prefix="shipper-cg-") as b:
        for rnd in range(a.rounds):
            for name in ["A", "B"] if rnd % 2 == 0 else ["B", "A"]:
                cfg = agent_config(b.work, f"cg{name}{rnd}", b.log, b.url, "python", True)
                agent = [sys.executable, "-m", "shipper", "run", "-c", str(cfg), "--once"]
                p = subprocess.run(
                    ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *agent],
                    cwd=trees[name],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                m = re.search(r"Collected : (\d+)", p.stderr)
                assert m, p.stderr[-2000:]
                ins = int(m.group(1))
                print(
                    f"round {rnd} {name} ({trees[name]}): {ins / 1e6:,.0f} M instructions, "
                    f"{ins / b.lines:,.0f} per line ({b.lines:,} lines)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
