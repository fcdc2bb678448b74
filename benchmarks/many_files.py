"""Many files: --files files under nested directories, shipped with a bounded number of open
descriptors (max_open_files, close_inactive); then every file gets one more line and all
of them must be reopened and shipped. Prints the agent's peak descriptor count.

Uses its own Elasticsearch (scripts/es.py server `soak`, port 9261).

    python benchmarks/many_files.py [--files 5000] [--lines 20] [--max-open 256]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "scripts"))

import es  # noqa: E402


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--lines", type=int, default=20)
    ap.add_argument("--max-open", type=int, default=256)
    ap.add_argument(
        "--live-files",
        type=int,
        default=0,
        help="then make this many more files in new directories as fast as possible while the "
        "agent runs: each is pinned from the notification thread (up to 256 per input, outside "
        "max_open_files, until the next scan), which the descriptor peak then shows",
    )
    a = ap.parse_args()
    srv = es.start("soak", port=9261)
    from elasticsearch import Elasticsearch

    client = Elasticsearch(srv["url"], request_timeout=120)
    work = Path(tempfile.mkdtemp(prefix="shipper-many-"))
    logs = work / "logs"
    paths = []
    for i in range(a.files):
        p = logs / f"model{i % 20}" / f"run{(i // 20) % 25}" / f"worker{i}" / "train.log"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(f"file {i} line {j}\n" for j in range(a.lines)))
        paths.append(p)
    input_id = f"many-{int(time.time())}"
    cfg = work / "shipper.yml"
    cfg.write_text(
        f"data_dir: {work / 'data'}\n"
        f"inputs: [{{id: {input_id}, paths: ['{logs}/**/*.log'], close_inactive: 2s, scan_interval: 2s}}]\n"
        f"output: {{elasticsearch: {{hosts: ['{srv['url']}']}}}}\nhttp: {{listen: null}}\nlog_level: warning\n"
        f"max_open_files: {a.max_open}\n"
    )
    log = open(work / "agent.log", "wb")  # noqa: SIM115 - the agent's stderr for its whole life
    t0 = time.monotonic()
    agent = subprocess.Popen([sys.executable, "-m", "shipper", "run", "-c", str(cfg)], cwd=ROOT, stderr=log)
    index = f"shipper-logs-{input_id}-*"
    peak = 0

    def wait_count(n: int) -> float:
        nonlocal peak
        start = time.monotonic()
        while time.monotonic() - start < 900:
            peak = max(peak, fds(agent.pid))
            try:
                client.indices.refresh(index=index)
                if client.count(index=index)["count"] >= n:
                    return time.monotonic() - start
            except Exception:
                pass
            time.sleep(0.5)
        raise SystemExit(f"timed out waiting for {n} documents")

    first = wait_count(a.files * a.lines)
    time.sleep(4)  # every file closes as inactive
    for p in paths:
        with p.open("a") as f:
            f.write("one more line\n")
    second = wait_count(a.files * (a.lines + 1))
    live = 0.0
    if a.live_files:
        for i in range(a.live_files):
            p = logs / f"live{i % 10}" / f"run{i // 10}" / "train.log"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("".join(f"live {i} line {j}\n" for j in range(a.lines)))
        live = wait_count(a.files * (a.lines + 1) + a.live_files * a.lines)
    time.sleep(3)
    agent.send_signal(signal.SIGTERM)
    agent.wait(120)
    docs = client.count(index=index)["count"]
    result = {
        "files": a.files,
        "live_files": a.live_files,
        "lines": a.files * (a.lines + 1) + a.live_files * a.lines,
        "documents": docs,
        "max_open_files": a.max_open,
        "peak_open_descriptors": peak,
        "first_pass_s": round(first, 1),
        "reopen_pass_s": round(second, 1),
        "live_pass_s": round(live, 1),
        "wall_s": round(time.monotonic() - t0, 1),
    }
    print(json.dumps(result, indent=2))
    client.indices.delete(index=index)
    shutil.rmtree(work, ignore_errors=True)
    if docs != result["lines"]:
        raise SystemExit("FAILED: not exactly once")


if __name__ == "__main__":
    main()
