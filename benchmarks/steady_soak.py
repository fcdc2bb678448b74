"""Memory over a steady stream: is the agent's RSS flat (issue 8: +-10% over 10 minutes)?

A writer appends training-log lines (the bench corpus's lines, stamped with the wall
clock as they are written, tracebacks and metrics included) at a steady rate into a new
file every minute (``--file-seconds``), and deletes files two periods old, as a rotating
training job would;
the agent (python format, multiline, metrics, anomaly counters on, the default config
otherwise) tails them into the discarding endpoint. RSS (VmRSS) of the agent is sampled
every ``--every`` seconds; after ``--warmup`` seconds the samples are judged: min, max,
spread ((max - min) / min) and drift (mean of the last minute over the mean of the
first minute after warm-up). Also the agent's CPU per million lines and whether the
endpoint got every line.

    python benchmarks/steady_soak.py [--minutes 10] [--rate 10000] [--json] [--root TREE]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_e2e import Bench, compile_tree, endpoint_docs  # noqa: E402


def status(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def writer(
    logs: Path,
    template: list[bytes],
    rate: float,
    seconds: float,
    stop: threading.Event,
    out: dict[str, int],
    per_file: float = 60,
) -> None:
    """Lines at ``rate`` per second for ``seconds``: a new file each ``per_file`` seconds,
    files two periods old deleted. A line that starts with a time gets the wall clock's."""
    t0 = time.monotonic()
    n = 0
    events = 0
    k = 0
    fd = -1
    file_no = -1
    while not stop.is_set():
        el = time.monotonic() - t0
        if el >= seconds:
            break
        if int(el // per_file) != file_no:
            if fd >= 0:
                os.close(fd)
            file_no = int(el // per_file)
            fd = os.open(logs / f"train-{file_no:03d}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            old = logs / f"train-{file_no - 2:03d}.log"
            if file_no >= 2 and old.exists():
                old.unlink()
        due = int(el * rate)
        if due > n:
            now = time.time()
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)).encode() + b",%03d" % (int(now * 1000) % 1000)
            buf = []
            for _ in range(due - n):
                line = template[k % len(template)]
                k += 1
                if line[:2] == b"20":
                    line = stamp + line[23:]
                    events += 1
                buf.append(line)
            os.write(fd, b"".join(buf))
            n = due
        time.sleep(0.02)
    if fd >= 0:
        os.close(fd)
    out["lines"] = n
    out["stamped"] = events


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--rate", type=float, default=10_000, help="lines per second")
    ap.add_argument("--every", type=float, default=5, help="seconds between RSS samples")
    ap.add_argument("--warmup", type=float, default=60, help="seconds before samples are judged")
    ap.add_argument("--file-seconds", type=float, default=60, help="a new file every this many seconds")
    ap.add_argument("--agent-prefix", default="", help="a command the agent runs under (heaptrack, perf record ...)")
    ap.add_argument("--extra", default="", help="more config lines (YAML), e.g. 'anomaly: {enabled: false}'")
    ap.add_argument("--root", type=Path, default=ROOT, help="the tree whose agent runs")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    compile_tree(a.root)
    seconds = a.minutes * 60
    with Bench("training", 200_000, prefix="shipper-soak-") as bench:
        template = bench.log.read_bytes().splitlines(keepends=True)
        logs = bench.work / "stream"
        logs.mkdir()
        cfg = bench.work / "soak.yml"
        cfg.write_text(
            f"data_dir: {bench.work / 'data'}\n"
            f"inputs: [{{id: soak, paths: ['{logs}/*.log'], format: python, multiline: auto, metrics: auto}}]\n"
            f"output: {{elasticsearch: {{hosts: ['{bench.url}'], template: false}}}}\n"
            "http: {listen: null}\nlog_level: warning\n" + (a.extra + "\n" if a.extra else "")
        )
        cmd = [*a.agent_prefix.split(), sys.executable, "-m", "shipper", "run", "-c", str(cfg)]
        agent = subprocess.Popen(cmd, cwd=a.root)
        stop = threading.Event()
        wrote: dict[str, int] = {}
        args = (logs, template, a.rate, seconds, stop, wrote, a.file_seconds)
        w = threading.Thread(target=writer, args=args, daemon=True)
        t0 = time.monotonic()
        w.start()
        samples: list[tuple[float, float]] = []
        try:
            while w.is_alive():
                time.sleep(a.every)
                samples.append((time.monotonic() - t0, status(agent.pid, "VmRSS")))
            w.join()
            time.sleep(5)  # the last lines: read, sent, acknowledged
            hwm = status(agent.pid, "VmHWM")
            held = sum(1 for f in Path(f"/proc/{agent.pid}/fd").iterdir() if "(deleted)" in os.readlink(f))
            cpu = cpu_s(agent.pid)
            docs = endpoint_docs(bench.url)
        finally:
            stop.set()
            agent.send_signal(signal.SIGTERM)
            agent.wait(60)
    judged = [r for t, r in samples if t >= a.warmup]
    first = [r for t, r in samples if a.warmup <= t < a.warmup + 60]
    last = [r for t, r in samples if t >= samples[-1][0] - 60]
    result: dict[str, Any] = {
        "minutes": a.minutes,
        "rate": a.rate,
        "lines": wrote.get("lines", 0),
        "docs": docs,
        "deleted_files_held_open": held,
        "agent_cpu_s_per_m_lines": cpu / max(1, wrote.get("lines", 0)) * 1e6,
        "rss_mib": {
            "min": min(judged),
            "max": max(judged),
            "spread": (max(judged) - min(judged)) / min(judged),
            "drift": statistics.mean(last) / statistics.mean(first) - 1,
            "peak_hwm": hwm,
        },
        "samples": [(round(t, 1), round(r, 1)) for t, r in samples],
    }
    if a.json:
        print(json.dumps(result, indent=2))
    else:
        r = result["rss_mib"]
        print(
            f"{a.minutes:g} min at {a.rate:,.0f} lines/s: {result['lines']:,} lines, {docs:,} documents at the "
            f"endpoint (events: multiline groups tracebacks), "
            f"agent {result['agent_cpu_s_per_m_lines']:.2f} CPU-s per M lines"
        )
        print(
            f"RSS after {a.warmup:g} s warm-up: min {r['min']:.1f} MiB, max {r['max']:.1f} MiB, "
            f"spread {100 * r['spread']:.1f}%, drift (last minute / first) {100 * r['drift']:+.1f}%, "
            f"VmHWM {r['peak_hwm']:.1f} MiB"
        )
        print(f"deleted files the agent still holds open: {held}")
        print("samples (s, MiB):", " ".join(f"{t:.0f}:{v:.1f}" for t, v in result["samples"]))


if __name__ == "__main__":
    main()
