"""The output's cost per `_bulk` request: a tree's `make_client` sends one body N times to
the discarding endpoint (its own process), and prints the CPU per request.

    python benchmarks/request_cost.py [--root TREE] [-n 500] [--size 300000]
    python benchmarks/request_cost.py --instructions [--root TREE] ...

``--instructions`` runs the loop twice under callgrind (50 and 50 + N requests) and prints
the difference per request: start-up cancels out and the machine's load does not move it
(the socket's copy into the kernel is not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def loop(root: Path, n: int, size: int) -> float:
    """CPU seconds of n requests (after 20 to warm up)."""
    sys.path.insert(0, str(root))
    from shipper.config import from_dict
    from shipper.sinks.elasticsearch import BulkBody, make_client

    sys.path.insert(0, str(HERE))
    from bench_e2e import free_port

    port = free_port()
    ep = subprocess.Popen([sys.executable, str(HERE / "discard_endpoint.py"), str(port)])
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats/discard")
                break
            except OSError:
                time.sleep(0.05)
        d = tempfile.mkdtemp(prefix="shipper-reqcost-")
        cfg = from_dict(
            {
                "data_dir": f"{d}/data",
                "inputs": [{"id": "x", "paths": [f"{d}/*.log"]}],
                "output": {"elasticsearch": {"hosts": [f"http://127.0.0.1:{port}"]}},
            }
        )
        line = b'{"create":{"_index":"x","_id":"abcdefabcdef"}}\n{"message":"' + b"m" * 300 + b'"}\n'
        body = BulkBody([line * max(1, size // len(line))])

        async def run() -> float:
            c = make_client(cfg.elasticsearch)
            for _ in range(20):
                await c.bulk(operations=body, filter_path="errors")
            t0 = time.process_time()
            for _ in range(n):
                r = await c.bulk(operations=body, filter_path="errors,items.*.status")
                assert r.body["errors"] is False
            t = time.process_time() - t0
            await c.close()
            return t

        return asyncio.run(run())
    finally:
        ep.kill()
        ep.wait()


def instructions(root: Path, n: int, size: int) -> int:
    cmd = [sys.executable, __file__, "--root", str(root), "--size", str(size), "-n"]
    counts = []
    for k in (50, 50 + n):
        p = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd, str(k)],
            capture_output=True,
            text=True,
            check=True,
        )
        m = re.search(r"Collected : (\d+)", p.stderr)
        assert m, p.stderr[-2000:]
        counts.append(int(m.group(1)))
    return (counts[1] - counts[0]) // n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=HERE.parent, help="the tree whose client runs")
    ap.add_argument("-n", type=int, default=500)
    ap.add_argument("--size", type=int, default=300_000, help="bytes of the body (one chunk)")
    ap.add_argument("--instructions", action="store_true", help="instructions per request, under callgrind")
    a = ap.parse_args()
    if a.instructions:
        per = instructions(a.root, a.n, a.size)
        print(f"{a.root}: {per / 1e6:.3f} M instructions per bulk of ~{a.size} bytes")
    else:
        t = loop(a.root, a.n, a.size)
        print(f"{a.root}: {1000 * t / a.n:.3f} ms CPU per bulk of ~{a.size} bytes")


if __name__ == "__main__":
    main()
