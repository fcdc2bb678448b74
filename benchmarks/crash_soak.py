"""Crash soak: the agent SIGKILLed at random moments while lines are written, restarted each
time; at the end every written line must be in Elasticsearch exactly once.

Defaults follow issue 5: 20 SIGKILLs while 500,000 lines are written across 10 files.
Uses its own Elasticsearch (scripts/es.py server `durable-soak`, port 9242).

    python benchmarks/crash_soak.py [--kills 20] [--lines 500000] [--files 10] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
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
sys.path.insert(0, str(ROOT))

import es  # noqa: E402

from tests.test_agent_e2e import expected_events, indexed_events  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--lines", type=int, default=500_000)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--server", default="durable-soak", help="scripts/es.py server (one of its own per user)")
    ap.add_argument("--port", type=int, default=9242, help="its HTTP port")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    srv = es.start(a.server, port=a.port)
    from elasticsearch import Elasticsearch

    client = Elasticsearch(srv["url"], request_timeout=120)
    work = Path(tempfile.mkdtemp(prefix="shipper-soak-"))
    root = work / "logs"
    input_id = f"soak-{int(time.time())}"
    cfg = work / "shipper.yml"
    cfg.write_text(
        f"data_dir: {work / 'data'}\ninputs: [{{id: {input_id}, paths: ['{root}/**/*.log'], scan_interval: 1s}}]\n"
        f"output: {{elasticsearch: {{hosts: ['{srv['url']}']}}}}\nhttp: {{listen: null}}\nlog_level: warning\n"
    )
    files = [f"run{i % 3}/m{i}/train.log" for i in range(a.files)]
    # pace so that the writing lasts about as long as the kills take
    pace = max(0.0, (a.kills * 1.5) / max(1, a.lines / 50))
    writer = subprocess.Popen([sys.executable, str(ROOT / "tests" / "logwriter.py"), "--root", str(root),
                               "--lines", str(a.lines), "--seed", str(a.seed), "--pace", f"{pace:.5f}",
                               "--files", *files])
    log = open(work / "agent.log", "ab")  # noqa: SIM115
    agent = subprocess.Popen([sys.executable, "-m", "shipper", "run", "-c", str(cfg)], cwd=ROOT, stderr=log)
    t0 = time.monotonic()
    kills = 0
    while kills < a.kills:
        time.sleep(rng.uniform(0.2, 2.5))
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        kills += 1
        agent = subprocess.Popen([sys.executable, "-m", "shipper", "run", "-c", str(cfg)], cwd=ROOT, stderr=log)
    writer.wait()
    want = expected_events(root)
    index = f"shipper-logs-{input_id}-*"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        client.indices.refresh(index=index)
        if client.count(index=index)["count"] >= len(want):
            break
        time.sleep(2)
    time.sleep(3)
    agent.send_signal(signal.SIGTERM)
    agent.wait(60)
    docs = client.count(index=index)["count"]
    got = indexed_events(client, index)
    keys = {(p, o) for p, o, _ in got}
    result = {
        "kills": kills, "files": a.files, "lines_written": len(want), "documents": docs,
        "missing": len(set(want) - keys), "duplicates": docs - len(keys),
        "wrong_messages": sum(1 for p, o, m in got if want.get((p, o)) != m),
        "seconds": round(time.monotonic() - t0, 1),
    }
    print(json.dumps(result, indent=2))
    client.indices.delete(index=index)
    es.stop("durable-soak")
    shutil.rmtree(work, ignore_errors=True)
    if result["missing"] or result["duplicates"] or result["wrong_messages"]:
        raise SystemExit("FAILED: not exactly once")


if __name__ == "__main__":
    main()
