"""Write-to-searchable latency: a steady trickle of lines into a log file, the agent tailing
it into the real Elasticsearch (refresh_interval 1 s), and a poller that notes when each
line first becomes searchable. Prints p50/p90/p99/max in seconds.

Uses its own Elasticsearch (scripts/es.py server `soak`, port 9261, or ``--server NAME
--port N``), left running (``scripts/es.py stop NAME``).

    python benchmarks/latency.py [--rate 1000] [--seconds 30] [--server soak --port 9261]
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
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "scripts"))

import es  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--server", default="soak", help="the scripts/es.py server to start (or use, if running)")
    ap.add_argument("--port", type=int, default=9261)
    ap.add_argument("--extra", default="", help="more config lines (YAML), e.g. 'anomaly: {enabled: false}'")
    ap.add_argument("--flush-interval", default="", help="output.elasticsearch.flush_interval (default: the agent's)")
    ap.add_argument(
        "--trace",
        action="store_true",
        help="run the agent under benchmarks/agent_trace.py and break each line's latency into its steps",
    )
    a = ap.parse_args()
    srv = es.start(a.server, port=a.port)
    from elasticsearch import Elasticsearch

    client = Elasticsearch(srv["url"], request_timeout=30)
    work = Path(tempfile.mkdtemp(prefix="shipper-lat-"))
    logs = work / "logs"
    logs.mkdir()
    input_id = f"lat-{int(time.time())}"
    client.indices.put_index_template(
        name=f"lat-{input_id}",
        index_patterns=[f"shipper-logs-{input_id}-*"],
        priority=300,
        template={"settings": {"refresh_interval": "1s", "number_of_replicas": 0}},
    )
    cfg = work / "shipper.yml"
    flush = f", flush_interval: {a.flush_interval}" if a.flush_interval else ""
    cfg.write_text(
        f"data_dir: {work / 'data'}\ninputs: [{{id: {input_id}, paths: ['{logs}/*.log']}}]\n"
        f"output: {{elasticsearch: {{hosts: ['{srv['url']}']{flush}}}}}\nhttp: {{listen: null}}\nlog_level: warning\n"
        + (a.extra + "\n" if a.extra else "")
    )
    log = open(work / "agent.log", "wb")  # noqa: SIM115 - the agent's stderr for its whole life
    trace = work / "trace.txt"
    entry = [str(HERE / "agent_trace.py")] if a.trace else ["-m", "shipper"]
    env = {**os.environ, "SHIPPER_TRACE": str(trace)}
    agent = subprocess.Popen([sys.executable, *entry, "run", "-c", str(cfg)], cwd=ROOT, stderr=log, env=env)
    time.sleep(3)
    index = f"shipper-logs-{input_id}-*"
    written: list[float] = []
    seen: dict[int, float] = {}
    done = threading.Event()

    def poll() -> None:
        best = -1
        while not done.is_set() or best < len(written) - 1:
            try:
                hits = client.search(index=index, size=1, sort=[{"log.offset": "desc"}], _source=["message"])
                h = hits["hits"]["hits"]
            except Exception:
                h = []
            now = time.monotonic()
            if h:
                top = int(h[0]["_source"]["message"].split()[1])
                for seq in range(best + 1, top + 1):
                    seen[seq] = now
                best = max(best, top)
            if done.is_set() and time.monotonic() - end > 30:
                break
            time.sleep(0.02)

    end = float("inf")
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    fd = os.open(logs / "app.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < a.seconds:
        due = int((time.monotonic() - t0) * a.rate)
        while n < due:
            written.append(time.monotonic())
            os.write(fd, f"seq {n} a steady line of a serving model\n".encode())
            n += 1
        time.sleep(0.005)
    os.close(fd)
    end = time.monotonic()
    done.set()
    poller.join(60)
    agent.send_signal(signal.SIGTERM)
    agent.wait(60)
    lat = np.array([seen[i] - written[i] for i in range(len(written)) if i in seen])
    result = {
        "rate": a.rate,
        "seconds": a.seconds,
        "lines": len(written),
        "seen": int(lat.size),
        "p50_s": round(float(np.percentile(lat, 50)), 3),
        "p90_s": round(float(np.percentile(lat, 90)), 3),
        "p99_s": round(float(np.percentile(lat, 99)), 3),
        "max_s": round(float(lat.max()), 3),
        # p50 per 10 s of writing: a start-up transient shows as early buckets only
        "p50_by_10s": [
            round(float(np.percentile(lat[int(i * a.rate) : int((i + 10) * a.rate)], 50)), 2)
            for i in range(0, int(a.seconds), 10)
            if len(lat[int(i * a.rate) : int((i + 10) * a.rate)])
        ],
    }
    if a.trace:
        result["steps"] = breakdown(trace.read_text(), written, seen)
    print(json.dumps(result, indent=2))
    client.indices.delete(index=index)
    client.indices.delete_index_template(name=f"lat-{input_id}")
    shutil.rmtree(work, ignore_errors=True)


def line_bytes(n: int) -> int:
    return len(f"seq {n} a steady line of a serving model\n")


def breakdown(trace: str, written: list[float], seen: dict[int, float]) -> dict[str, Any]:
    """Each line's latency in steps: written -> read and parsed (handed to the pipeline) ->
    bulk sent (after the sender's linger and the registry write) -> acknowledged ->
    searchable (the next refresh, plus up to 20 ms of polling). Percentiles of each step,
    and their means over the slowest 1% of lines (what makes the p99)."""
    subs: list[tuple[int, float]] = []
    sends: list[tuple[int, float, float]] = []
    saves: list[float] = []
    for row in trace.splitlines():
        f = row.split()
        if f[0] == "S":
            subs.append((int(f[3]), float(f[1])))
        elif f[0] == "D":
            sends.append((int(f[3]), float(f[1]), float(f[2])))
        elif f[0] == "B":
            saves.append(float(f[2]) - float(f[1]))
    subs.sort()
    sends.sort()
    steps: dict[str, list[float]] = {"read": [], "to_send": [], "bulk": [], "searchable": [], "total": []}
    end, si, di = 0, 0, 0
    late_reads: list[int] = []  # lines read more than 0.5 s after they were written
    for n, w in enumerate(written):
        end += line_bytes(n)
        while si < len(subs) and subs[si][0] < end:
            si += 1
        while di < len(sends) and sends[di][0] < end:
            di += 1
        if si == len(subs) or di == len(sends) or n not in seen:
            continue
        t_sub, (_, t_sent, t_ack) = subs[si][1], sends[di]
        steps["read"].append(t_sub - w)
        if t_sub - w > 0.5:
            late_reads.append(n)
        steps["to_send"].append(t_sent - t_sub)
        steps["bulk"].append(t_ack - t_sent)
        steps["searchable"].append(seen[n] - t_ack)
        steps["total"].append(seen[n] - w)
    arr = {k: np.array(v) for k, v in steps.items()}
    slow = arr["total"] >= np.percentile(arr["total"], 99)
    out: dict[str, Any] = {
        k: {q: round(float(np.percentile(v, p)), 3) for q, p in (("p50", 50), ("p99", 99), ("max", 100))}
        for k, v in arr.items()
    }
    out["slowest_1pct_mean"] = {k: round(float(v[slow].mean()), 3) for k, v in arr.items()}
    out["registry_write_s"] = {
        "p50": round(float(np.percentile(saves, 50)), 4),
        "p99": round(float(np.percentile(saves, 99)), 4),
    }
    out["requests"] = len(sends)
    out["late_reads"] = {"lines": len(late_reads), "seq": late_reads[:3] + late_reads[-3:]}
    out["chunks"] = len(subs)
    return out


if __name__ == "__main__":
    main()
