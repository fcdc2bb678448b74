"""What the agent's peak RSS is made of during a ``--once`` backfill (issue 8: peak <= 80 MiB).

tracemalloc does not see the parser's C buffers or glibc's arenas, so this samples the
kernel's view: ``/proc/PID/smaps`` every ``--every`` seconds, grouped into the main heap
(brk), other anonymous mappings (glibc arenas of threads, large mmap'd blocks, numpy),
and file-backed pages (the interpreter, extension modules, shared libraries). The sample
with the highest RSS is the breakdown printed; VmHWM is the kernel's own peak.

Variants run alternately on one corpus and one discarding endpoint (``--variant
NAME=YAML[;ENV=VALUE...]``; comma-separated parts ``es.KEY: VALUE`` go into
``output.elasticsearch``), e.g.

    python benchmarks/rss_breakdown.py -n 2000000 --rounds 2 \\
        --variant base= --variant 8MiB='max_inflight_bytes: 8MiB' \\
        --variant arena2=';MALLOC_ARENA_MAX=2'
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_e2e import Bench, compile_tree  # noqa: E402
from steady_soak import status  # noqa: E402


def smaps(pid: int) -> dict[str, float]:
    """RSS in MiB by kind of mapping: heap, anon (other anonymous), file, and the total."""
    out = {"heap": 0.0, "anon": 0.0, "file": 0.0, "total": 0.0}
    kind = "anon"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        first = line.split(None, 1)[0]
        if not first.endswith(":") and "-" in first:  # a mapping's header line
            f = line.split()
            name = f[5] if len(f) > 5 else ""
            kind = "heap" if name == "[heap]" else "file" if name.startswith("/") else "anon"
        elif first == "Rss:":
            kb = int(line.split()[1]) / 1024
            out[kind] += kb
            out["total"] += kb
    return out


def run(
    work: Path, name: str, log: Path, url: str, extra: str, env: dict[str, str], every: float, prefix: str = ""
) -> dict[str, Any]:
    cfg = work / f"{name}.yml"
    es_keys = "".join(", " + x.strip()[3:] for x in extra.split(",") if x.strip().startswith("es."))
    extra = ",".join(x for x in extra.split(",") if not x.strip().startswith("es."))
    cfg.write_text(
        f"data_dir: {work / ('data-' + name + str(time.monotonic_ns()))}\n"
        f"inputs: [{{id: bench, paths: ['{log}'], format: python, multiline: auto, metrics: auto}}]\n"
        f"output: {{elasticsearch: {{hosts: ['{url}'], template: false{es_keys}}}}}\n"
        "http: {listen: null}\nlog_level: error\n" + (extra + "\n" if extra else "")
    )
    t0 = time.perf_counter()
    cmd = [*prefix.split(), sys.executable, "-m", "shipper", "run", "-c", str(cfg), "--once"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env})
    best: dict[str, float] = {"total": 0.0}
    peak = 0.0
    while p.poll() is None:
        try:
            sample = smaps(p.pid)
            peak = max(peak, status(p.pid, "VmHWM"))
        except (OSError, ValueError, IndexError):  # exited between poll and read
            continue
        best = max(best, sample, key=lambda x: x["total"])
        time.sleep(every)
    if p.returncode != 0:
        raise SystemExit(f"{name} failed: {p.returncode}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the agent's, once reaped
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"variant": name, "vmhwm_mib": round(peak, 1), "cpu_s": round(cpu, 2),
            "wall_s": round(time.perf_counter() - t0, 2), "at_peak_mib": {k: round(v, 1) for k, v in best.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--every", type=float, default=0.05)
    ap.add_argument("--agent-prefix", default="", help="a command the agent runs under (heaptrack -o FILE)")
    ap.add_argument("--variant", action="append", default=[], help="NAME=YAML[;ENV=VALUE...]")
    a = ap.parse_args()
    compile_tree(ROOT)
    variants: list[tuple[str, str, dict[str, str]]] = []
    for v in a.variant or ["base="]:
        name, _, rest = v.partition("=")
        yaml, *envs = rest.split(";")
        variants.append((name, yaml, dict(e.split("=", 1) for e in envs if e)))
    rows: list[dict[str, Any]] = []
    with Bench("training", a.n, prefix="shipper-rss-") as bench:
        for r in range(a.rounds):
            order = variants if r % 2 == 0 else variants[::-1]
            for name, yaml, env in order:
                row = run(bench.work, name, bench.log, bench.url, yaml, env, a.every, a.agent_prefix)
                row["lines_per_cpu_s"] = round(bench.lines / row["cpu_s"])
                rows.append(row)
                print(json.dumps(row), flush=True)
    for name, _, _ in variants:
        mine = [x for x in rows if x["variant"] == name]
        print(
            f"{name}: median VmHWM {statistics.median(x['vmhwm_mib'] for x in mine):.1f} MiB, "
            f"CPU {statistics.median(x['cpu_s'] for x in mine):.2f} s, "
            f"{statistics.median(x['lines_per_cpu_s'] for x in mine):,.0f} lines/CPU-s"
        )


if __name__ == "__main__":
    main()
