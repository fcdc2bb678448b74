"""What the anomaly watch costs the agent, trees alternating: CPU (user and sys apart),
minor page faults, wall, peak RSS, each tree with the watch on and off (its cost by
difference), in one run on one corpus (bench_e2e.Bench, the training log, the
discarding endpoint).

    python benchmarks/anomaly_ab.py -n 2000000 --rounds 3 before=/tmp/before after=.

Each variant NAME=TREE runs as NAME (watch on) and NAME-off (``anomaly: {enabled:
false}``); per round the order is reversed. Medians at the end, with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from agent_ab import agent_config  # noqa: E402
from bench_e2e import Bench, compile_tree, endpoint_docs, measure  # noqa: E402


def run(cmd: list[str], cwd: Path) -> dict[str, float]:
    """One agent run: wall, user and sys apart, minor faults, peak RSS (bench_e2e.measure)."""
    return measure(cmd, cwd=cwd, stderr=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("variants", nargs="+", help="NAME=TREE")
    a = ap.parse_args()
    variants: list[tuple[str, Path, bool]] = []
    for v in a.variants:
        name, tree = v.split("=", 1)
        compile_tree(Path(tree).resolve())
        variants += [(name, Path(tree).resolve(), True), (f"{name}-off", Path(tree).resolve(), False)]
    runs: dict[str, list[dict[str, Any]]] = {v[0]: [] for v in variants}
    with Bench("training", a.n, prefix="shipper-anomaly-ab-") as b:
        m = b.lines / 1e6
        for rnd in range(a.rounds):
            for name, tree, on in variants if rnd % 2 == 0 else variants[::-1]:
                cfg = agent_config(b.work, f"{name}{rnd}", b.log, b.url, "python", on)
                load = os.getloadavg()[0]
                before = endpoint_docs(b.url)
                r = run([sys.executable, "-m", "shipper", "run", "-c", str(cfg), "--once"], tree)
                r.update(docs=endpoint_docs(b.url) - before, load=load)
                runs[name].append(r)
                print(
                    f"round {rnd} {name:12s} {(r['user_s'] + r['sys_s']) / m:.3f} CPU-s/M "
                    f"(user {r['user_s'] / m:.3f}, sys {r['sys_s'] / m:.3f})  minflt {r['minflt']:,}  "
                    f"{b.lines / r['wall_s']:>9,.0f} lines/s  peak {r['peak_rss_mib']:.1f} MiB  "
                    f"docs {r['docs']}  load {load:.2f}",
                    flush=True,
                )
    for name, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("user_s", "sys_s", "minflt", "wall_s", "peak_rss_mib")}
        cpu = statistics.median(r["user_s"] + r["sys_s"] for r in rs)
        print(
            f"{name:12s} median {cpu / m:.3f} CPU-s/M (user {med['user_s'] / m:.3f}, sys {med['sys_s'] / m:.3f})  "
            f"minflt {med['minflt']:,.0f}  {b.lines / med['wall_s']:>9,.0f} lines/s  peak {med['peak_rss_mib']:.1f} MiB"
        )
    for name, _, on in variants:
        if on:
            on_cpu = statistics.median(r["user_s"] + r["sys_s"] for r in runs[name])
            off_cpu = statistics.median(r["user_s"] + r["sys_s"] for r in runs[f"{name}-off"])
            print(f"{name}: the watch costs {(on_cpu - off_cpu) / m:.3f} CPU-s/M by difference")


if __name__ == "__main__":
    main()
