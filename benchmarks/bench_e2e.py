"""End to end: the agent as a real process, files on disk, a bulk endpoint that discards.

Reports for shipper (`run --once`), a naive Python shipper (readline, regex, dict,
orjson, bulk over HTTP) and `cat` (the read ceiling), in one run: lines/s (wall),
CPU-seconds per million lines of the shipping process, and its peak RSS. The endpoint
runs as its own process so its CPU is not counted.

    python benchmarks/bench_e2e.py [-n 2000000] [--json] [--append-results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from bench_parse import generate  # noqa: E402

NAIVE = r'''
import re, sys, time, orjson, urllib.request
LINE = re.compile(rb"^(\S+ \S+) - (\S+) - (\S+) - (.*)$")
url, path, index = sys.argv[1], sys.argv[2], sys.argv[3]
batch, n = [], 0
def send(batch):
    req = urllib.request.Request(url + "/_bulk", data=b"".join(batch), method="POST",
                                 headers={"Content-Type": "application/x-ndjson"})
    urllib.request.urlopen(req).read()
with open(path, "rb") as f:
    offset = 0
    for raw in f:
        line = raw.rstrip(b"\n")
        m = LINE.match(line)
        doc = {"@timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ"), "message": line.decode("utf-8", "replace"),
               "log": {"file": {"path": path}, "offset": offset}}
        if m:
            doc["log"]["level"] = m.group(3).decode()
        action = orjson.dumps({"create": {"_index": index, "_id": f"{offset:x}"}})
        batch.append(action + b"\n" + orjson.dumps(doc) + b"\n")
        offset += len(raw)
        n += 1
        if len(batch) >= 5000:
            send(batch); batch = []
if batch:
    send(batch)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(cmd: list[str], **kw: Any) -> dict[str, float]:
    """Wall time, CPU (user+sys) and peak RSS of one child process.

    Peak RSS is read from /proc (VmHWM) while the child runs: the rusage of a forked
    child counts the parent's pages from before the exec.
    """
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, **kw)
    hwm = 0.0
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        try:
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm = max(hwm, int(line.split()[1]) / 1024)
        except OSError:
            pass
        time.sleep(0.02)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[:4]} failed with {status}")
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mib": hwm}


def endpoint_docs(url: str) -> int:
    with urllib.request.urlopen(url + "/_stats/discard") as r:
        return int(json.loads(r.read())["docs"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2_000_000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--append-results", action="store_true", help="append a row to benchmarks/RESULTS.md")
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="shipper-bench-"))
    data = generate(a.n)
    log = work / "logs" / "train.log"
    log.parent.mkdir()
    log.write_bytes(data)
    lines = data.count(b"\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ep = subprocess.Popen([sys.executable, str(HERE / "discard_endpoint.py"), str(port)])
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/_stats/discard")
                break
            except OSError:
                time.sleep(0.05)
        results: dict[str, Any] = {"lines": lines, "mib": len(data) / 2**20, "python": platform.python_version()}
        subprocess.run(["cat", str(log)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
        results["cat"] = measure(["cat", str(log)], stdout=subprocess.DEVNULL)

        cfg = work / "shipper.yml"
        cfg.write_text(
            f"data_dir: {work / 'data'}\n"
            f"inputs: [{{id: bench, paths: ['{log}']}}]\n"
            f"output: {{elasticsearch: {{hosts: ['{url}'], template: false}}}}\n"
            "http: {listen: null}\nlog_level: warning\n"
        )
        before = endpoint_docs(url)
        results["shipper"] = measure([sys.executable, "-m", "shipper", "run", "-c", str(cfg), "--once"], cwd=ROOT)
        results["shipper"]["docs"] = endpoint_docs(url) - before
        import _fastparse

        results["shipper"]["parser"] = _fastparse.IMPLEMENTATION

        before = endpoint_docs(url)
        results["naive"] = measure([sys.executable, "-c", NAIVE, url, str(log), "naive-bench"])
        results["naive"]["docs"] = endpoint_docs(url) - before
    finally:
        ep.terminate()
        ep.wait()
        subprocess.run(["rm", "-rf", str(work)], check=False)

    for name in ("cat", "shipper", "naive"):
        r = results[name]
        r["lines_per_s"] = lines / r["wall_s"]
        r["lines_per_cpu_s"] = lines / r["cpu_s"] if r["cpu_s"] else float("inf")
        r["cpu_s_per_m_lines"] = r["cpu_s"] / lines * 1e6
    ratio = results["shipper"]["lines_per_cpu_s"] / results["naive"]["lines_per_cpu_s"]
    results["ratio_shipper_vs_naive_per_cpu_s"] = ratio
    if a.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{lines} lines, {results['mib']:.0f} MiB, parser {results['shipper']['parser']}")
        print(f"{'':8} {'lines/s':>12} {'lines/CPU-s':>12} {'CPU-s/M':>8} {'peak RSS':>9} {'docs':>9}")
        for name in ("cat", "shipper", "naive"):
            r = results[name]
            print(f"{name:8} {r['lines_per_s']:12,.0f} {r['lines_per_cpu_s']:12,.0f} {r['cpu_s_per_m_lines']:8.2f} "
                  f"{r['peak_rss_mib']:8.1f}M {r.get('docs', ''):>9}")
        print(f"shipper / naive, lines per CPU-second: {results['ratio_shipper_vs_naive_per_cpu_s']:.1f}x")
    if a.append_results:
        with (HERE / "RESULTS.md").open("a") as f:
            s, nv = results["shipper"], results["naive"]
            f.write(f"| {time.strftime('%Y-%m-%d')} | bench_e2e -n {a.n} | {s['lines_per_s']:,.0f} | "
                    f"{s['lines_per_cpu_s']:,.0f} | {s['peak_rss_mib']:.0f} MiB | {nv['lines_per_cpu_s']:,.0f} | "
                    f"{results['ratio_shipper_vs_naive_per_cpu_s']:.1f}x |\n")


if __name__ == "__main__":
    main()
