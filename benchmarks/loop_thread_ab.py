"""A/B of agents (trees or configs), alternately, with the CPU of the event-loop thread apart.

With the parse in a worker thread (`parse_threads`, shipper/tail/parsing.py) the agent's
wall time on two free cores is set by its busiest thread, the event loop, not by its
whole-process CPU. On this shared machine wall time moves with the load (30-40%, more
when helpers run callgrind); the loop thread's CPU-seconds per M lines move much less.
Each run is `shipper run --once` on the same corpus and discarding endpoint
(bench_e2e.Bench); the loop thread's CPU is read from /proc/PID/task/PID/stat while it
runs (the last 20 ms are missed).

    python benchmarks/loop_thread_ab.py -n 2000000 --rounds 3 \\
        main=/tmp/before after=. 'inline=.|parse_threads: 0' ['twin=.||SHIPPER_NO_EXTENSIONS=1']

A variant is NAME=TREE[|YAML config lines, ';' between them][|ENV=VALUE ...].
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from agent_ab import agent_config  # noqa: E402
from bench_e2e import Bench, compile_tree, endpoint_docs  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stderr=subprocess.DEVNULL)
    hwm, loop_cpu = 0.0, 0.0
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        try:
            f = Path(f"/proc/{p.pid}/task/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
            loop_cpu = (int(f[11]) + int(f[12])) / TICK
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm = max(hwm, int(line.split()[1]) / 1024)
        except (OSError, IndexError):
            pass
        time.sleep(0.02)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd} failed with {status}")
    cpu = ru.ru_utime + ru.ru_stime
    return {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": cpu,
        "loop_cpu_s": loop_cpu,
        "peak_rss_mib": hwm,
        "sys_s": ru.ru_stime,
        "minflt": ru.ru_minflt,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("variants", nargs="+", help="NAME=TREE[|YAML;YAML][|ENV=V...]")
    a = ap.parse_args()
    variants = []
    for v in a.variants:
        name, rest = v.split("=", 1)
        tree, *more = rest.split("|")
        extra = more[0].replace(";", "\n") if more else ""
        variants.append((name, Path(tree).resolve(), extra, dict(e.split("=", 1) for e in more[1:])))
    for _, tree, _, _ in variants:
        compile_tree(tree)
    runs: dict[str, list[dict[str, Any]]] = {v[0]: [] for v in variants}
    with Bench("training", a.n, prefix="shipper-loop-ab-") as b:
        for rnd in range(a.rounds):
            for name, tree, extra, env in variants if rnd % 2 == 0 else variants[::-1]:
                cfg = agent_config(b.work, f"{name}{rnd}", b.log, b.url, "python", True, extra)
                load = os.getloadavg()[0]
                before = endpoint_docs(b.url)
                cmd = [sys.executable, "-m", "shipper", "run", "-c", str(cfg), "--once"]
                r = run(cmd, tree, {**os.environ, **env})
                r.update(docs=endpoint_docs(b.url) - before, load=load)
                runs[name].append(r)
                m = b.lines / 1e6
                print(
                    f"round {rnd} {name:10s} {b.lines / r['wall_s']:>10,.0f} lines/s  "
                    f"{r['cpu_s'] / m:.2f} CPU-s/M  loop thread {r['loop_cpu_s'] / m:.2f} CPU-s/M  "
                    f"sys {r['sys_s']:.2f} s  minflt {r['minflt']}  "
                    f"peak {r['peak_rss_mib']:.1f} MiB  docs {r['docs']}  load {load:.2f}",
                    flush=True,
                )
    m = b.lines / 1e6
    for name, rs in runs.items():
        peaks = [r["peak_rss_mib"] for r in rs]
        print(
            f"{name:10s} median {statistics.median(b.lines / r['wall_s'] for r in rs):>10,.0f} lines/s  "
            f"{statistics.median(r['cpu_s'] for r in rs) / m:.2f} CPU-s/M  "
            f"loop thread {statistics.median(r['loop_cpu_s'] for r in rs) / m:.2f} CPU-s/M  "
            f"peak {statistics.median(peaks):.1f} MiB (max {max(peaks):.1f})  "
            f"sys {statistics.median(r['sys_s'] for r in rs):.2f} s  "
            f"minflt {statistics.median(r['minflt'] for r in rs):.0f}"
        )


if __name__ == "__main__":
    main()
