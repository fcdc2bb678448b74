"""Rotation soak: a writer appends (--rate lines/s) and rotates by rename every 100 ms (like
RotatingFileHandler) for 60 s; every line written must be in Elasticsearch exactly once.
With --copytruncate it copies and truncates instead (logrotate copytruncate); then the
lines written between a copy and its truncation cannot be seen by any agent: they are
counted and reported, and everything else must arrive exactly once.

Uses its own Elasticsearch (scripts/es.py server `soak`, port 9261).

    python benchmarks/rotation_soak.py [--seconds 60] [--every 0.1] [--copytruncate]
"""

from __future__ import annotations

import argparse
import collections
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


def write(path: Path, seconds: float, every: float, copytruncate: bool, rate: float) -> tuple[list[str], set[str]]:
    """Lines written, and (copytruncate) the ones lost between a copy and its truncation."""
    written: list[str] = []
    lost: set[str] = set()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    t0 = last = time.monotonic()
    n = rotations = 0
    while time.monotonic() - t0 < seconds:
        batch = [f"line {n + i} of the soak, rotation {rotations}" for i in range(50)]
        n += len(batch)
        os.write(fd, ("\n".join(batch) + "\n").encode())
        written += batch
        ahead = n / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
        if time.monotonic() - last >= every:
            last = time.monotonic()
            rotations += 1
            rotated = path.with_name(f"{path.name}.{rotations}")
            if copytruncate:
                shutil.copyfile(path, rotated)
                extra = [f"line {n + i} between copy and truncate" for i in range(5)]
                n += len(extra)
                os.write(fd, ("\n".join(extra) + "\n").encode())  # what no agent can see
                written += extra
                lost |= set(extra)
                os.ftruncate(fd, 0)
            else:
                os.replace(path, rotated)
                os.close(fd)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.close(fd)
    return written, lost


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--every", type=float, default=0.1)
    ap.add_argument("--copytruncate", action="store_true")
    ap.add_argument("--rate", type=float, default=10_000, help="lines per second written")
    a = ap.parse_args()
    srv = es.start("soak", port=9261)
    from elasticsearch import Elasticsearch

    client = Elasticsearch(srv["url"], request_timeout=120)
    work = Path(tempfile.mkdtemp(prefix="shipper-rot-"))
    logs = work / "logs"
    logs.mkdir()
    input_id = f"rot-{int(time.time())}"
    rotated = f", rotated_paths: ['{logs}/app.log.*']" if a.copytruncate else ""
    cfg = work / "shipper.yml"
    cfg.write_text(
        f"data_dir: {work / 'data'}\n"
        f"inputs: [{{id: {input_id}, paths: ['{logs}/*.log'], scan_interval: 1s{rotated}}}]\n"
        f"output: {{elasticsearch: {{hosts: ['{srv['url']}']}}}}\nhttp: {{listen: null}}\nlog_level: warning\n"
    )
    log = open(work / "agent.log", "wb")  # noqa: SIM115 - the agent's stderr for its whole life
    agent = subprocess.Popen([sys.executable, "-m", "shipper", "run", "-c", str(cfg)], cwd=ROOT, stderr=log)
    time.sleep(2)
    t0 = time.monotonic()
    written, lost = write(logs / "app.log", a.seconds, a.every, a.copytruncate, a.rate)
    index = f"shipper-logs-{input_id}-*"
    expect = len(written) - len(lost)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        client.indices.refresh(index=index)
        if client.count(index=index)["count"] >= expect:
            break
        time.sleep(2)
    time.sleep(3)
    agent.send_signal(signal.SIGTERM)
    agent.wait(60)
    client.indices.refresh(index=index)
    got: collections.Counter[str] = collections.Counter()
    resp = client.search(index=index, size=10000, scroll="2m", _source=["message"])
    while resp["hits"]["hits"]:
        got.update(h["_source"]["message"] for h in resp["hits"]["hits"])
        resp = client.scroll(scroll_id=resp["_scroll_id"], scroll="2m")
    want = set(written) - lost
    result = {
        "mode": "copytruncate" if a.copytruncate else "rename",
        "seconds": a.seconds,
        "every_s": a.every,
        "lines_written": len(written),
        "unseeable_between_copy_and_truncate": len(lost),
        "documents": sum(got.values()),
        "missing": len(want - set(got)),
        "duplicates": sum(c - 1 for c in got.values() if c > 1),
        "unseeable_that_arrived_anyway": len(lost & set(got)),
        "wall_s": round(time.monotonic() - t0, 1),
    }
    print(json.dumps(result, indent=2))
    client.indices.delete(index=index)
    shutil.rmtree(work, ignore_errors=True)
    if result["missing"] or result["duplicates"]:
        raise SystemExit("FAILED: not exactly once")


if __name__ == "__main__":
    main()
